//! Timer loops (rule 10): each registered timer fires once per window; the tick's event id is
//! derived from (worker, timer, window start), so replicas sharing a store run a window once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleet_envelope::timer_event_id;
use fleet_telemetry::{MessageSpanInfo, message_span};
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::handler_error::HandlerErrorKind;
use crate::pipeline::process_tick;
use crate::shared::{Shared, WorkerStats};
use crate::timer::{TimerTick, next_window_start, window_start};
use crate::verdict::{Verdict, after};

/// Runs timer `index` until `draining` turns true.
pub(crate) async fn timer_loop<P: Send + Sync + 'static>(
    shared: Arc<Shared<P>>,
    index: usize,
    permits: Arc<Semaphore>,
    mut draining: watch::Receiver<bool>,
    mut hard_stop: watch::Receiver<bool>,
) {
    let Some(timer) = shared.def.timers.get(index) else {
        return;
    };
    let mut last_run: Option<DateTime<Utc>> = None;
    loop {
        let now = shared.clock.now();
        let start = window_start(now, timer.period);
        if last_run != Some(start) {
            // A timer window counts against the in-flight bound like a message.
            let _permit = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = draining.wait_for(|d| *d) => return,
            };
            tokio::select! {
                _ = run_window(&shared, index, start) => {}
                _ = hard_stop.wait_for(|s| *s) => return,
            }
            last_run = Some(start);
        }
        tokio::select! {
            _ = shared.clock.sleep_until(next_window_start(now, timer.period)) => {}
            _ = draining.wait_for(|d| *d) => return,
        }
    }
}

/// The tick for `timer`'s window starting at `start`.
pub(crate) fn tick_for(
    worker: &str,
    timer: &str,
    start: DateTime<Utc>,
    period: std::time::Duration,
) -> TimerTick {
    TimerTick {
        timer: timer.to_owned(),
        window_start: start,
        window_end: next_window_start(start, period),
        event_id: timer_event_id(worker, timer, start),
        trace_id: format!("{:032x}", rand::random::<u128>()),
    }
}

/// Runs one window, retrying transient failures within the window.
pub(crate) async fn run_window<P: Send + Sync + 'static>(
    shared: &Shared<P>,
    index: usize,
    start: DateTime<Utc>,
) {
    let Some(timer) = shared.def.timers.get(index) else {
        return;
    };
    let worker = &shared.def.name;
    let tick = tick_for(worker, &timer.name, start, timer.period);
    let event_id = tick.event_id.to_string();
    let span = message_span(&MessageSpanInfo {
        worker,
        destination: &timer.name,
        trace_id: Some(&tick.trace_id),
        event_id: Some(&event_id),
        event_type: Some(&timer.name),
        delivery_count: 1,
        ..MessageSpanInfo::default()
    });
    let policy = shared.def.retry;
    async {
        let window = start.to_rfc3339();
        fleet_telemetry::events::TimerFired { worker, timer: &timer.name, window_start: &window }.emit(&shared.metrics);
        let mut attempt = 1;
        loop {
            let processed = process_tick(shared, timer, &tick).await;
            match &processed.verdict {
                Verdict::Done { dedupe } => {
                    WorkerStats::bump(&shared.stats.timer_runs);
                    if *dedupe {
                        WorkerStats::bump(&shared.stats.dedupe_hits);
                        fleet_telemetry::events::DedupeHit { worker }.emit(&shared.metrics);
                    }
                    if processed.wrote_outbox {
                        shared.relay.wake();
                    }
                    return;
                }
                Verdict::Failed { kind, error } => {
                    fleet_telemetry::events::HandlerFailed {
                        worker,
                        event_type: &timer.name,
                        kind: kind.as_str(),
                        error,
                        attempt,
                        duration: processed.handler_time.unwrap_or_default(),
                    }
                    .emit(&shared.metrics);
                    let retry_after = match kind {
                        HandlerErrorKind::Throttled { retry_after } => Some(*retry_after),
                        _ => None,
                    };
                    let delay = policy.delay(attempt, retry_after, &mut rand::rng());
                    let at = after(shared.clock.now(), delay);
                    let retryable = *kind != HandlerErrorKind::Permanent && policy.may_retry(attempt) && at < tick.window_end;
                    if !retryable {
                        tracing::error!(attempt, error = %error, "timer window failed; the next window runs as usual");
                        return;
                    }
                    tracing::warn!(attempt, error = %error, "timer window failed; retrying");
                    shared.clock.sleep_until(at).await;
                    attempt += 1;
                }
                Verdict::Rejected { reason, description } => {
                    tracing::error!(reason = reason.as_str(), description = %description, "timer window rejected");
                    return;
                }
            }
        }
    }
    .instrument(span)
    .await
}
