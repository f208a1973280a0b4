//! The checks. Each starts from empty entities and leaves them empty.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{CheckResult, EVENT_WAIT, QUIET_WAIT, Topology};
use crate::{
    Bus, BusError, BusErrorKind, BusReceiver, DeadLetterOptions, EntityPath, Message, MessageState,
    PropertyValue, ReceiveOptions, ReceivedMessage,
};

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

fn ctx(what: &'static str) -> impl FnOnce(BusError) -> String {
    move |e| format!("{what}: {e}")
}

fn expect_kind<T>(
    result: Result<T, BusError>,
    kind: BusErrorKind,
    what: &str,
) -> Result<BusError, String> {
    match result {
        Ok(_) => Err(format!("{what}: succeeded, expected {kind}")),
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => Err(format!("{what}: expected {kind}, got {e}")),
    }
}

fn id() -> String {
    Uuid::new_v4().to_string()
}

async fn receiver(
    bus: &dyn Bus,
    path: EntityPath,
    options: ReceiveOptions,
) -> Result<Box<dyn BusReceiver>, String> {
    bus.receiver(&path, options)
        .await
        .map_err(|e| format!("receiver {path}: {e}"))
}

async fn one(r: &dyn BusReceiver, wait: Duration, what: &str) -> Result<ReceivedMessage, String> {
    let mut got = r
        .receive(1, wait)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    ensure!(
        got.len() == 1,
        "{what}: expected one message, got {}",
        got.len()
    );
    Ok(got.remove(0))
}

async fn nothing(r: &dyn BusReceiver, what: &str) -> CheckResult {
    let got = r
        .receive(10, QUIET_WAIT)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    ensure!(
        got.is_empty(),
        "{what}: expected nothing, got sequence numbers {:?}",
        got.iter().map(|m| m.sequence_number).collect::<Vec<_>>()
    );
    Ok(())
}

async fn send(bus: &dyn Bus, entity: &str, msg: Message) -> CheckResult {
    let sender = bus
        .sender(entity)
        .await
        .map_err(|e| format!("sender {entity}: {e}"))?;
    sender
        .send(msg)
        .await
        .map_err(|e| format!("send to {entity}: {e}"))
}

fn full_message() -> Message {
    let at = DateTime::<Utc>::from_timestamp_millis(1_767_225_600_123).unwrap_or_default();
    Message {
        body: bytes::Bytes::from_static(b"{\"hello\":\"world\"}"),
        message_id: Some(id()),
        correlation_id: Some("corr-1".into()),
        subject: Some("RuntimeDeploymentRequested".into()),
        content_type: Some("application/json".into()),
        ..Message::default()
    }
    .with_property("tenantId", "tenant-a")
    .with_property("eventVersion", 2i64)
    .with_property("ratio", PropertyValue::Double(0.25))
    .with_property("flag", true)
    .with_property("at", PropertyValue::Timestamp(at))
    .with_property("uuid", PropertyValue::Uuid(Uuid::nil()))
}

pub(super) async fn round_trip_preserves_the_message(bus: &dyn Bus, t: &Topology) -> CheckResult {
    let sent = full_message();
    send(bus, &t.queue, sent.clone()).await?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let got = one(r.as_ref(), EVENT_WAIT, "receive").await?;
    ensure!(
        got.message.body == sent.body,
        "body changed: {:?}",
        got.message.body
    );
    ensure!(
        got.message.message_id == sent.message_id,
        "message id changed: {:?}",
        got.message.message_id
    );
    ensure!(
        got.message.correlation_id == sent.correlation_id,
        "correlation id changed"
    );
    ensure!(
        got.message.subject == sent.subject,
        "subject changed: {:?}",
        got.message.subject
    );
    ensure!(
        got.message.content_type == sent.content_type,
        "content type changed"
    );
    ensure!(
        got.message.application_properties == sent.application_properties,
        "application properties changed: {:?}",
        got.message.application_properties
    );
    ensure!(
        got.sequence_number > 0,
        "sequence number {} is not positive",
        got.sequence_number
    );
    ensure!(
        got.delivery_count == 1,
        "first delivery has delivery count {}",
        got.delivery_count
    );
    ensure!(
        got.lock_token.is_some(),
        "peek-lock delivery without a lock token"
    );
    ensure!(
        got.locked_until.is_some_and(|u| u > got.enqueued_time),
        "locked until {:?} not after enqueue",
        got.locked_until
    );
    ensure!(got.state == MessageState::Active, "state {:?}", got.state);
    r.complete(&got).await.map_err(ctx("complete"))?;
    nothing(r.as_ref(), "after complete").await
}

