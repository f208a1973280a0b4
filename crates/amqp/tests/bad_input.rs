//! Bad input: refused tokens, unknown entities, unauthorised links, garbage and malformed
//! frames. Each closes or refuses only what was bad; other clients carry on.

#![allow(clippy::large_futures)]

mod support;

use std::time::Duration;

use fe2o3_amqp_types::definitions::{AmqpError as Condition, ErrorCondition};
use fe2o3_amqp_types::performatives::Performative;
use fleet_amqp::{ListenerOptions, SasKey};
use support::{Harness, raw, step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn with_key() -> ListenerOptions {
    ListenerOptions {
        keys: vec![SasKey::new("k", "right-key")],
        ..ListenerOptions::default()
    }
}

fn connection_string(harness: &Harness, key: &str) -> String {
    format!(
        "Endpoint=sb://{}/;SharedAccessKeyName=k;SharedAccessKey={key};UseDevelopmentEmulator=true",
        harness.addr.ip()
    )
}

#[tokio::test]
async fn a_token_signed_with_the_wrong_key_is_refused_and_the_right_one_accepted() {
    let harness = Harness::start("127.0.0.20", with_key()).await;
    let mut wrong = harness
        .rust_client_with(&connection_string(&harness, "wrong-key"))
        .await;
    let refused = step(
        "sender with a wrong key",
        wrong.create_sender("q1", Default::default()),
    )
    .await;
    let Err(err) = refused else {
        panic!("a wrong key must be refused");
    };
    assert!(
        format!("{err:?}").contains("401") || format!("{err:?}").contains("signature"),
        "{err:?}"
    );

    let mut right = harness
        .rust_client_with(&connection_string(&harness, "right-key"))
        .await;
    let mut sender = step(
        "sender with the right key",
        right.create_sender("q1", Default::default()),
    )
    .await
    .expect("the right key is accepted");
    step("send", sender.send_message(b"authorised".to_vec()))
        .await
        .unwrap();
    harness.stop().await;
}

#[tokio::test]
async fn attaching_to_an_unknown_entity_fails_with_not_found_naming_it() {
    let harness = Harness::start("127.0.0.21", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let refused = step(
        "sender to nowhere",
        client.create_sender("nowhere", Default::default()),
    )
    .await;
    let Err(err) = refused else {
        panic!("an unknown entity must be refused");
    };
    let text = format!("{err:?}");
    assert!(
        text.contains("not-found") || text.contains("NotFound"),
        "{text}"
    );
    assert!(text.contains("nowhere"), "{text}");
    // The refusal must not break the client's session: its next link works.
    let mut sender = step(
        "sender after a refusal",
        client.create_sender("q1", Default::default()),
    )
    .await
    .expect("the session survives a refused link");
    step("send after a refusal", sender.send_message(b"ok".to_vec()))
        .await
        .unwrap();

    let mut raw = raw::open_session(harness.addr).await;
    raw.write_all(&raw::perf_frame(
        0,
        &raw::sender_attach(0, "amqp://host/nowhere"),
    ))
    .await
    .unwrap();
    let Some(Performative::Attach(reply)) = raw::read_perf(&mut raw).await else {
        panic!("expected an attach reply");
    };
    assert!(reply.target.is_none(), "a refused link has no target");
    let Some(Performative::Detach(detach)) = raw::read_perf(&mut raw).await else {
        panic!("expected a detach");
    };
    let error = detach.error.expect("the detach carries an error");
    assert_eq!(
        error.condition,
        ErrorCondition::AmqpError(Condition::NotFound)
    );
    assert!(error.description.unwrap_or_default().contains("nowhere"));
    // The client's detach answers ours: it gets no second detach, and the session goes on.
    let answer = fe2o3_amqp_types::performatives::Detach {
        handle: fe2o3_amqp_types::definitions::Handle(0),
        closed: true,
        error: None,
    };
    raw.write_all(&raw::perf_frame(0, &Performative::Detach(answer)))
        .await
        .unwrap();
    raw.write_all(&raw::perf_frame(0, &raw::sender_attach(1, "q1")))
        .await
        .unwrap();
    let Some(Performative::Attach(ok)) = raw::read_perf(&mut raw).await else {
        panic!("expected the next attach to be answered, not a second detach");
    };
    assert!(ok.target.is_some(), "q1 exists");
    harness.stop().await;
}

#[tokio::test]
async fn a_link_without_a_valid_token_is_refused_as_unauthorised() {
    let harness = Harness::start("127.0.0.22", with_key()).await;
    let mut raw = raw::open_session(harness.addr).await;
    raw.write_all(&raw::perf_frame(0, &raw::sender_attach(0, "q1")))
        .await
        .unwrap();
    assert!(matches!(
        raw::read_perf(&mut raw).await,
        Some(Performative::Attach(_))
    ));
    let Some(Performative::Detach(detach)) = raw::read_perf(&mut raw).await else {
        panic!("expected a detach");
    };
    assert_eq!(
        detach.error.expect("an error").condition,
        ErrorCondition::AmqpError(Condition::UnauthorizedAccess)
    );
    harness.stop().await;
}

/// Reads until the server closes, returning everything it sent.
async fn read_to_close(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut all))
        .await
        .expect("the server closes the connection");
    all
}

