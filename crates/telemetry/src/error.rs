//! The crate's single error type.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong while setting telemetry up; callers use it to pick an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryErrorKind {
    /// A configuration value (an environment variable or a config field) is invalid.
    Config,
    /// The OTLP exporter could not be built.
    Exporter,
    /// A global subscriber is already installed in this process.
    AlreadyInitialized,
    /// Flushing or shutting the span pipeline down failed.
    Shutdown,
}

impl fmt::Display for TelemetryErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TelemetryErrorKind::Config => "invalid telemetry configuration",
            TelemetryErrorKind::Exporter => "OTLP exporter error",
            TelemetryErrorKind::AlreadyInitialized => "telemetry already initialised",
            TelemetryErrorKind::Shutdown => "telemetry shutdown error",
        })
    }
}

/// Error raised by [`crate::init`], [`crate::TelemetryConfig::from_env`] and the guard.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct TelemetryError {
    kind: TelemetryErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl TelemetryError {
    /// Builds an error without an underlying cause.
    pub fn new(kind: TelemetryErrorKind, message: impl Into<String>) -> Self {
        TelemetryError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Builds an error that wraps its cause.
    pub fn with_source(
        kind: TelemetryErrorKind,
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        TelemetryError {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> TelemetryErrorKind {
        self.kind
    }

    /// The human-readable message (names the offending value where there is one).
    pub fn message(&self) -> &str {
        &self.message
    }
}
