//! Checks of settlement: abandon, lock expiry and renewal, dead-lettering, deferral, expiry.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{ctx, expect_kind, full_message, id, nothing, one, receiver, send};
use crate::conformance::{CheckResult, EVENT_WAIT, Topology};
use crate::{
    Bus, BusErrorKind, DeadLetterOptions, EntityPath, Message, MessageState, PropertyValue,
    ReceiveOptions,
};

pub(in crate::conformance) async fn abandon_redelivers_with_modified_properties(
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

pub(in crate::conformance) async fn settling_with_a_stale_or_foreign_token_is_lock_lost(
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

pub(in crate::conformance) async fn expired_lock_redelivers_with_a_higher_delivery_count(
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

pub(in crate::conformance) async fn max_delivery_count_dead_letters(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
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

pub(in crate::conformance) async fn dead_letter_keeps_body_and_properties(
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

pub(in crate::conformance) async fn defer_then_receive_deferred(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
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

pub(in crate::conformance) async fn renew_lock_extends_the_lock(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
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

pub(in crate::conformance) async fn expired_message_is_dead_lettered(
    bus: &dyn Bus,
    t: &Topology,
) -> CheckResult {
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
