//! The consumer rules of one delivery, in order: decode, route, tenant guard, ordering key,
//! dedupe, handle, commit. Settling and publishing happen in [`crate::settle`] afterwards.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use fleet_bus::ReceivedMessage;
use fleet_envelope::{Envelope, EventType};
use fleet_store::{StoreError, StoreErrorKind, UnitOfWork};
use uuid::Uuid;

use crate::context::{HandlerContext, Trigger};
use crate::definition::TimerDef;
use crate::disposition::DeadLetterReason;
use crate::handler_error::HandlerErrorKind;
use crate::outbox::outbox_message;
use crate::shared::{Shared, WorkerStats};
use crate::timer::TimerTick;
use crate::verdict::Verdict;

/// What the pipeline learnt about a delivery, for settling and telemetry.
pub(crate) struct Processed {
    pub(crate) verdict: Verdict,
    pub(crate) envelope: Option<Arc<Envelope>>,
    // True when the commit wrote outbox rows: the relay is woken after settling.
    pub(crate) wrote_outbox: bool,
    // How long the handler ran, when it ran (for the failure event).
    pub(crate) handler_time: Option<std::time::Duration>,
}

impl Processed {
    fn verdict(verdict: Verdict, envelope: Option<Arc<Envelope>>) -> Self {
        Processed {
            verdict,
            envelope,
            wrote_outbox: false,
            handler_time: None,
        }
    }
}

/// Whether a store error is worth retrying (backend unavailable, or an optimistic-concurrency
/// conflict that a re-run with fresh reads resolves).
pub(crate) fn store_error_is_transient(e: &StoreError) -> bool {
    e.is_transient() || e.kind() == StoreErrorKind::Conflict
}

fn store_failure(stage: &str, e: &StoreError) -> Verdict {
    let kind = if store_error_is_transient(e) {
        HandlerErrorKind::Transient
    } else {
        HandlerErrorKind::Permanent
    };
    Verdict::Failed {
        kind,
        error: format!("{}: {stage}: {e}", kind.as_str()),
    }
}

fn reject(reason: DeadLetterReason, description: String) -> Verdict {
    Verdict::Rejected {
        reason,
        description,
    }
}

/// Runs rules 1–6 (up to the commit) for one delivered message.
pub(crate) async fn process_message<P: Send + Sync + 'static>(
    s: &Shared<P>,
    msg: &ReceivedMessage,
) -> Processed {
    let worker = s.def.name.clone();
    // Rule 1: decode (size-bounded and validated by the envelope crate).
    let env = match Envelope::decode_with_content_type(
        &msg.message.body,
        msg.message.content_type.as_deref(),
    ) {
        Ok(env) => Arc::new(env),
        Err(e) => {
            return Processed::verdict(
                reject(DeadLetterReason::MalformedEnvelope, e.to_string()),
                None,
            );
        }
    };
    let mut event_id = Uuid::encode_buffer();
    fleet_telemetry::record_envelope(
        &tracing::Span::current(),
        &env.tenant_id,
        env.event_id.hyphenated().encode_lower(&mut event_id),
        env.event_type.as_str(),
        &env.correlation_id,
    );
    // Rule 2: route.
    let Some(route) = s.def.routes.get(&(env.event_type, env.event_version)) else {
        let description = format!(
            "worker {worker} does not handle {} version {}",
            env.event_type.as_str(),
            env.event_version
        );
        return Processed::verdict(
            reject(DeadLetterReason::UnsupportedEventType, description),
            Some(env),
        );
    };
    // Rule 3: tenant guard, before anything reads tenant data.
    match s
        .tenants
        .owner(s.store.as_ref(), &env.environment_id, s.clock.now())
        .await
    {
        Err(e) => return Processed::verdict(store_failure("tenant binding", &e), Some(env)),
        Ok(None) => {
            fleet_telemetry::events::TenantRejected {
                worker: &worker,
                reason: DeadLetterReason::UnknownEnvironment.as_str(),
                claimed_tenant_id: &env.tenant_id,
                environment_id: &env.environment_id,
                owner_tenant_id: None,
            }
            .emit(&s.metrics);
            let description = format!("environment {:?} has no tenant binding", env.environment_id);
            return Processed::verdict(
                reject(DeadLetterReason::UnknownEnvironment, description),
                Some(env),
            );
        }
        Ok(Some(owner)) if owner != env.tenant_id => {
            // A security event: logged with both tenants and counted.
            fleet_telemetry::events::TenantRejected {
                worker: &worker,
                reason: DeadLetterReason::TenantMismatch.as_str(),
                claimed_tenant_id: &env.tenant_id,
                environment_id: &env.environment_id,
                owner_tenant_id: Some(&owner),
            }
            .emit(&s.metrics);
            let description = format!(
                "tenant {:?} does not own environment {:?}",
                env.tenant_id, env.environment_id
            );
            return Processed::verdict(
                reject(DeadLetterReason::TenantMismatch, description),
                Some(env),
            );
        }
        Ok(Some(_)) => {}
    }
    // Rule 9: one run per ordering key at a time; taken before dedupe so a concurrent duplicate
    // waits and then sees the first run's inbox row.
    let key = (route.ordering_key)(&env);
    let _key_guard = match &key {
        Some(k) => Some(s.keys.acquire(k).await),
        None => None,
    };
    // Rule 4: dedupe.
    match s.store.inbox_contains(&worker, env.event_id).await {
        Ok(true) => return Processed::verdict(Verdict::Done { dedupe: true }, Some(env)),
        Ok(false) => {}
        Err(e) => return Processed::verdict(store_failure("inbox", &e), Some(env)),
    }
    // Rule 5: handle.
    let mut ctx = HandlerContext::new(
        worker.clone(),
        s.store.clone(),
        s.clock.clone(),
        s.ports.clone(),
        Trigger::Message(env.clone()),
        key,
    );
    let started = Instant::now();
    let result = route.handler.handle(&env, &mut ctx).await;
    let handler_time = started.elapsed();
    if let Err(e) = result {
        let verdict = Verdict::Failed {
            kind: e.kind(),
            error: e.to_string(),
        };
        return Processed {
            handler_time: Some(handler_time),
            ..Processed::verdict(verdict, Some(env))
        };
    }
    // Rule 6: one atomic commit of state, keys, inbox row and outbox rows.
    let now = ctx.now();
    let (mut unit, emitted) = ctx.into_parts();
    let (verdict, wrote_outbox) = commit(s, &mut unit, env.event_id, &emitted, now).await;
    if matches!(verdict, Verdict::Done { dedupe: false }) {
        WorkerStats::bump(&s.stats.handled);
        let event = fleet_telemetry::events::MessageProcessed {
            worker: &worker,
            event_type: env.event_type.as_str(),
            duration: handler_time,
            emitted: emitted.len(),
        };
        match s.processed.get(&(env.event_type, env.event_version)) {
            Some(series) => event.emit_to(series),
            None => event.emit(&s.metrics),
        }
        emitted_events(s, &emitted);
    }
    Processed {
        verdict,
        envelope: Some(env),
        wrote_outbox,
        handler_time: Some(handler_time),
    }
}

