//! Checks of delivery: round trip, routing, scheduling, duplicates, peek, batches, prefetch.

use std::time::Instant;

use chrono::Utc;

use super::{ctx, expect_kind, full_message, id, nothing, one, receiver, send};
use crate::conformance::{CheckResult, EVENT_WAIT, QUIET_WAIT, Topology};
use crate::{Bus, BusErrorKind, EntityPath, Message, MessageState, ReceiveOptions};

pub(in crate::conformance) async fn round_trip_preserves_the_message(
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

pub(in crate::conformance) async fn unknown_entity_is_entity_not_found(
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

pub(in crate::conformance) async fn schedule_then_cancel(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
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

pub(in crate::conformance) async fn scheduled_message_arrives_when_due(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
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

pub(in crate::conformance) async fn topic_fans_out_by_filter(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
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

pub(in crate::conformance) async fn duplicate_detection_drops_a_repeated_message_id(
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

pub(in crate::conformance) async fn receive_and_delete_removes_the_message(
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

pub(in crate::conformance) async fn peek_does_not_lock(bus: &dyn Bus, t: &Topology) -> CheckResult {
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

pub(in crate::conformance) async fn batch_is_atomic_and_size_limited(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
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

pub(in crate::conformance) async fn prefetch_locks_ahead(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
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

pub(in crate::conformance) async fn receivers_are_woken_by_sends(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
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
