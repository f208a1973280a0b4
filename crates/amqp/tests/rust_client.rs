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
