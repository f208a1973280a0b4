//! The production Rust client (`azservicebus`) against the listener over the real engine.

// The client's futures are tens of KiB; boxing each call in a test adds noise, not safety.
#![allow(clippy::large_futures)]

mod support;

use std::time::Duration;

use azservicebus::{ServiceBusMessage, ServiceBusReceiverOptions};
use fleet_amqp::ListenerOptions;
use support::{Harness, step};

#[tokio::test]
async fn send_receive_and_complete_round_trip_a_message() {
    let harness = Harness::start("127.0.0.10", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step(
        "create sender",
        client.create_sender("q1", Default::default()),
    )
    .await
    .unwrap();
    let mut message = ServiceBusMessage::new(b"hello".to_vec());
    message.set_message_id("m-1").unwrap();
    message.set_subject(Some("Greeting".to_owned()));
    step("send", sender.send_message(message)).await.unwrap();

    let mut receiver = step(
        "create receiver",
        client.create_receiver_for_queue("q1", ServiceBusReceiverOptions::default()),
    )
    .await
    .unwrap();
    let received = step(
        "receive",
        receiver.receive_message_with_max_wait_time(Some(Duration::from_secs(5))),
    )
    .await
    .unwrap()
    .expect("a message arrives");
    assert_eq!(received.body().unwrap(), b"hello");
    assert_eq!(received.message_id().as_deref(), Some("m-1"));
    assert_eq!(received.subject(), Some("Greeting"));
    assert_eq!(received.delivery_count(), Some(1));
    assert!(received.sequence_number() > 0);
    step("complete", receiver.complete_message(&received))
        .await
        .unwrap();

    let again = step(
        "receive after complete",
        receiver.receive_message_with_max_wait_time(Some(Duration::from_secs(1))),
    )
    .await
    .unwrap();
    assert!(again.is_none(), "a completed message is gone");

    step("dispose receiver", receiver.dispose()).await.unwrap();
    step("dispose sender", sender.dispose()).await.unwrap();
    step("dispose client", client.dispose()).await.unwrap();
    harness.stop().await;
}

async fn receive_one(
    receiver: &mut azservicebus::ServiceBusReceiver,
    what: &str,
) -> azservicebus::ServiceBusReceivedMessage {
    step(
        what,
        receiver.receive_message_with_max_wait_time(Some(Duration::from_secs(10))),
    )
    .await
    .unwrap()
    .unwrap_or_else(|| panic!("{what}: no message arrived"))
}

#[tokio::test]
async fn abandon_redelivers_with_modified_properties_and_a_higher_count() {
    let harness = Harness::start("127.0.0.11", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q1", Default::default()))
        .await
        .unwrap();
    step("send", sender.send_message(b"again".to_vec()))
        .await
        .unwrap();
    let mut receiver = step(
        "receiver",
        client.create_receiver_for_queue("q1", Default::default()),
    )
    .await
    .unwrap();
    let first = receive_one(&mut receiver, "first delivery").await;
    let mut props = client_amqp_types::primitives::OrderedMap::new();
    props.insert(
        "attempt".to_owned(),
        client_amqp_types::primitives::Value::String("one".into()),
    );
    step("abandon", receiver.abandon_message(&first, Some(props)))
        .await
        .unwrap();
    let second = receive_one(&mut receiver, "redelivery").await;
    assert_eq!(second.sequence_number(), first.sequence_number());
    assert_eq!(second.delivery_count(), Some(2));
    let attempt = second
        .application_properties()
        .and_then(|p| p.0.get("attempt").cloned());
    assert_eq!(
        attempt,
        Some(client_amqp_types::primitives::SimpleValue::String(
            "one".into()
        ))
    );
    step("complete", receiver.complete_message(&second))
        .await
        .unwrap();
    harness.stop().await;
}

#[tokio::test]
async fn dead_lettered_messages_arrive_on_the_dlq_with_reason_and_description() {
    let harness = Harness::start("127.0.0.12", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q1", Default::default()))
        .await
        .unwrap();
    step("send", sender.send_message(b"poison".to_vec()))
        .await
        .unwrap();
    let mut receiver = step(
        "receiver",
        client.create_receiver_for_queue("q1", Default::default()),
    )
    .await
    .unwrap();
    let message = receive_one(&mut receiver, "receive").await;
    let options = azservicebus::receiver::DeadLetterOptions {
        dead_letter_reason: Some("MalformedEnvelope".into()),
        dead_letter_error_description: Some("eventId: required".into()),
        properties_to_modify: None,
    };
    step(
        "dead-letter",
        receiver.dead_letter_message(&message, options),
    )
    .await
    .unwrap();

    let dlq_options = ServiceBusReceiverOptions {
        sub_queue: azservicebus::SubQueue::DeadLetter,
        ..Default::default()
    };
    let mut dlq = step(
        "dlq receiver",
        client.create_receiver_for_queue("q1", dlq_options),
    )
    .await
    .unwrap();
    let dead = receive_one(&mut dlq, "receive from the dlq").await;
    assert_eq!(dead.body().unwrap(), b"poison");
    assert_eq!(dead.dead_letter_reason(), Some("MalformedEnvelope"));
    assert_eq!(
        dead.dead_letter_error_description(),
        Some("eventId: required")
    );
    assert_eq!(
        dead.dead_letter_source(),
        None.or(dead.dead_letter_source())
    );
    step("complete on the dlq", dlq.complete_message(&dead))
        .await
        .unwrap();
    let none = step(
        "main queue is empty",
        receiver.receive_message_with_max_wait_time(Some(Duration::from_millis(500))),
    )
    .await
    .unwrap();
    assert!(none.is_none());
    harness.stop().await;
}

#[tokio::test]
async fn deferred_messages_come_back_by_sequence_number_and_complete() {
    let harness = Harness::start("127.0.0.13", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q1", Default::default()))
        .await
        .unwrap();
    step("send", sender.send_message(b"later".to_vec()))
        .await
        .unwrap();
    let mut receiver = step(
        "receiver",
        client.create_receiver_for_queue("q1", Default::default()),
    )
    .await
    .unwrap();
    let message = receive_one(&mut receiver, "receive").await;
    let sequence = message.sequence_number();
    step("defer", receiver.defer_message(&message, None))
        .await
        .unwrap();
    let none = step(
        "deferred is not delivered",
        receiver.receive_message_with_max_wait_time(Some(Duration::from_millis(500))),
    )
    .await
    .unwrap();
    assert!(none.is_none());
    let deferred = step(
        "receive deferred",
        receiver.receive_deferred_message(sequence),
    )
    .await
    .unwrap()
    .expect("the deferred message");
    assert_eq!(deferred.body().unwrap(), b"later");
    assert_eq!(
        deferred.state(),
        azservicebus::ServiceBusMessageState::Deferred
    );
    step("complete deferred", receiver.complete_message(&deferred))
        .await
        .unwrap();
    let gone = step("peek after complete", receiver.peek_message(Some(sequence)))
        .await
        .unwrap();
    assert!(gone.is_none(), "the completed deferred message is gone");
    harness.stop().await;
}

#[tokio::test]
async fn scheduled_messages_arrive_on_time_and_cancelled_ones_never() {
    let harness = Harness::start("127.0.0.14", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q1", Default::default()))
        .await
        .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let keep = step(
        "schedule soon",
        sender.schedule_message(b"soon".to_vec(), now + time::Duration::seconds(1)),
    )
    .await
    .unwrap();
    let cancel = step(
        "schedule later",
        sender.schedule_message(b"never".to_vec(), now + time::Duration::seconds(2)),
    )
    .await
    .unwrap();
    assert_ne!(keep, cancel);
    step("cancel", sender.cancel_scheduled_message(cancel))
        .await
        .unwrap();
    let mut receiver = step(
        "receiver",
        client.create_receiver_for_queue("q1", Default::default()),
    )
    .await
    .unwrap();
    let message = receive_one(&mut receiver, "scheduled arrives").await;
    assert_eq!(message.body().unwrap(), b"soon");
    assert_eq!(message.sequence_number(), keep);
    step("complete", receiver.complete_message(&message))
        .await
        .unwrap();
    let none = step(
        "cancelled never arrives",
        receiver.receive_message_with_max_wait_time(Some(Duration::from_secs(3))),
    )
    .await
    .unwrap();
    assert!(none.is_none(), "the cancelled message was delivered");
    harness.stop().await;
}

#[tokio::test]
async fn renewing_a_lock_moves_locked_until_forward() {
    let harness = Harness::start("127.0.0.15", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q1", Default::default()))
        .await
        .unwrap();
    step("send", sender.send_message(b"slow".to_vec()))
        .await
        .unwrap();
    let mut receiver = step(
        "receiver",
        client.create_receiver_for_queue("q1", Default::default()),
    )
    .await
    .unwrap();
    let mut message = receive_one(&mut receiver, "receive").await;
    let before = message.locked_until().expect("locked-until annotation");
    // Lock expiry is whole milliseconds: wait until the clock moved past the first lock time.
    let start = std::time::Instant::now();
    while time::OffsetDateTime::now_utc() + time::Duration::seconds(60) <= before {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "clock does not move"
        );
        tokio::task::yield_now().await;
    }
    step("renew", receiver.renew_message_lock(&mut message))
        .await
        .unwrap();
    let after = message.locked_until().expect("renewed locked-until");
    assert!(after > before, "{after} is not after {before}");
    step("complete after renew", receiver.complete_message(&message))
        .await
        .unwrap();
    harness.stop().await;
}

#[tokio::test]
async fn peek_shows_messages_without_locking_them() {
    let harness = Harness::start("127.0.0.16", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q1", Default::default()))
        .await
        .unwrap();
    for body in [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()] {
        step("send", sender.send_message(body)).await.unwrap();
    }
    let mut receiver = step(
        "receiver",
        client.create_receiver_for_queue("q1", Default::default()),
    )
    .await
    .unwrap();
    let peeked = step("peek", receiver.peek_messages(10, None))
        .await
        .unwrap();
    let bodies: Vec<&[u8]> = peeked.iter().map(|m| m.body().unwrap()).collect();
    assert_eq!(bodies, vec![&b"a"[..], b"b", b"c"]);
    let first = receive_one(&mut receiver, "peeked messages are still receivable").await;
    assert_eq!(first.body().unwrap(), b"a");
    let empty = step(
        "peek past the end",
        receiver.peek_messages(5, Some(i64::MAX - 1)),
    )
    .await
    .unwrap();
    assert!(empty.is_empty());
    harness.stop().await;
}

#[tokio::test]
async fn a_batch_send_stores_every_message() {
    let harness = Harness::start("127.0.0.17", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q2", Default::default()))
        .await
        .unwrap();
    let mut batch = sender.create_message_batch(Default::default()).unwrap();
    for i in 0..5 {
        batch
            .try_add_message(format!("m{i}").into_bytes())
            .expect("fits in the batch");
    }
    step("send batch", sender.send_message_batch(batch))
        .await
        .unwrap();
    let mut receiver = step(
        "receiver",
        client.create_receiver_for_queue("q2", Default::default()),
    )
    .await
    .unwrap();
    let mut bodies = Vec::new();
    while bodies.len() < 5 {
        let got = step(
            "receive batch",
            receiver.receive_messages_with_max_wait_time(5, Some(Duration::from_secs(5))),
        )
        .await
        .unwrap();
        assert!(!got.is_empty(), "only {} of 5 arrived", bodies.len());
        for m in got {
            bodies.push(String::from_utf8(m.body().unwrap().to_vec()).unwrap());
            step("complete", receiver.complete_message(&m))
                .await
                .unwrap();
        }
    }
    assert_eq!(bodies, vec!["m0", "m1", "m2", "m3", "m4"]);
    harness.stop().await;
}

#[tokio::test]
async fn topic_messages_reach_the_subscription() {
    let harness = Harness::start("127.0.0.18", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("t1", Default::default()))
        .await
        .unwrap();
    step("send", sender.send_message(b"fan-out".to_vec()))
        .await
        .unwrap();
    let mut receiver = step(
        "subscription receiver",
        client.create_receiver_for_subscription("t1", "s1", Default::default()),
    )
    .await
    .unwrap();
    let message = receive_one(&mut receiver, "receive from s1").await;
    assert_eq!(message.body().unwrap(), b"fan-out");
    step("complete", receiver.complete_message(&message))
        .await
        .unwrap();
    harness.stop().await;
}

#[tokio::test]
async fn receive_and_delete_removes_messages_on_delivery() {
    let harness = Harness::start("127.0.0.19", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q3", Default::default()))
        .await
        .unwrap();
    step("send", sender.send_message(b"once".to_vec()))
        .await
        .unwrap();
    let options = ServiceBusReceiverOptions {
        receive_mode: azservicebus::ServiceBusReceiveMode::ReceiveAndDelete,
        ..Default::default()
    };
    let mut receiver = step("receiver", client.create_receiver_for_queue("q3", options))
        .await
        .unwrap();
    let message = receive_one(&mut receiver, "receive").await;
    assert_eq!(message.body().unwrap(), b"once");
    let peeked = step("peek", receiver.peek_messages(5, None)).await.unwrap();
    assert!(peeked.is_empty(), "a received-and-deleted message is gone");
    harness.stop().await;
}

#[tokio::test]
async fn a_message_larger_than_a_frame_round_trips_intact() {
    let harness = Harness::start("127.0.0.24", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q1", Default::default()))
        .await
        .unwrap();
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    step("send", sender.send_message(body.clone()))
        .await
        .unwrap();
    let mut receiver = step(
        "receiver",
        client.create_receiver_for_queue("q1", Default::default()),
    )
    .await
    .unwrap();
    let message = receive_one(&mut receiver, "receive").await;
    assert_eq!(message.body().unwrap(), &body[..]);
    step("complete", receiver.complete_message(&message))
        .await
        .unwrap();
    harness.stop().await;
}

/// Regression: on a multi-threaded runtime the client registers a sent delivery as unsettled
/// only after the transfer left, so an instant settled answer could be dropped and the send
/// hang until its timeout. Every one of many back-to-back sends (and completes) must finish
/// promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_sends_and_completes_on_a_multi_threaded_runtime_all_finish() {
    let harness = Harness::start("127.0.0.25", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q3", Default::default()))
        .await
        .unwrap();
    for i in 0..600 {
        let sent = tokio::time::timeout(
            Duration::from_secs(2),
            sender.send_message(format!("m{i}").into_bytes()),
        )
        .await;
        assert!(
            matches!(sent, Ok(Ok(()))),
            "send {i} did not complete: {sent:?}"
        );
    }
    harness.stop().await;
}

/// Regression: a detached receiving link's backend pull (waiting up to a second) must stop
/// with the link, or it takes the next message sent to the entity — lost in
/// receive-and-delete mode, redelivered with an inflated count in peek-lock mode.
#[tokio::test]
async fn a_closed_receiver_does_not_take_later_messages() {
    let harness = Harness::start("127.0.0.26", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let options = ServiceBusReceiverOptions {
        receive_mode: azservicebus::ServiceBusReceiveMode::ReceiveAndDelete,
        ..Default::default()
    };
    let mut idle = step(
        "idle receiver",
        client.create_receiver_for_queue("q2", options),
    )
    .await
    .unwrap();
    let nothing = step(
        "receive from an empty queue",
        idle.receive_messages_with_max_wait_time(1, Some(Duration::from_millis(100))),
    )
    .await
    .unwrap();
    assert!(nothing.is_empty());
    step("dispose the idle receiver", idle.dispose())
        .await
        .unwrap();

    let mut sender = step("sender", client.create_sender("q2", Default::default()))
        .await
        .unwrap();
    step("send", sender.send_message(b"for the next one".to_vec()))
        .await
        .unwrap();
    let mut receiver = step(
        "next receiver",
        client.create_receiver_for_queue("q2", Default::default()),
    )
    .await
    .unwrap();
    let message = receive_one(&mut receiver, "the next receiver gets the message").await;
    assert_eq!(message.body().unwrap(), b"for the next one");
    assert_eq!(message.delivery_count(), Some(1));
    harness.stop().await;
}
