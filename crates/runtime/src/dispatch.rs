//! The receive loop and the life of one delivery: pipeline under its span, lock renewal while
//! it runs, then settlement (complete, schedule-then-complete for retries, dead-letter), then
//! waking the outbox relay.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fleet_bus::{BusReceiver, DeadLetterOptions, ReceivedMessage};
use fleet_telemetry::{MessageSpanInfo, message_span, record_disposition, record_failure};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::disposition::Disposition;
use crate::pipeline::{Processed, process_message};
use crate::shared::{Shared, WorkerStats};
use crate::verdict::{Attempt, Verdict, after, dead_letter_properties, decide, retry_copy};

// How long one receive call waits for a first message; bounds how late a drain notices.
const RECEIVE_WAIT: Duration = Duration::from_millis(500);

/// Receives until `draining` turns true, spawning one task per delivery into `tasks`.
pub(crate) async fn receive_loop<P: Send + Sync + 'static>(
    shared: Arc<Shared<P>>,
    receiver: Arc<dyn BusReceiver>,
    permits: Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
    mut draining: watch::Receiver<bool>,
    hard_stop: watch::Receiver<bool>,
) {
    loop {
        // Reap finished tasks so the set does not grow with throughput.
        while tasks.try_join_next().is_some() {}
        let first = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = draining.wait_for(|d| *d) => return,
        };
        let mut held = vec![first];
        let extra = permits.available_permits();
        if let Some(p) = u32::try_from(extra)
            .ok()
            .filter(|n| *n > 0)
            .and_then(|n| permits.clone().try_acquire_many_owned(n).ok())
        {
            held.push(p);
        }
        let want: usize = held.iter().map(|p| p.num_permits()).sum();
        if *draining.borrow() {
            return;
        }
        let received = match receiver.receive(want, RECEIVE_WAIT).await {
            Ok(m) => {
                shared.stats.bus_healthy.store(true, Ordering::Relaxed);
                m
            }
            Err(e) => {
                shared.stats.bus_healthy.store(false, Ordering::Relaxed);
                tracing::warn!(error = %e, "receiving failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = draining.wait_for(|d| *d) => return,
                }
                continue;
            }
        };
        if *draining.borrow() {
            // Shutdown began while this receive was waiting: hand these back untouched.
            for msg in &received {
                let _ = receiver.abandon(msg, Default::default()).await;
            }
            return;
        }
        // One permit per delivery; unused ones go back when `held` drops.
        let mut singles = Vec::with_capacity(received.len());
        for mut p in held {
            while p.num_permits() > 1 && singles.len() < received.len() {
                if let Some(one) = p.split(1) {
                    singles.push(one);
                }
            }
            if singles.len() < received.len() {
                singles.push(p);
            }
        }
        for (msg, permit) in received.into_iter().zip(singles) {
            WorkerStats::bump(&shared.stats.received);
            let (shared, receiver, hard_stop) =
                (shared.clone(), receiver.clone(), hard_stop.clone());
            tasks.spawn(async move {
                let _permit = permit;
                deliver(shared, receiver, msg, hard_stop).await;
            });
        }
    }
}

async fn deliver<P: Send + Sync + 'static>(
    shared: Arc<Shared<P>>,
    receiver: Arc<dyn BusReceiver>,
    msg: ReceivedMessage,
    mut hard_stop: watch::Receiver<bool>,
) {
    let props = &msg.message.application_properties;
    let prop = |k: &str| props.get(k).and_then(|v| v.as_str());
    let span = message_span(&MessageSpanInfo {
        worker: &shared.def.name,
        destination: &shared.config.topic,
        subscription: Some(&shared.config.subscription),
        message_id: msg.message.message_id.as_deref(),
        conversation_id: msg.message.correlation_id.as_deref(),
        delivery_count: msg.delivery_count,
        traceparent: prop("traceparent"),
        trace_id: None,
        tenant_id: prop("tenantId"),
        event_id: None,
        event_type: prop("eventType"),
    });
    let stats = shared.stats.clone();
    stats.in_flight.fetch_add(1, Ordering::Relaxed);
    shared.in_flight.add(1);
    let work = async {
        let processed = tokio::select! {
            p = process_message(&shared, &msg) => Some(p),
            _ = renew_lock(&shared, receiver.as_ref(), &msg) => None,
            _ = hard_stop.wait_for(|s| *s) => None,
        };
        match processed {
            Some(p) => settle(&shared, receiver.as_ref(), &msg, p).await,
            None => {
                // Grace period over: give the message back, never dead-letter it (rule 11).
                record_disposition(
                    &tracing::Span::current(),
                    fleet_telemetry::disposition::ABANDON,
                );
                WorkerStats::bump(&stats.abandoned);
                fleet_telemetry::events::MessageAbandoned {
                    worker: &shared.def.name,
                    reason: "shutdown grace period over",
                }
                .emit(&shared.metrics);
                if let Err(e) = receiver.abandon(&msg, Default::default()).await {
                    tracing::warn!(error = %e, "abandoning at shutdown failed; the lock will expire");
                }
            }
        }
    };
    work.instrument(span).await;
    stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    shared.in_flight.add(-1);
}