pub(super) async fn unknown_entity_is_entity_not_found(
    bus: &dyn Bus,
    _t: &Topology,
) -> CheckResult {
    let e = expect_kind(
        bus.sender("no-such-entity").await,
        BusErrorKind::EntityNotFound,
        "sender to a missing queue",
    )?;
    ensure!(
        e.to_string().contains("no-such-entity"),
        "error does not name the entity: {e}"
    );
    let path = EntityPath::subscription("no-such-topic", "s");
    let e = expect_kind(
        bus.receiver(&path, ReceiveOptions::default()).await,
        BusErrorKind::EntityNotFound,
        "receiver",
    )?;
    ensure!(
        e.to_string().contains("no-such-topic"),
        "error does not name the entity: {e}"
    );
    Ok(())
}

pub(super) async fn abandon_redelivers_with_modified_properties(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
    send(
        bus,
        &t.queue,
        Message::new("abandon me").with_message_id(id()),
    )
    .await?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let first = one(r.as_ref(), EVENT_WAIT, "first receive").await?;
    let props = BTreeMap::from([("attempt".to_owned(), PropertyValue::Int(1))]);
    r.abandon(&first, props).await.map_err(ctx("abandon"))?;
    let second = one(r.as_ref(), EVENT_WAIT, "second receive").await?;
    ensure!(
        second.sequence_number == first.sequence_number,
        "a different message came back"
    );
    ensure!(
        second.delivery_count == 2,
        "delivery count after abandon is {}",
        second.delivery_count
    );
    ensure!(
        second.lock_token != first.lock_token,
        "the lock token was reused"
    );
    ensure!(
        second.message.application_properties.get("attempt") == Some(&PropertyValue::Int(1)),
        "modified property missing: {:?}",
        second.message.application_properties
    );
    r.complete(&second).await.map_err(ctx("complete"))
}

