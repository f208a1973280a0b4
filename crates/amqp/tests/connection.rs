//! Connection-level behaviour with a raw peer: heartbeats, idle timeout, multi-frame
//! deliveries, the message size bound, and completes coalesced across one read.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fe2o3_amqp_types::definitions::{
    AmqpError as Condition, ErrorCondition, Handle, ReceiverSettleMode, Role, SenderSettleMode,
};
use fe2o3_amqp_types::messaging::{Accepted, Data, DeliveryState, Source, Target, TargetArchetype};
use fe2o3_amqp_types::performatives::{
    Attach, ChannelMax, Disposition, Flow, MaxFrameSize, Open, Performative, Transfer,
};
use fe2o3_amqp_types::primitives::Symbol;
use fleet_amqp::ListenerOptions;
use fleet_bus::{
    Bus, BusError, BusReceiver, BusSender, DeadLetterOptions, EntityPath, Message, PropertyValue,
    ReceiveOptions, ReceivedMessage,
};
use serde_bytes::ByteBuf;
use support::{Harness, raw};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

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

/// A backend that records every settlement the listener asks of the engine behind it.
struct Recording {
    inner: Arc<dyn Bus>,
    calls: Arc<Mutex<Vec<Settled>>>,
}

/// One settlement call and the lock tokens it named.
#[derive(Debug, Clone, PartialEq)]
enum Settled {
    One(&'static str, Option<Uuid>),
    Many(Vec<Option<Uuid>>),
}

struct RecordingReceiver {
    inner: Box<dyn BusReceiver>,
    calls: Arc<Mutex<Vec<Settled>>>,
}

#[async_trait]
impl Bus for Recording {
    async fn sender(&self, entity: &str) -> Result<Box<dyn BusSender>, BusError> {
        self.inner.sender(entity).await
    }

    async fn receiver(
        &self,
        entity: &EntityPath,
        options: ReceiveOptions,
    ) -> Result<Box<dyn BusReceiver>, BusError> {
        Ok(Box::new(RecordingReceiver {
            inner: self.inner.receiver(entity, options).await?,
            calls: self.calls.clone(),
        }))
    }
}

impl RecordingReceiver {
    fn record(&self, call: Settled) {
        self.calls.lock().expect("calls").push(call);
    }
}

#[async_trait]
impl BusReceiver for RecordingReceiver {
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<ReceivedMessage>, BusError> {
        self.inner.receive(max, wait).await
    }

    async fn complete(&self, m: &ReceivedMessage) -> Result<(), BusError> {
        self.record(Settled::One("complete", m.lock_token));
        self.inner.complete(m).await
    }

    async fn complete_many(&self, ms: &[ReceivedMessage]) -> Vec<Result<(), BusError>> {
        self.record(Settled::Many(ms.iter().map(|m| m.lock_token).collect()));
        self.inner.complete_many(ms).await
    }

    async fn abandon(
        &self,
        m: &ReceivedMessage,
        properties: BTreeMap<String, PropertyValue>,
    ) -> Result<(), BusError> {
        self.record(Settled::One("abandon", m.lock_token));
        self.inner.abandon(m, properties).await
    }

    async fn dead_letter(
        &self,
        m: &ReceivedMessage,
        options: DeadLetterOptions,
    ) -> Result<(), BusError> {
        self.record(Settled::One("dead_letter", m.lock_token));
        self.inner.dead_letter(m, options).await
    }

    async fn defer(&self, m: &ReceivedMessage) -> Result<(), BusError> {
        self.record(Settled::One("defer", m.lock_token));
        self.inner.defer(m).await
    }

    async fn receive_deferred(&self, numbers: &[i64]) -> Result<Vec<ReceivedMessage>, BusError> {
        self.inner.receive_deferred(numbers).await
    }

    async fn renew_lock(&self, m: &ReceivedMessage) -> Result<DateTime<Utc>, BusError> {
        self.inner.renew_lock(m).await
    }

    async fn peek(&self, from: Option<i64>, max: usize) -> Result<Vec<ReceivedMessage>, BusError> {
        self.inner.peek(from, max).await
    }

    async fn close(&self) -> Result<(), BusError> {
        self.inner.close().await
    }
}

fn disposition(first: u32, last: Option<u32>, settled: bool) -> Performative {
    Performative::Disposition(Disposition {
        role: Role::Receiver,
        first,
        last,
        settled,
        state: Some(DeliveryState::Accepted(Accepted {})),
        batchable: false,
    })
}

/// Six peek-lock deliveries are completed by dispositions written in one go — single,
/// first..last range, settled (no answer wanted) and unsettled — while the lock of one inside
/// the range was lost. The listener settles all six in one `complete_many`, each exactly once,
/// answers the five unsettled ones each exactly once, and fails only the one that lost its lock.
#[tokio::test]
async fn completes_written_together_settle_once_each_in_one_call_and_fail_only_the_lost_lock() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let recorded = calls.clone();
    let harness = Harness::start_with("127.0.0.44", ListenerOptions::default(), move |inner| {
        Arc::new(Recording {
            inner,
            calls: recorded,
        })
    })
    .await;
    let engine: Arc<dyn Bus> = harness.bus.clone();
    let sender = engine.sender("q1").await.unwrap();
    sender
        .send_batch((0..6).map(|i| Message::new(format!("m{i}"))).collect())
        .await
        .unwrap();

