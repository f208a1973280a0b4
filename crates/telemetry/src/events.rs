//! Internal events: each struct's `emit` writes the log line *and* updates the metric, so the
//! two cannot drift apart. Emit them inside the message span so the line carries the message
//! context. Text fields must never hold secrets (error messages are already redacted upstream).

use std::time::Duration;

use crate::metrics::Metrics;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A message was handled and its unit of work committed.
#[derive(Debug, Clone, Copy)]
pub struct MessageProcessed<'a> {
    /// Worker name.
    pub worker: &'a str,
    /// Envelope `eventType`.
    pub event_type: &'a str,
    /// Handler run time (observed in `fleet_handler_duration_seconds`).
    pub duration: Duration,
    /// Number of events the handler emitted.
    pub emitted: usize,
}

impl MessageProcessed<'_> {
    /// Logs at info, counts `fleet_messages_processed_total` and observes the latency.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::info!(
            durationMs = millis(self.duration),
            emitted = self.emitted,
            "message processed"
        );
        metrics.processed(self.worker, self.event_type);
        metrics.observe_handler_latency(self.worker, self.event_type, self.duration.as_secs_f64());
    }

    /// Like [`MessageProcessed::emit`], updating series resolved beforehand with
    /// [`Metrics::processed_series`] for this worker and event type.
    pub fn emit_to(&self, series: &crate::metrics::ProcessedSeries) {
        tracing::info!(
            durationMs = millis(self.duration),
            emitted = self.emitted,
            "message processed"
        );
        series.record(self.duration.as_secs_f64());
    }
}

/// A handler attempt returned an error.
#[derive(Debug, Clone, Copy)]
pub struct HandlerFailed<'a> {
    /// Worker name.
    pub worker: &'a str,
    /// Envelope `eventType`.
    pub event_type: &'a str,
    /// Error kind that drives the disposition (e.g. `Transient`, `Throttled`, `Permanent`).
    pub kind: &'a str,
    /// The error's display text (already free of secrets).
    pub error: &'a str,
    /// Attempt number, 1 for the first delivery.
    pub attempt: u32,
    /// Handler run time until it failed.
    pub duration: Duration,
}

impl HandlerFailed<'_> {
    /// Logs at warn, counts `fleet_messages_failed_total{kind}` and observes the latency.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::warn!(
            errorKind = self.kind,
            error = self.error,
            attempt = self.attempt,
            durationMs = millis(self.duration),
            "handler failed"
        );
        metrics.failed(self.worker, self.event_type, self.kind);
        metrics.observe_handler_latency(self.worker, self.event_type, self.duration.as_secs_f64());
    }
}

/// A delayed retry was scheduled (a copy carrying the attempt count; the original completes).
#[derive(Debug, Clone, Copy)]
pub struct MessageRetried<'a> {
    /// Worker name.
    pub worker: &'a str,
    /// Envelope `eventType`.
    pub event_type: &'a str,
    /// The attempt the retry will be.
    pub next_attempt: u32,
    /// The worker's maximum attempts.
    pub max_attempts: u32,
    /// Backoff before the retry is delivered.
    pub delay: Duration,
}

impl MessageRetried<'_> {
    /// Logs at warn and counts `fleet_messages_retried_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::warn!(
            nextAttempt = self.next_attempt,
            maxAttempts = self.max_attempts,
            delayMs = millis(self.delay),
            "retry scheduled"
        );
        metrics.retried(self.worker, self.event_type);
    }
}

/// A message was moved to the dead-letter queue.
#[derive(Debug, Clone, Copy)]
pub struct MessageDeadLettered<'a> {
    /// Worker name.
    pub worker: &'a str,
    /// Dead-letter reason (`MalformedEnvelope`, `UnsupportedEventType`, `UnknownEnvironment`,
    /// `TenantMismatch`, `MaxRetriesExceeded`, `HandlerRejected`).
    pub reason: &'a str,
    /// The dead-letter description written on the message.
    pub description: &'a str,
    /// Attempts made before giving up.
    pub attempts: u32,
}

impl MessageDeadLettered<'_> {
    /// Logs at error and counts `fleet_messages_dead_lettered_total{reason}`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::error!(
            reason = self.reason,
            description = self.description,
            attempts = self.attempts,
            "message dead-lettered"
        );
        metrics.dead_lettered(self.worker, self.reason);
    }
}

