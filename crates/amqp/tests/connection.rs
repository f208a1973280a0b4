//! Connection-level behaviour with a raw peer: heartbeats, idle timeout, multi-frame
//! deliveries and the message size bound.

mod support;

use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp_types::definitions::{AmqpError as Condition, ErrorCondition, Handle};
use fe2o3_amqp_types::messaging::{Data, DeliveryState};
use fe2o3_amqp_types::performatives::{ChannelMax, MaxFrameSize, Open, Performative, Transfer};
use fe2o3_amqp_types::primitives::Symbol;
use fleet_amqp::ListenerOptions;
use fleet_bus::{Bus, EntityPath, ReceiveOptions};
use serde_bytes::ByteBuf;
use support::{Harness, raw};
use tokio::io::AsyncWriteExt;

fn open(idle_ms: Option<u32>) -> Performative {
    Performative::Open(Open {
        container_id: "raw".into(),
        hostname: None,
        max_frame_size: MaxFrameSize(65_536),
        channel_max: ChannelMax(1),
        idle_time_out: idle_ms,
        outgoing_locales: None,
        incoming_locales: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    })
}

#[tokio::test]
async fn the_server_sends_heartbeats_at_half_the_peers_idle_timeout() {
    let harness = Harness::start("127.0.0.40", ListenerOptions::default()).await;
    let mut stream = raw::connect(harness.addr).await;
    stream
        .write_all(&raw::perf_frame(0, &open(Some(200))))
        .await
        .unwrap();
    assert!(matches!(
        raw::read_perf(&mut stream).await,
        Some(Performative::Open(_))
    ));
    let heartbeat = tokio::time::timeout(Duration::from_secs(2), raw::read_frame(&mut stream))
        .await
        .expect("a heartbeat within 2 s")
        .expect("the connection stays open");
    assert!(heartbeat.2.is_empty(), "a heartbeat is an empty frame");
    harness.stop().await;
}

#[tokio::test]
async fn a_silent_peer_is_closed_after_twice_the_idle_timeout() {
    let options = ListenerOptions {
        idle_timeout: Duration::from_millis(100),
        ..ListenerOptions::default()
    };
    let harness = Harness::start("127.0.0.41", options).await;
    let mut stream = raw::connect(harness.addr).await;
    stream
        .write_all(&raw::perf_frame(0, &open(None)))
        .await
        .unwrap();
    let Some(Performative::Open(server_open)) = raw::read_perf(&mut stream).await else {
        panic!("expected open");
    };
    assert_eq!(server_open.idle_time_out, Some(100));
    let close = tokio::time::timeout(Duration::from_secs(5), raw::read_perf(&mut stream))
        .await
        .expect("closed within 5 s");
    let Some(Performative::Close(close)) = close else {
        panic!("expected close, got {close:?}");
    };
    assert_eq!(
        close.error.expect("an error").condition,
        ErrorCondition::AmqpError(Condition::ResourceLimitExceeded)
    );
    harness.stop().await;
}

fn transfer(delivery_id: Option<u32>, more: bool) -> Performative {
    Performative::Transfer(Transfer {
        handle: Handle(0),
        delivery_id,
        delivery_tag: delivery_id.map(|id| ByteBuf::from(id.to_be_bytes().to_vec())),
        message_format: delivery_id.map(|_| 0),
        settled: Some(false),
        more,
        rcv_settle_mode: None,
        state: None,
        resume: false,
        aborted: false,
        batchable: false,
    })
}

/// Sends one delivery on handle 0 split into frames of `chunk` payload bytes.
async fn send_in_frames(stream: &mut tokio::net::TcpStream, payload: &[u8], chunk: usize) {
    let chunks: Vec<&[u8]> = payload.chunks(chunk).collect();
    for (i, part) in chunks.iter().enumerate() {
        let first = (i == 0).then_some(0);
        let more = i + 1 < chunks.len();
        let perf = serde_amqp::to_vec(&transfer(first, more)).unwrap();
        let mut body = perf;
        body.extend_from_slice(part);
        stream.write_all(&raw::frame(0, 0, &body)).await.unwrap();
    }
}

/// Reads past attach and flow frames to the first disposition.
async fn next_disposition(stream: &mut tokio::net::TcpStream) -> DeliveryState {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), raw::read_perf(stream))
            .await
            .expect("a disposition within 5 s")
        {
            Some(Performative::Disposition(d)) => return d.state.expect("a state"),
            Some(Performative::Attach(_) | Performative::Flow(_)) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_delivery_split_over_frames_is_reassembled() {
    let harness = Harness::start("127.0.0.42", ListenerOptions::default()).await;
    let mut stream = raw::open_session(harness.addr).await;
    stream
        .write_all(&raw::perf_frame(0, &raw::sender_attach(0, "q1")))
        .await
        .unwrap();
    let body = vec![7u8; 3_000];
    let message = serde_amqp::to_vec(&Data(ByteBuf::from(body.clone()))).unwrap();
    send_in_frames(&mut stream, &message, 1_000).await;
    assert!(matches!(
        next_disposition(&mut stream).await,
        DeliveryState::Accepted(_)
    ));

    let bus: Arc<dyn Bus> = harness.bus.clone();
    let receiver = bus
        .receiver(
            &EntityPath::queue("q1"),
            ReceiveOptions::receive_and_delete(),
        )
        .await
        .unwrap();
    let got = receiver.receive(1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].message.body[..], &body[..]);
    harness.stop().await;
}

#[tokio::test]
async fn a_delivery_over_the_message_size_is_rejected_with_message_size_exceeded() {
    let options = ListenerOptions {
        max_message_size: 1_000,
        ..ListenerOptions::default()
    };
    let harness = Harness::start("127.0.0.43", options).await;
    let mut stream = raw::open_session(harness.addr).await;
    stream
        .write_all(&raw::perf_frame(0, &raw::sender_attach(0, "q1")))
        .await
        .unwrap();
    let message = serde_amqp::to_vec(&Data(ByteBuf::from(vec![1u8; 1_800]))).unwrap();
    send_in_frames(&mut stream, &message, 600).await;
    let DeliveryState::Rejected(rejected) = next_disposition(&mut stream).await else {
        panic!("expected rejected");
    };
    assert_eq!(
        rejected.error.expect("an error").condition,
        ErrorCondition::Custom(Symbol::from("com.microsoft:message-size-exceeded"))
    );
    harness.stop().await;
}