    let mut stream = raw::open_session(harness.addr).await;
    let attach = Performative::Attach(Attach {
        name: "raw-receiver".into(),
        handle: Handle(0),
        role: Role::Receiver,
        snd_settle_mode: SenderSettleMode::Unsettled,
        rcv_settle_mode: ReceiverSettleMode::Second,
        source: Some(Box::new(Source::builder().address("q1").build())),
        target: Some(Box::new(TargetArchetype::Target(
            Target::builder().address("raw").build(),
        ))),
        unsettled: None,
        incomplete_unsettled: false,
        initial_delivery_count: None,
        max_message_size: None,
        offered_capabilities: None,
        desired_capabilities: None,
        properties: None,
    });
    stream
        .write_all(&raw::perf_frame(0, &attach))
        .await
        .unwrap();
    stream
        .write_all(&raw::perf_frame(0, &flow(6, false)))
        .await
        .unwrap();
    // Delivery id → lock token (the tag is the token in .NET GUID byte order).
    let mut delivered = BTreeMap::new();
    while delivered.len() < 6 {
        match tokio::time::timeout(Duration::from_secs(5), raw::read_perf(&mut stream))
            .await
            .expect("six deliveries within 5 s")
        {
            Some(Performative::Transfer(t)) => {
                let tag: [u8; 16] = t.delivery_tag.expect("a tag")[..].try_into().unwrap();
                delivered.insert(t.delivery_id.expect("an id"), Uuid::from_bytes_le(tag));
            }
            Some(Performative::Attach(_) | Performative::Flow(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let ids: Vec<u32> = delivered.keys().copied().collect();
    assert_eq!(
        ids,
        (ids[0]..ids[0] + 6).collect::<Vec<_>>(),
        "consecutive ids"
    );
    let lost = ids[2];
    // Settled elsewhere first (as after a lock expiry and redelivery): the listener still holds
    // the token, the engine no longer does.
    let elsewhere = engine
        .receiver(&EntityPath::queue("q1"), ReceiveOptions::peek_lock())
        .await
        .unwrap();
    let stale = ReceivedMessage {
        lock_token: Some(delivered[&lost]),
        ..ReceivedMessage::default()
    };
    elsewhere.complete(&stale).await.unwrap();

    let mut burst = Vec::new();
    for perf in [
        disposition(ids[0], None, false),
        disposition(ids[1], Some(ids[3]), false),
        disposition(ids[4], None, true),
        disposition(ids[5], None, false),
    ] {
        burst.extend(raw::perf_frame(0, &perf));
    }
    stream.write_all(&burst).await.unwrap();

    let mut answers: BTreeMap<u32, Vec<DeliveryState>> = BTreeMap::new();
    let mut ranges = 0;
    let mut record = |d: Disposition| {
        assert!(d.settled, "the listener's answer settles: {d:?}");
        assert_eq!(d.role, Role::Sender);
        let last = d.last.unwrap_or(d.first);
        ranges += usize::from(last != d.first);
        for id in d.first..=last {
            answers
                .entry(id)
                .or_default()
                .push(d.state.clone().expect("a state"));
        }
        answers.len()
    };
    while let Some(d) = next_answer(&mut stream).await {
        if record(d) == 5 {
            break;
        }
    }
    // Whatever else the burst is owed is written before a later flow's echo.
    stream
        .write_all(&raw::perf_frame(0, &flow(0, true)))
        .await
        .unwrap();
    while let Some(d) = next_answer(&mut stream).await {
        record(d);
    }
    let answered: Vec<u32> = answers.keys().copied().collect();
    assert_eq!(answered, vec![ids[0], ids[1], ids[2], ids[3], ids[5]]);
    for (id, states) in &answers {
        assert_eq!(states.len(), 1, "delivery {id} answered once: {states:?}");
        match &states[0] {
            DeliveryState::Rejected(rejected) if *id == lost => assert_eq!(
                rejected.error.as_ref().expect("an error").condition,
                ErrorCondition::Custom(Symbol::from("com.microsoft:message-lock-lost"))
            ),
            DeliveryState::Accepted(_) if *id != lost => {}
            other => panic!("delivery {id}: unexpected {other:?}"),
        }
    }
    assert!(
        ranges > 0,
        "consecutive accepted deliveries share one answer"
    );
    let tokens: Vec<Option<Uuid>> = delivered.values().map(|t| Some(*t)).collect();
    assert_eq!(
        *calls.lock().unwrap(),
        vec![Settled::Many(tokens)],
        "one engine call settled all six, each once"
    );
    let left = elsewhere.peek(Some(0), 10).await.unwrap();
    assert!(left.is_empty(), "every message is gone: {left:?}");
    harness.stop().await;
}

/// The next disposition, or `None` at a session flow (the answer to an echo).
async fn next_answer(stream: &mut tokio::net::TcpStream) -> Option<Disposition> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), raw::read_perf(stream))
            .await
            .expect("an answer within 5 s")
        {
            Some(Performative::Disposition(d)) => return Some(d),
            Some(Performative::Flow(f)) if f.handle.is_none() => return None,
            Some(Performative::Flow(_)) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A flow on handle 0 granting `credit`, or a session flow asking for an echo.
fn flow(credit: u32, echo: bool) -> Performative {
    Performative::Flow(Flow {
        next_incoming_id: Some(1),
        incoming_window: 1_000,
        next_outgoing_id: 0,
        outgoing_window: 1_000,
        handle: (!echo).then_some(Handle(0)),
        delivery_count: (!echo).then_some(0),
        link_credit: (!echo).then_some(credit),
        available: None,
        drain: false,
        echo,
        properties: None,
    })
}