#[tokio::test]
async fn garbage_and_malformed_frames_close_only_their_connection() {
    let harness = Harness::start("127.0.0.23", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = step("sender", client.create_sender("q1", Default::default()))
        .await
        .unwrap();

    // Not AMQP at all: the server answers with the header it speaks, then closes.
    let mut garbage = tokio::net::TcpStream::connect(harness.addr).await.unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let answer = read_to_close(&mut garbage).await;
    assert_eq!(&answer[..], &raw::SASL_HEADER[..]);

    // A frame whose body is not a performative: close with decode-error.
    let mut malformed = raw::connect(harness.addr).await;
    malformed
        .write_all(&raw::frame(0, 0, &[0x00, 0x53, 0x10, 0xff, 0xff]))
        .await
        .unwrap();
    let Some(Performative::Close(close)) = raw::read_perf(&mut malformed).await else {
        panic!("expected a close frame");
    };
    assert_eq!(
        close.error.expect("an error").condition,
        ErrorCondition::AmqpError(Condition::DecodeError)
    );

    // A frame larger than max-frame-size: refused before its body is read.
    let mut oversize = raw::connect(harness.addr).await;
    let mut header = (10_000_000u32).to_be_bytes().to_vec();
    header.extend([2, 0, 0, 0]);
    oversize.write_all(&header).await.unwrap();
    let Some(Performative::Close(close)) = raw::read_perf(&mut oversize).await else {
        panic!("expected a close frame");
    };
    assert!(close.error.is_some());

    // Thousands of nested values in one small frame: refused by the pre-scan, not decoded
    // recursively (which would overflow the stack and take the whole listener down).
    let mut deep = raw::connect(harness.addr).await;
    // Descriptors nest: each 0x00 starts a described value whose descriptor is described.
    let nested: Vec<u8> = std::iter::repeat_n(0x00u8, 8_000)
        .chain([0x40, 0x40])
        .collect();
    deep.write_all(&raw::frame(0, 0, &nested)).await.unwrap();
    let Some(Performative::Close(close)) = raw::read_perf(&mut deep).await else {
        panic!("expected a close frame");
    };
    assert!(close.error.is_some());

    // The well-behaved client carries on.
    step(
        "send after the bad peers",
        sender.send_message(b"still here".to_vec()),
    )
    .await
    .unwrap();
    let mut receiver = step(
        "receiver",
        client.create_receiver_for_queue("q1", Default::default()),
    )
    .await
    .unwrap();
    let message = step(
        "receive",
        receiver.receive_message_with_max_wait_time(Some(Duration::from_secs(5))),
    )
    .await
    .unwrap()
    .expect("the message arrives");
    assert_eq!(message.body().unwrap(), b"still here");
    harness.stop().await;
}