pub(super) async fn settling_with_a_stale_or_foreign_token_is_lock_lost(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
    send(bus, &t.queue, Message::new("a")).await?;
    send(bus, &t.short_lock_queue, Message::new("b")).await?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let other = receiver(
        bus,
        EntityPath::queue(&t.short_lock_queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let mine = one(r.as_ref(), EVENT_WAIT, "receive").await?;
    let foreign = one(other.as_ref(), EVENT_WAIT, "receive other").await?;
    expect_kind(
        r.complete(&foreign).await,
        BusErrorKind::MessageLockLost,
        "complete with another queue's token",
    )?;
    let mut forged = mine.clone();
    forged.lock_token = Some(Uuid::new_v4());
    expect_kind(
        r.complete(&forged).await,
        BusErrorKind::MessageLockLost,
        "complete with an unknown token",
    )?;
    expect_kind(
        r.abandon(&forged, BTreeMap::new()).await,
        BusErrorKind::MessageLockLost,
        "abandon with an unknown token",
    )?;
    r.complete(&mine).await.map_err(ctx("complete"))?;
    expect_kind(
        r.complete(&mine).await,
        BusErrorKind::MessageLockLost,
        "second complete",
    )?;
    expect_kind(
        r.defer(&mine).await,
        BusErrorKind::MessageLockLost,
        "defer after complete",
    )?;
    other
        .complete(&foreign)
        .await
        .map_err(ctx("complete the other message"))?;
    nothing(r.as_ref(), "after settling").await
}

pub(super) async fn expired_lock_redelivers_with_a_higher_delivery_count(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
    send(bus, &t.short_lock_queue, Message::new("slow consumer")).await?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.short_lock_queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let first = one(r.as_ref(), EVENT_WAIT, "first receive").await?;
    let second = one(r.as_ref(), EVENT_WAIT, "receive after lock expiry").await?;
    ensure!(
        second.sequence_number == first.sequence_number,
        "a different message came back"
    );
    ensure!(
        second.delivery_count == 2,
        "delivery count after lock expiry is {}",
        second.delivery_count
    );
    expect_kind(
        r.complete(&first).await,
        BusErrorKind::MessageLockLost,
        "complete with the expired lock",
    )?;
    r.complete(&second).await.map_err(ctx("complete"))
}

pub(super) async fn max_delivery_count_dead_letters(bus: &dyn Bus, t: &Topology) -> CheckResult {
    send(
        bus,
        &t.short_lock_queue,
        Message::new("poison").with_property("k", "v"),
    )
    .await?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.short_lock_queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    for attempt in 1..=2 {
        let m = one(r.as_ref(), EVENT_WAIT, "receive").await?;
        ensure!(
            m.delivery_count == attempt,
            "delivery {attempt} has delivery count {}",
            m.delivery_count
        );
        r.abandon(&m, BTreeMap::new())
            .await
            .map_err(ctx("abandon"))?;
    }
    nothing(r.as_ref(), "main queue after max deliveries").await?;
    let dlq = receiver(
        bus,
        EntityPath::queue(&t.short_lock_queue).dead_letter(),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let dead = one(dlq.as_ref(), EVENT_WAIT, "dead-letter receive").await?;
    ensure!(
        dead.dead_letter_reason.as_deref() == Some("MaxDeliveryCountExceeded"),
        "reason {:?}",
        dead.dead_letter_reason
    );
    ensure!(dead.message.body.as_ref() == b"poison", "body changed");
    ensure!(
        dead.message.application_properties.get("k") == Some(&"v".into()),
        "properties changed"
    );
    dlq.complete(&dead)
        .await
        .map_err(ctx("complete dead letter"))
}

pub(super) async fn dead_letter_keeps_body_and_properties(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
    let sent = full_message();
    send(bus, &t.queue, sent.clone()).await?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let m = one(r.as_ref(), EVENT_WAIT, "receive").await?;
    let mut opts = DeadLetterOptions::new("MalformedEnvelope", "eventId: required");
    opts.properties_to_modify
        .insert("worker".into(), "runtime-deployment".into());
    r.dead_letter(&m, opts).await.map_err(ctx("dead-letter"))?;
    nothing(r.as_ref(), "main queue after dead-letter").await?;
    let options = ReceiveOptions {
        sub_queue: crate::SubQueue::DeadLetter,
        ..ReceiveOptions::default()
    };
    let dlq = receiver(bus, EntityPath::queue(&t.queue), options).await?;
    let dead = one(dlq.as_ref(), EVENT_WAIT, "dead-letter receive").await?;
    ensure!(
        dead.sequence_number == m.sequence_number,
        "sequence number changed"
    );
    ensure!(dead.message.body == sent.body, "body changed");
    ensure!(
        dead.message.message_id == sent.message_id,
        "message id changed"
    );
    ensure!(
        dead.dead_letter_reason.as_deref() == Some("MalformedEnvelope"),
        "reason {:?}",
        dead.dead_letter_reason
    );
    ensure!(
        dead.dead_letter_description.as_deref() == Some("eventId: required"),
        "description {:?}",
        dead.dead_letter_description
    );
    for (k, v) in &sent.application_properties {
        ensure!(
            dead.message.application_properties.get(k) == Some(v),
            "property {k} changed"
        );
    }
    ensure!(
        dead.message.application_properties.get("worker") == Some(&"runtime-deployment".into()),
        "added property missing"
    );
    dlq.complete(&dead)
        .await
        .map_err(ctx("complete dead letter"))?;
    nothing(dlq.as_ref(), "dead-letter queue after complete").await
}

pub(super) async fn defer_then_receive_deferred(bus: &dyn Bus, t: &Topology) -> CheckResult {
    send(bus, &t.queue, Message::new("later")).await?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let m = one(r.as_ref(), EVENT_WAIT, "receive").await?;
    r.defer(&m).await.map_err(ctx("defer"))?;
    nothing(r.as_ref(), "receive after defer").await?;
    let peeked = r
        .peek(Some(m.sequence_number), 1)
        .await
        .map_err(ctx("peek"))?;
    ensure!(
        peeked
            .first()
            .is_some_and(|p| p.state == MessageState::Deferred),
        "peek does not show it deferred: {peeked:?}"
    );
    let got = r
        .receive_deferred(&[m.sequence_number])
        .await
        .map_err(ctx("receive deferred"))?;
    ensure!(
        got.len() == 1 && got[0].lock_token.is_some(),
        "receive_deferred returned {got:?}"
    );
    ensure!(
        got[0].delivery_count == 2,
        "delivery count of deferred delivery is {}",
        got[0].delivery_count
    );
    r.complete(&got[0])
        .await
        .map_err(ctx("complete deferred"))?;
    expect_kind(
        r.receive_deferred(&[m.sequence_number]).await,
        BusErrorKind::MessageNotFound,
        "receive deferred again",
    )?;
    Ok(())
}

pub(super) async fn schedule_then_cancel(bus: &dyn Bus, t: &Topology) -> CheckResult {
    let sender = bus.sender(&t.queue).await.map_err(ctx("sender"))?;
    let at = Utc::now() + chrono::Duration::hours(1);
    let seq = sender
        .schedule(Message::new("tomorrow"), at)
        .await
        .map_err(ctx("schedule"))?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    nothing(r.as_ref(), "receive before the scheduled time").await?;
    let peeked = r.peek(Some(seq), 1).await.map_err(ctx("peek"))?;
    ensure!(
        peeked
            .first()
            .is_some_and(|p| p.sequence_number == seq && p.state == MessageState::Scheduled),
        "peek does not show the scheduled message: {peeked:?}"
    );
    sender.cancel_scheduled(seq).await.map_err(ctx("cancel"))?;
    let peeked = r
        .peek(Some(seq), 1)
        .await
        .map_err(ctx("peek after cancel"))?;
    ensure!(
        peeked.iter().all(|p| p.sequence_number != seq),
        "cancelled message still there"
    );
    expect_kind(
        sender.cancel_scheduled(seq).await,
        BusErrorKind::MessageNotFound,
        "cancel twice",
    )?;
    Ok(())
}

pub(super) async fn scheduled_message_arrives_when_due(bus: &dyn Bus, t: &Topology) -> CheckResult {
    let sender = bus.sender(&t.queue).await.map_err(ctx("sender"))?;
    let at = Utc::now() + chrono::Duration::milliseconds(800);
    let seq = sender
        .schedule(Message::new("soon"), at)
        .await
        .map_err(ctx("schedule"))?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let m = one(r.as_ref(), EVENT_WAIT, "receive the scheduled message").await?;
    ensure!(
        m.sequence_number == seq,
        "got sequence number {}, scheduled {seq}",
        m.sequence_number
    );
    ensure!(
        m.enqueued_time >= at - chrono::Duration::milliseconds(5),
        "enqueued at {} before its time {at}",
        m.enqueued_time
    );
    r.complete(&m).await.map_err(ctx("complete"))
}

pub(super) async fn renew_lock_extends_the_lock(bus: &dyn Bus, t: &Topology) -> CheckResult {
    send(bus, &t.short_lock_queue, Message::new("long job")).await?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.short_lock_queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let m = one(r.as_ref(), EVENT_WAIT, "receive").await?;
    let before = m.locked_until.ok_or("no locked_until")?;
    let mut until = before;
    // Keep the lock alive for well over one lock duration.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        nothing(r.as_ref(), "receive while the lock is renewed").await?;
        until = r.renew_lock(&m).await.map_err(ctx("renew"))?;
    }
    ensure!(
        until > before,
        "renewed lock {until} is not later than {before}"
    );
    r.complete(&m).await.map_err(ctx("complete after renewals"))
}

pub(super) async fn topic_fans_out_by_filter(bus: &dyn Bus, t: &Topology) -> CheckResult {
    let sender = bus.sender(&t.topic).await.map_err(ctx("sender"))?;
    let matching = Message::new("match").with_subject(&t.filter_subject);
    let other = Message::new("other").with_subject("SomethingElse");
    sender
        .send_batch(vec![matching, other])
        .await
        .map_err(ctx("send batch"))?;
    let all = receiver(
        bus,
        EntityPath::subscription(&t.topic, &t.all_subscription),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let filtered = receiver(
        bus,
        EntityPath::subscription(&t.topic, &t.filtered_subscription),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let mut got_all = Vec::new();
    while got_all.len() < 2 {
        let batch = all
            .receive(2, EVENT_WAIT)
            .await
            .map_err(ctx("receive all"))?;
        ensure!(
            !batch.is_empty(),
            "subscription without rules got {} of 2",
            got_all.len()
        );
        got_all.extend(batch);
    }
    let f = one(filtered.as_ref(), EVENT_WAIT, "receive filtered").await?;
    ensure!(
        f.message.body.as_ref() == b"match",
        "filtered subscription got {:?}",
        f.message.body
    );
    ensure!(
        got_all
            .iter()
            .any(|m| m.sequence_number == f.sequence_number),
        "the copies carry different sequence numbers"
    );
    nothing(filtered.as_ref(), "filtered subscription after the match").await?;
    for m in &got_all {
        all.complete(m).await.map_err(ctx("complete all"))?;
    }
    filtered
        .complete(&f)
        .await
        .map_err(ctx("complete filtered"))
}

pub(super) async fn duplicate_detection_drops_a_repeated_message_id(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
    let message_id = id();
    for body in ["first", "second"] {
        send(
            bus,
            &t.dedupe_queue,
            Message::new(body).with_message_id(&message_id),
        )
        .await?;
    }
    send(
        bus,
        &t.dedupe_queue,
        Message::new("third").with_message_id(id()),
    )
    .await?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.dedupe_queue),
        ReceiveOptions::receive_and_delete(),
    )
    .await?;
    let mut bodies = Vec::new();
    loop {
        let got = r.receive(10, QUIET_WAIT).await.map_err(ctx("receive"))?;
        if got.is_empty() {
            break;
        }
        bodies.extend(
            got.into_iter()
                .map(|m| String::from_utf8_lossy(&m.message.body).into_owned()),
        );
    }
    ensure!(bodies == ["first", "third"], "received {bodies:?}");
    Ok(())
}

pub(super) async fn receive_and_delete_removes_the_message(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
    send(bus, &t.queue, Message::new("once")).await?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::receive_and_delete(),
    )
    .await?;
    let m = one(r.as_ref(), EVENT_WAIT, "receive").await?;
    ensure!(
        m.lock_token.is_none(),
        "receive-and-delete delivery has a lock token"
    );
    let peeked = r.peek(Some(0), 10).await.map_err(ctx("peek"))?;
    ensure!(peeked.is_empty(), "message still there: {peeked:?}");
    Ok(())
}

pub(super) async fn peek_does_not_lock(bus: &dyn Bus, t: &Topology) -> CheckResult {
    let sender = bus.sender(&t.queue).await.map_err(ctx("sender"))?;
    sender
        .send_batch((0..3).map(|i| Message::new(format!("m{i}"))).collect())
        .await
        .map_err(ctx("send"))?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let peeked = r.peek(None, 10).await.map_err(ctx("peek"))?;
    ensure!(peeked.len() == 3, "peeked {} of 3", peeked.len());
    ensure!(
        peeked
            .windows(2)
            .all(|w| w[0].sequence_number < w[1].sequence_number),
        "peek is not in sequence order"
    );
    ensure!(
        peeked.iter().all(|m| m.lock_token.is_none()),
        "peek returned lock tokens"
    );
    let more = r.peek(None, 10).await.map_err(ctx("peek again"))?;
    ensure!(
        more.is_empty(),
        "a second peek without a start did not continue after the first: {more:?}"
    );
    let got = r.receive(10, EVENT_WAIT).await.map_err(ctx("receive"))?;
    ensure!(
        got.len() == 3 && got.iter().all(|m| m.delivery_count == 1),
        "receive after peek: {got:?}"
    );
    for m in &got {
        r.complete(m).await.map_err(ctx("complete"))?;
    }
    Ok(())
}

pub(super) async fn batch_is_atomic_and_size_limited(bus: &dyn Bus, t: &Topology) -> CheckResult {
    let sender = bus.sender(&t.queue).await.map_err(ctx("sender"))?;
    let too_big = Message::new(vec![0u8; 300 * 1024]);
    expect_kind(
        sender.send(too_big.clone()).await,
        BusErrorKind::MessageSizeExceeded,
        "send 300 KiB",
    )?;
    expect_kind(
        sender
            .send_batch(vec![Message::new("small"), too_big])
            .await,
        BusErrorKind::MessageSizeExceeded,
        "batch with 300 KiB",
    )?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::receive_and_delete(),
    )
    .await?;
    nothing(r.as_ref(), "after the refused batch").await?;
    sender
        .send_batch((0..5).map(|i| Message::new(format!("b{i}"))).collect())
        .await
        .map_err(ctx("send batch"))?;
    let mut n = 0;
    while n < 5 {
        let got = r.receive(5, EVENT_WAIT).await.map_err(ctx("receive"))?;
        ensure!(!got.is_empty(), "received {n} of 5");
        n += got.len();
    }
    Ok(())
}

