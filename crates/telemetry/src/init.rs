//! Building and installing the subscriber: filter, message-context capture, OpenTelemetry
//! layer (with optional OTLP/HTTP export) and the log formatter.

use std::io::IsTerminal;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Dispatch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

use crate::config::{LogFormat, TelemetryConfig, traces_url};
use crate::error::{TelemetryError, TelemetryErrorKind};
use crate::logfmt::{ContextLayer, JsonFormat, NoSpanFields, PrettyFormat};
use crate::message::{FleetIdGenerator, MESSAGE_SPAN_TARGET};

/// How long dropping the guard waits for buffered spans to reach the collector. Short enough to
/// fit in the shutdown grace period together with draining in-flight messages.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// Keeps the span pipeline alive; dropping it (or calling [`TelemetryGuard::shutdown`]) exports
/// the spans still buffered. Hold it in `main` until the worker has stopped.
#[must_use = "dropping the guard shuts the span exporter down"]
#[derive(Debug)]
pub struct TelemetryGuard {
    /// `None` once shut down, so the drop does not shut down twice.
    provider: Option<SdkTracerProvider>,
    /// Whether an exporter is configured (tells callers if flushing means anything).
    exporting: bool,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn is_exporting(&self) -> bool {
        self.exporting
    }

    /// Exports all finished spans now. Blocks the calling thread until the collector answered or
    /// the export timed out; from async code in the same runtime as an in-process collector,
    /// call it through `spawn_blocking`.
    pub fn flush(&self) -> Result<(), TelemetryError> {
        match &self.provider {
            Some(provider) => provider.force_flush().map_err(|e| {
                TelemetryError::with_source(
                    TelemetryErrorKind::Shutdown,
                    "flushing spans failed",
                    e,
                )
            }),
            None => Ok(()),
        }
    }

    /// Exports the remaining spans and stops the exporter (blocking, like [`Self::flush`]).
    pub fn shutdown(mut self) -> Result<(), TelemetryError> {
        self.shutdown_inner()
    }

    fn shutdown_inner(&mut self) -> Result<(), TelemetryError> {
        match self.provider.take() {
            Some(provider) => provider
                .shutdown_with_timeout(SHUTDOWN_TIMEOUT)
                .map_err(|e| {
                    TelemetryError::with_source(
                        TelemetryErrorKind::Shutdown,
                        "shutting the span exporter down failed",
                        e,
                    )
                }),
            None => Ok(()),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Errors here have nowhere useful to go: the subscriber may already be gone.
        let _ = self.shutdown_inner();
    }
}

/// Installs the process-wide subscriber writing logs to stdout (JSON or pretty) and, when
/// `otlp_endpoint` is set, exporting spans over OTLP/HTTP. Call once, early in `main`.
pub fn init(config: TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let ansi = config.log_format == LogFormat::Pretty && std::io::stdout().is_terminal();
    let (dispatch, guard) = build(&config, std::io::stdout, ansi)?;
    tracing::dispatcher::set_global_default(dispatch).map_err(|e| {
        TelemetryError::with_source(
            TelemetryErrorKind::AlreadyInitialized,
            "a global tracing subscriber is already installed",
            e,
        )
    })?;
    if let Some(provider) = &guard.provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Ok(guard)
}

/// Builds the same subscriber as [`init`] without installing it, writing logs to `writer`
/// (never with ANSI colours). For tests and embedding: install it with
/// `tracing::dispatcher::set_default` or `with_default`.
pub fn build_dispatch<W>(
    config: &TelemetryConfig,
    writer: W,
) -> Result<(Dispatch, TelemetryGuard), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    build(config, writer, false)
}

fn build<W>(
    config: &TelemetryConfig,
    writer: W,
    ansi: bool,
) -> Result<(Dispatch, TelemetryGuard), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter(&config.log_filter)?;
    let provider = tracer_provider(config)?;
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("fleet-telemetry"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false);
    let (json, pretty) = match config.log_format {
        LogFormat::Json => (
            Some(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(NoSpanFields)
                    .event_format(JsonFormat)
                    .with_writer(writer),
            ),
            None,
        ),
        LogFormat::Pretty => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(NoSpanFields)
                    .event_format(PrettyFormat { ansi })
                    .with_writer(writer),
            ),
        ),
    };
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(ContextLayer)
        .with(otel)
        .with(json)
        .with(pretty);
    let guard = TelemetryGuard {
        provider: Some(provider),
        exporting: config.otlp_endpoint.is_some(),
    };
    Ok((Dispatch::new(subscriber), guard))
}

fn filter(directives: &str) -> Result<EnvFilter, TelemetryError> {
    let bad = |e| {
        TelemetryError::with_source(
            TelemetryErrorKind::Config,
            format!("log filter {directives:?} is invalid"),
            e,
        )
    };
    let always = format!("{MESSAGE_SPAN_TARGET}=info");
    let always = always.parse().map_err(bad)?;
    Ok(EnvFilter::builder()
        .parse(directives)
        .map_err(bad)?
        .add_directive(always))
}

fn tracer_provider(config: &TelemetryConfig) -> Result<SdkTracerProvider, TelemetryError> {
    // The sampler is left to the SDK default: parent-based always-on, overridable with
    // OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG.
    let builder = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .with_id_generator(FleetIdGenerator::default());
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(builder.build());
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces_url(endpoint)?)
        .build()
        .map_err(|e| {
            TelemetryError::with_source(
                TelemetryErrorKind::Exporter,
                format!("cannot build the OTLP exporter for {endpoint:?}"),
                e,
            )
        })?;
    Ok(builder.with_batch_exporter(exporter).build())
}
