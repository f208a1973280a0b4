//! Fleet telemetry: logs, traces and metrics for the worker runtime.
//!
//! Start with [`init`], called once in a worker's `main` with a [`TelemetryConfig`] (usually
//! [`TelemetryConfig::from_process_env`]); keep the returned [`TelemetryGuard`] until exit.
//! The runtime then wraps the handling of every delivered message in [`message_span`]:
//!
//! - every log line inside it carries `traceId`, `spanId`, `correlationId`, `tenantId`,
//!   `eventId` and `worker` as top-level JSON keys;
//! - the span is exported over OTLP/HTTP (when `OTEL_EXPORTER_OTLP_ENDPOINT` is set) with the
//!   OpenTelemetry messaging attributes, parented on the envelope's `traceparent`;
//! - [`current_traceparent`] gives the value to stamp on events emitted while handling it.
//!
//! [`Metrics`] holds the Prometheus metrics and the [`events`] module the internal events that
//! log and count in one call. The log shape, span attributes, metric names and environment
//! variables are documented in `docs/telemetry.md`.

mod config;
mod error;
pub mod events;
mod init;
mod logfmt;
mod message;
mod metrics;

pub use config::{
    DEFAULT_LOG_FILTER, ENV_LOG_FILTER, ENV_LOG_FORMAT, ENV_OTLP_ENDPOINT, ENV_OTLP_PROTOCOL,
    ENV_SERVICE_NAME, LogFormat, TelemetryConfig,
};
pub use error::{TelemetryError, TelemetryErrorKind};
pub use init::{TelemetryGuard, build_dispatch, init};
pub use message::{
    MESSAGE_SPAN_NAME, MESSAGE_SPAN_TARGET, MessageSpanInfo, current_trace_ids,
    current_traceparent, disposition, message_span, record_disposition, record_envelope,
    record_failure, traceparent_of,
};
pub use metrics::{InFlightGauge, METRICS_CONTENT_TYPE, Metrics, ProcessedSeries};