/// Keeps the lock alive while a long handler runs: renews when two thirds of it have passed.
/// Never completes on success; on a failed renewal it stops renewing (the settle will then fail
/// with lock lost and the message comes back, where dedupe catches a finished run).
async fn renew_lock<P>(shared: &Shared<P>, receiver: &dyn BusReceiver, msg: &ReceivedMessage) {
    let Some(mut locked_until) = msg.locked_until else {
        return std::future::pending().await;
    };
    let lock = (locked_until - shared.clock.now()).max(chrono::Duration::milliseconds(300));
    loop {
        let renew_at = locked_until - lock / 3;
        shared.clock.sleep_until(renew_at).await;
        match receiver.renew_lock(msg).await {
            Ok(until) => {
                WorkerStats::bump(&shared.stats.lock_renewals);
                locked_until = until;
            }
            Err(e) => {
                tracing::warn!(error = %e, "lock renewal failed");
                return std::future::pending().await;
            }
        }
    }
}

async fn settle<P: Send + Sync + 'static>(
    shared: &Shared<P>,
    receiver: &dyn BusReceiver,
    msg: &ReceivedMessage,
    p: Processed,
) {
    use fleet_telemetry::events;
    let span = tracing::Span::current();
    let worker = &shared.def.name;
    let attempt = Attempt::of(msg);
    let now = shared.clock.now();
    let disposition = decide(&p.verdict, attempt, &shared.def.retry, &mut rand::rng());
    let event_type = p
        .envelope
        .as_ref()
        .map(|e| e.event_type.as_str())
        .unwrap_or("unknown");
    let last_error = match &p.verdict {
        Verdict::Failed { error, .. } => error.clone(),
        Verdict::Rejected {
            reason,
            description,
        } => format!("{reason}: {description}"),
        Verdict::Done { .. } => String::new(),
    };
    if let Verdict::Failed { kind, error } = &p.verdict {
        record_failure(&span, kind.as_str());
        events::HandlerFailed {
            worker,
            event_type,
            kind: kind.as_str(),
            error,
            attempt: attempt.number,
            duration: p.handler_time.unwrap_or_default(),
        }
        .emit(&shared.metrics);
    }
    match disposition {
        Disposition::Complete => {
            if matches!(p.verdict, Verdict::Done { dedupe: true }) {
                WorkerStats::bump(&shared.stats.dedupe_hits);
                events::DedupeHit { worker }.emit(&shared.metrics);
            }
            record_disposition(&span, fleet_telemetry::disposition::COMPLETE);
            if let Err(e) = receiver.complete(msg).await {
                tracing::warn!(error = %e, "completing failed; the redelivery will be deduplicated");
            }
        }
        Disposition::Retry(delay) => {
            let history = Attempt {
                first_failure: Some(attempt.first_failure.unwrap_or(now)),
                ..attempt
            };
            let event_id = p.envelope.as_ref().map(|e| e.event_id);
            let copy = retry_copy(
                msg,
                &shared.config.subscription,
                history,
                now,
                &last_error,
                event_id,
            );
            // Schedule first, then complete: a crash in between leaves the original to be
            // redelivered, and the duplicate run is absorbed by inbox dedupe.
            match shared.retry_sender.schedule(copy, after(now, delay)).await {
                Ok(_) => {
                    WorkerStats::bump(&shared.stats.retried);
                    events::MessageRetried {
                        worker,
                        event_type,
                        next_attempt: attempt.number + 1,
                        max_attempts: shared.def.retry.max_attempts,
                        delay,
                    }
                    .emit(&shared.metrics);
                    record_disposition(&span, fleet_telemetry::disposition::COMPLETE);
                    if let Err(e) = receiver.complete(msg).await {
                        tracing::warn!(error = %e, "completing after scheduling a retry failed");
                    }
                }
                Err(e) => {
                    // Could not schedule: release the lock so the broker redelivers.
                    tracing::warn!(error = %e, "scheduling a retry failed; abandoning instead");
                    record_disposition(&span, fleet_telemetry::disposition::ABANDON);
                    events::MessageAbandoned {
                        worker,
                        reason: "retry scheduling failed",
                    }
                    .emit(&shared.metrics);
                    let _ = receiver.abandon(msg, Default::default()).await;
                }
            }
        }
        Disposition::DeadLetter {
            reason,
            description,
        } => {
            WorkerStats::bump(&shared.stats.dead_lettered);
            record_disposition(&span, fleet_telemetry::disposition::DEAD_LETTER);
            record_failure(&span, reason.as_str());
            events::MessageDeadLettered {
                worker,
                reason: reason.as_str(),
                description: &description,
                attempts: attempt.number,
            }
            .emit(&shared.metrics);
            let opts = DeadLetterOptions {
                reason: reason.as_str().to_owned(),
                description,
                properties_to_modify: dead_letter_properties(worker, attempt, now, &last_error),
            };
            if let Err(e) = receiver.dead_letter(msg, opts).await {
                tracing::warn!(error = %e, "dead-lettering failed; the message will be redelivered");
            }
        }
    }
    if p.wrote_outbox {
        shared.relay.wake();
    }
}