pub(super) async fn expired_message_is_dead_lettered(bus: &dyn Bus, t: &Topology) -> CheckResult {
    let msg = Message {
        time_to_live: Some(Duration::from_millis(500)),
        ..Message::new("stale")
    };
    send(bus, &t.short_lock_queue, msg).await?;
    let dlq = receiver(
        bus,
        EntityPath::queue(&t.short_lock_queue).dead_letter(),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let dead = one(dlq.as_ref(), EVENT_WAIT, "dead-letter receive after expiry").await?;
    ensure!(
        dead.dead_letter_reason.as_deref() == Some("TTLExpiredException"),
        "reason {:?}",
        dead.dead_letter_reason
    );
    ensure!(dead.message.body.as_ref() == b"stale", "body changed");
    dlq.complete(&dead).await.map_err(ctx("complete"))?;
    let r = receiver(
        bus,
        EntityPath::queue(&t.short_lock_queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    nothing(r.as_ref(), "main queue after expiry").await
}

pub(super) async fn prefetch_locks_ahead(bus: &dyn Bus, t: &Topology) -> CheckResult {
    let sender = bus.sender(&t.queue).await.map_err(ctx("sender"))?;
    sender
        .send_batch((0..3).map(|i| Message::new(format!("p{i}"))).collect())
        .await
        .map_err(ctx("send"))?;
    let options = ReceiveOptions {
        prefetch: 10,
        ..ReceiveOptions::default()
    };
    let r = receiver(bus, EntityPath::queue(&t.queue), options).await?;
    let first = one(r.as_ref(), EVENT_WAIT, "receive one").await?;
    let competitor = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    nothing(
        competitor.as_ref(),
        "a second receiver while the first holds prefetched messages",
    )
    .await?;
    let rest = r
        .receive(10, QUIET_WAIT)
        .await
        .map_err(ctx("receive the prefetched"))?;
    ensure!(rest.len() == 2, "prefetched {} of 2", rest.len());
    for m in std::iter::once(&first).chain(&rest) {
        r.complete(m).await.map_err(ctx("complete"))?;
    }
    r.close().await.map_err(ctx("close"))
}

pub(super) async fn receivers_are_woken_by_sends(bus: &dyn Bus, t: &Topology) -> CheckResult {
    let r = receiver(
        bus,
        EntityPath::queue(&t.queue),
        ReceiveOptions::peek_lock(),
    )
    .await?;
    let started = Instant::now();
    let receive = r.receive(1, EVENT_WAIT);
    let send = async {
        // Let the receive start waiting first; a yield is enough for any adapter that awaits.
        tokio::task::yield_now().await;
        send(bus, &t.queue, Message::new("wake up")).await
    };
    let (got, sent) = tokio::join!(receive, send);
    sent?;
    let got = got.map_err(ctx("receive"))?;
    ensure!(
        got.len() == 1,
        "the waiting receive returned {} messages",
        got.len()
    );
    ensure!(
        started.elapsed() < EVENT_WAIT / 2,
        "the waiting receive took {:?}",
        started.elapsed()
    );
    r.complete(&got[0]).await.map_err(ctx("complete"))
}
