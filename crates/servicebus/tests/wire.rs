//! The adapter end to end over the emulator's AMQP listener: the envelope's Service Bus
//! properties survive the wire, a restarted listener is reconnected to, and a refused key is
//! `Unauthorized` without the key ever showing.

#![allow(clippy::large_futures)]

mod support;

use std::time::Duration;

use fleet_amqp::{ListenerOptions, SasKey};
use fleet_bus::{Bus, BusErrorKind, EntityPath, Message, PropertyValue, ReceiveOptions};
use fleet_envelope::examples::sample_envelope;
use fleet_envelope::servicebus::{self, to_message_properties};
use fleet_envelope::{Envelope, EventType};
use support::{Harness, conformance_topology, step};

const QUEUE: &str = "conformance-queue";
const SHORT_LOCK: &str = "conformance-short-lock";

fn bus_message(envelope: &Envelope) -> Message {
    let props = to_message_properties(envelope);
    let mut msg = Message::new(envelope.encode());
    msg.message_id = Some(props.message_id);
    msg.correlation_id = Some(props.correlation_id);
    msg.subject = Some(props.subject);
    msg.content_type = Some(props.content_type);
    for (k, v) in props.application_properties {
        let v = match v {
            servicebus::PropertyValue::String(s) => PropertyValue::String(s),
            servicebus::PropertyValue::Int(i) => PropertyValue::Int(i),
        };
        msg.application_properties.insert(k, v);
    }
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_properties_and_body_survive_the_wire() {
    let harness = Harness::start(
        "127.0.0.220",
        conformance_topology(),
        ListenerOptions::default(),
    )
    .await;
    let bus = harness.bus();
    let envelope = sample_envelope(EventType::RuntimeDeploymentRequested);
    let sent = bus_message(&envelope);
    let sender = step("sender", bus.sender(QUEUE)).await.unwrap();
    step("send", sender.send(sent.clone())).await.unwrap();
    let receiver = step(
        "receiver",
        bus.receiver(&EntityPath::queue(QUEUE), ReceiveOptions::peek_lock()),
    )
    .await
    .unwrap();
    let mut got = step("receive", receiver.receive(1, Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "one message arrives");
    let got = got.remove(0);
    assert_eq!(got.message.message_id, Some(envelope.event_id.to_string()));
    assert_eq!(
        got.message.correlation_id,
        Some(envelope.correlation_id.clone())
    );
    assert_eq!(
        got.message.subject.as_deref(),
        Some("RuntimeDeploymentRequested")
    );
    assert_eq!(
        got.message.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(
        got.message.application_properties,
        sent.application_properties
    );
    assert_eq!(
        got.message.application_properties.get("eventVersion"),
        Some(&PropertyValue::Int(i64::from(envelope.event_version))),
        "eventVersion stays an integer"
    );
    let decoded =
        Envelope::decode_with_content_type(&got.message.body, got.message.content_type.as_deref())
            .expect("the body decodes");
    assert_eq!(decoded, envelope);
    step("complete", receiver.complete(&got)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_and_receivers_reconnect_after_the_listener_restarts() {
    let mut harness = Harness::start(
        "127.0.0.221",
        conformance_topology(),
        ListenerOptions::default(),
    )
    .await;
    let bus = harness.bus();
    let sender = step("sender", bus.sender(QUEUE)).await.unwrap();
    let receiver = step(
        "receiver",
        bus.receiver(&EntityPath::queue(QUEUE), ReceiveOptions::peek_lock()),
    )
    .await
    .unwrap();
    step("send before", sender.send(Message::new("before")))
        .await
        .unwrap();
    let before = step(
        "receive before",
        receiver.receive(1, Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(before.len(), 1);
    step("complete before", receiver.complete(&before[0]))
        .await
        .unwrap();

    harness.stop_listener().await;
    harness.listen().await;

    step("send after the restart", sender.send(Message::new("after")))
        .await
        .expect("the sender reconnects");
    let after = step(
        "receive after the restart",
        receiver.receive(1, Duration::from_secs(10)),
    )
    .await
    .expect("the receiver reconnects");
    assert_eq!(after.len(), 1, "the message sent after the restart arrives");
    assert_eq!(after[0].message.body.as_ref(), b"after");
    assert_eq!(after[0].delivery_count, 1);
    step("complete after", receiver.complete(&after[0]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_locked_before_the_restart_is_lock_lost_and_comes_back() {
    let mut harness = Harness::start(
        "127.0.0.224",
        conformance_topology(),
        ListenerOptions::default(),
    )
    .await;
    let bus = harness.bus();
    let sender = step("sender", bus.sender(SHORT_LOCK)).await.unwrap();
    step("send", sender.send(Message::new("in flight")))
        .await
        .unwrap();
    let receiver = step(
        "receiver",
        bus.receiver(&EntityPath::queue(SHORT_LOCK), ReceiveOptions::peek_lock()),
    )
    .await
    .unwrap();
    let held = step("receive", receiver.receive(1, Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);

    harness.stop_listener().await;
    harness.listen().await;

    // The first call after the restart finds the broken link and replaces it.
    let _ = step(
        "receive after restart",
        receiver.receive(1, Duration::from_millis(200)),
    )
    .await;
    let err = step("complete on the old link", receiver.complete(&held[0]))
        .await
        .expect_err("the lock went with the old link");
    assert_eq!(err.kind(), BusErrorKind::MessageLockLost, "{err}");
    // Locks outlive their link, as in Service Bus: it returns once its one-second lock ends.
    let back = step(
        "receive it again",
        receiver.receive(1, Duration::from_secs(10)),
    )
    .await
    .unwrap();
    assert_eq!(back.len(), 1, "the message comes back");
    assert_eq!(back[0].message.body.as_ref(), b"in flight");
    assert_eq!(back[0].delivery_count, 2);
    step("complete it", receiver.complete(&back[0]))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_unauthorized_and_never_shown() {
    let options = ListenerOptions {
        keys: vec![SasKey::new("k", "right-key")],
        ..ListenerOptions::default()
    };
    let harness = Harness::start("127.0.0.222", conformance_topology(), options).await;
    let secret = "wrong-key-s3cr3t";
    let bus = harness.bus_with(&harness.connection_string_with_key(secret));
    let Err(err) = step("sender with a wrong key", bus.sender(QUEUE)).await else {
        panic!("a wrong key must be refused");
    };
    assert_eq!(err.kind(), BusErrorKind::Unauthorized, "{err}");
    assert!(!err.is_transient());
    let shown = format!("{err} / {err:?} / {bus:?}");
    assert!(!shown.contains(secret), "the key leaked: {shown}");
    let Err(err) = step(
        "receiver with a wrong key",
        bus.receiver(&EntityPath::queue(QUEUE), ReceiveOptions::peek_lock()),
    )
    .await
    else {
        panic!("a wrong key must be refused");
    };
    assert_eq!(err.kind(), BusErrorKind::Unauthorized, "{err}");

    let right = harness.bus_with(&harness.connection_string_with_key("right-key"));
    let sender = step("sender with the right key", right.sender(QUEUE))
        .await
        .expect("the right key is accepted");
    step("send", sender.send(Message::new("authorised")))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_namespace_is_a_transient_connection_error_without_the_key() {
    // Nothing listens on this address: every attempt is refused.
    let harness_ip = "127.0.0.223";
    let secret = "unreachable-s3cr3t";
    let bus = fleet_servicebus::ServiceBusBus::from_connection_string(&format!(
        "Endpoint=sb://{harness_ip}/;SharedAccessKeyName=k;SharedAccessKey={secret};UseDevelopmentEmulator=true"
    ))
    .unwrap();
    let Err(err) = step("sender", bus.sender(QUEUE)).await else {
        panic!("nothing listens there");
    };
    assert_eq!(err.kind(), BusErrorKind::Connection, "{err}");
    assert!(err.is_transient());
    assert!(!format!("{err} {err:?}").contains(secret), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_receive_does_not_hold_up_settlement_on_the_same_receiver() {
    let harness = Harness::start(
        "127.0.0.225",
        conformance_topology(),
        ListenerOptions::default(),
    )
    .await;
    let bus = harness.bus();
    let sender = step("sender", bus.sender(QUEUE)).await.unwrap();
    step("send", sender.send(Message::new("work")))
        .await
        .unwrap();
    let receiver = step(
        "receiver",
        bus.receiver(&EntityPath::queue(QUEUE), ReceiveOptions::peek_lock()),
    )
    .await
    .unwrap();
    let got = step("receive", receiver.receive(1, Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    // The receive loop waits for more while the handler's settlement comes in.
    let waiting = receiver.receive(1, Duration::from_secs(5));
    let settle = async {
        tokio::task::yield_now().await;
        let started = std::time::Instant::now();
        receiver.complete(&got[0]).await.map(|()| started.elapsed())
    };
    let (waited, settled) = step("receive and complete at once", async {
        tokio::join!(waiting, settle)
    })
    .await;
    let took = settled.expect("the complete succeeds");
    assert!(
        took < Duration::from_secs(2),
        "the complete waited {took:?} behind the receive"
    );
    assert!(waited.unwrap().is_empty(), "nothing else was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_many_settles_each_held_message_once_and_fails_only_one_already_settled() {
    let harness = Harness::start(
        "127.0.0.226",
        conformance_topology(),
        ListenerOptions::default(),
    )
    .await;
    let bus = harness.bus();
    let sender = step("sender", bus.sender(QUEUE)).await.unwrap();
    let batch = (0..5).map(|i| Message::new(format!("m{i}"))).collect();
    step("send", sender.send_batch(batch)).await.unwrap();
    let receiver = step(
        "receiver",
        bus.receiver(&EntityPath::queue(QUEUE), ReceiveOptions::peek_lock()),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    while got.len() < 5 {
        let more = step(
            "receive",
            receiver.receive(5 - got.len(), Duration::from_secs(10)),
        )
        .await
        .unwrap();
        got.extend(more);
    }
    step("complete one alone", receiver.complete(&got[1]))
        .await
        .unwrap();

    let results = step("complete_many", receiver.complete_many(&got)).await;
    let kinds: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().map_err(|e| e.kind()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            Ok(&()),
            Err(BusErrorKind::MessageLockLost),
            Ok(&()),
            Ok(&()),
            Ok(&())
        ]
    );
    // The broker's view: the listener settles a connection's dispositions before it handles a
    // later management request on it, so this peek sees what is left.
    let left = step("peek", receiver.peek(Some(0), 10)).await.unwrap();
    assert!(left.is_empty(), "every message is completed: {left:?}");
    let again = step("complete_many again", receiver.complete_many(&got)).await;
    assert!(
        again.iter().all(|r| r
            .as_ref()
            .is_err_and(|e| e.kind() == BusErrorKind::MessageLockLost)),
        "settled messages are no longer held: {again:?}"
    );
}