async fn commit<P>(
    s: &Shared<P>,
    unit: &mut UnitOfWork,
    event_id: Uuid,
    emitted: &[Envelope],
    now: DateTime<Utc>,
) -> (Verdict, bool) {
    unit.set_inbox(&s.def.name, event_id, now);
    for e in emitted {
        unit.add_outbox(outbox_message(e, &s.def.name, &s.config.publish_topic, now));
    }
    let wrote_outbox = !unit.outbox.is_empty();
    match s.committer.commit(std::mem::take(unit)).await {
        Ok(()) => (Verdict::Done { dedupe: false }, wrote_outbox),
        // Another replica (or an earlier delivery) committed this event first.
        Err(e) if e.kind() == StoreErrorKind::DuplicateInbox => {
            (Verdict::Done { dedupe: true }, false)
        }
        Err(e) => (store_failure("commit", &e), false),
    }
}

/// The virtual envelope of a timer tick, as the causal parent of events it emits.
pub(crate) fn timer_envelope(
    tick: &TimerTick,
    tenant_id: &str,
    environment_id: &str,
    worker: &str,
) -> Envelope {
    Envelope {
        event_id: tick.event_id,
        // Only a parent for `caused`; its type is never published.
        event_type: EventType::ALL[0],
        event_version: 1,
        source: format!("/workers/{worker}"),
        tenant_id: tenant_id.to_owned(),
        environment_id: environment_id.to_owned(),
        subject: Some(format!("timers/{}", tick.timer)),
        occurred_at: tick.window_start,
        trace_id: tick.trace_id.clone(),
        span_id: None,
        correlation_id: tick.event_id.to_string(),
        causation_id: None,
        data: fleet_envelope::Data::empty(),
        extensions: serde_json::Map::new(),
    }
}

/// Runs one timer window through dedupe, handle and commit (rule 10).
pub(crate) async fn process_tick<P: Send + Sync + 'static>(
    s: &Shared<P>,
    timer: &TimerDef<P>,
    tick: &TimerTick,
) -> Processed {
    let worker = s.def.name.clone();
    // Overlapping runs of one timer (a slow window and the next) never interleave.
    let _key_guard = s.keys.acquire(&format!("timer/{}", timer.name)).await;
    match s.store.inbox_contains(&worker, tick.event_id).await {
        Ok(true) => return Processed::verdict(Verdict::Done { dedupe: true }, None),
        Ok(false) => {}
        Err(e) => return Processed::verdict(store_failure("inbox", &e), None),
    }
    let mut ctx = HandlerContext::new(
        worker.clone(),
        s.store.clone(),
        s.clock.clone(),
        s.ports.clone(),
        Trigger::Timer(tick.clone()),
        Some(timer.name.clone()),
    );
    let started = Instant::now();
    let result = timer.handler.tick(tick, &mut ctx).await;
    let handler_time = started.elapsed();
    if let Err(e) = result {
        let verdict = Verdict::Failed {
            kind: e.kind(),
            error: e.to_string(),
        };
        return Processed {
            handler_time: Some(handler_time),
            ..Processed::verdict(verdict, None)
        };
    }
    let now = ctx.now();
    let (mut unit, emitted) = ctx.into_parts();
    let (verdict, wrote_outbox) = commit(s, &mut unit, tick.event_id, &emitted, now).await;
    if matches!(verdict, Verdict::Done { dedupe: false }) {
        WorkerStats::bump(&s.stats.handled);
        fleet_telemetry::events::MessageProcessed {
            worker: &worker,
            event_type: &timer.name,
            duration: handler_time,
            emitted: emitted.len(),
        }
        .emit(&s.metrics);
        emitted_events(s, &emitted);
    }
    Processed {
        verdict,
        envelope: None,
        wrote_outbox,
        handler_time: Some(handler_time),
    }
}

fn emitted_events<P>(s: &Shared<P>, emitted: &[Envelope]) {
    for e in emitted {
        let mut id = Uuid::encode_buffer();
        fleet_telemetry::events::EventEmitted {
            worker: &s.def.name,
            event_type: e.event_type.as_str(),
            emitted_event_id: e.event_id.hyphenated().encode_lower(&mut id),
        }
        .emit(&s.metrics);
    }
}