/// The inbox already holds this `(worker, eventId)`: completed without running the handler.
#[derive(Debug, Clone, Copy)]
pub struct DedupeHit<'a> {
    /// Worker name.
    pub worker: &'a str,
}

impl DedupeHit<'_> {
    /// Logs at info and counts `fleet_dedupe_hits_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::info!("duplicate delivery completed without handling");
        metrics.dedupe_hit(self.worker);
    }
}

/// The tenant guard refused a message: a security event.
#[derive(Debug, Clone, Copy)]
pub struct TenantRejected<'a> {
    /// Worker name.
    pub worker: &'a str,
    /// `UnknownEnvironment` or `TenantMismatch`.
    pub reason: &'a str,
    /// The tenant the envelope claims.
    pub claimed_tenant_id: &'a str,
    /// The environment the envelope targets.
    pub environment_id: &'a str,
    /// The tenant that owns the environment, when it is known.
    pub owner_tenant_id: Option<&'a str>,
}

impl TenantRejected<'_> {
    /// Logs at warn with `security = true` and counts `fleet_tenant_rejections_total{reason}`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::warn!(
            security = true,
            reason = self.reason,
            claimedTenantId = self.claimed_tenant_id,
            environmentId = self.environment_id,
            ownerTenantId = self.owner_tenant_id,
            "tenant guard rejected message"
        );
        metrics.tenant_rejected(self.worker, self.reason);
    }
}

/// A message was released for redelivery without processing (e.g. the shutdown grace ran out).
#[derive(Debug, Clone, Copy)]
pub struct MessageAbandoned<'a> {
    /// Worker name.
    pub worker: &'a str,
    /// Why, e.g. `shutdown`.
    pub reason: &'a str,
}

impl MessageAbandoned<'_> {
    /// Logs at info and counts `fleet_messages_abandoned_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::info!(reason = self.reason, "message abandoned for redelivery");
        metrics.abandoned(self.worker);
    }
}

/// A handler emitted an event into the outbox.
#[derive(Debug, Clone, Copy)]
pub struct EventEmitted<'a> {
    /// Worker name.
    pub worker: &'a str,
    /// `eventType` of the emitted event.
    pub event_type: &'a str,
    /// `eventId` of the emitted event.
    pub emitted_event_id: &'a str,
}

impl EventEmitted<'_> {
    /// Logs at debug and counts `fleet_events_emitted_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::debug!(
            emittedEventType = self.event_type,
            emittedEventId = self.emitted_event_id,
            "event emitted"
        );
        metrics.events_emitted(self.worker, self.event_type, 1);
    }
}

/// The outbox relay sent a batch.
#[derive(Debug, Clone, Copy)]
pub struct OutboxPublished<'a> {
    /// Worker name.
    pub worker: &'a str,
    /// Messages sent.
    pub count: u64,
}

impl OutboxPublished<'_> {
    /// Logs at debug and counts `fleet_outbox_published_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::debug!(count = self.count, "outbox messages published");
        metrics.outbox_published(self.worker, self.count);
    }
}

/// An outbox send failed; the rows stay and are retried by the relay.
#[derive(Debug, Clone, Copy)]
pub struct OutboxPublishFailed<'a> {
    /// Worker name.
    pub worker: &'a str,
    /// The bus error's display text.
    pub error: &'a str,
}

impl OutboxPublishFailed<'_> {
    /// Logs at warn and counts `fleet_outbox_publish_failures_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::warn!(error = self.error, "outbox publish failed; will retry");
        metrics.outbox_publish_failed(self.worker);
    }
}

/// A timer window fired a virtual envelope.
#[derive(Debug, Clone, Copy)]
pub struct TimerFired<'a> {
    /// Worker name.
    pub worker: &'a str,
    /// Timer name.
    pub timer: &'a str,
    /// Window start, RFC 3339.
    pub window_start: &'a str,
}

impl TimerFired<'_> {
    /// Logs at debug and counts `fleet_timer_fires_total`.
    pub fn emit(&self, metrics: &Metrics) {
        tracing::debug!(
            timer = self.timer,
            windowStart = self.window_start,
            "timer fired"
        );
        metrics.timer_fired(self.worker, self.timer);
    }
}
