//! The runtime's one error type: a kind that callers branch on, a message, and the cause.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong, coarse enough to decide what a caller (usually a binary's `main`) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeErrorKind {
    /// A configuration value is missing or malformed; binaries exit with 64 (EX_USAGE).
    Config,
    /// The store could not be opened or answered with an error outside the message pipeline.
    Store,
    /// The bus could not be opened or answered with an error outside the message pipeline.
    Bus,
    /// The HTTP server could not bind or serve.
    Http,
    /// Telemetry could not be initialised.
    Telemetry,
    /// The worker definition is inconsistent (e.g. two handlers for one event type).
    Definition,
}

impl RuntimeErrorKind {
    /// Stable lower-case name, used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeErrorKind::Config => "config",
            RuntimeErrorKind::Store => "store",
            RuntimeErrorKind::Bus => "bus",
            RuntimeErrorKind::Http => "http",
            RuntimeErrorKind::Telemetry => "telemetry",
            RuntimeErrorKind::Definition => "definition",
        }
    }
}

/// Error of the runtime crate: kind + message + optional source.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct RuntimeError {
    kind: RuntimeErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl RuntimeError {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: RuntimeErrorKind, message: impl fmt::Display) -> Self {
        RuntimeError {
            kind,
            message: message.to_string(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind, for branching.
    pub fn kind(&self) -> RuntimeErrorKind {
        self.kind
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Shorthand for a configuration error naming the variable and the rejected value.
    pub fn config(variable: &str, value: &str, expected: &str) -> Self {
        RuntimeError::new(
            RuntimeErrorKind::Config,
            format!("{variable}={value:?} is invalid: expected {expected}"),
        )
    }
}
