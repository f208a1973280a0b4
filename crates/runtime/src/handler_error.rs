//! The error a handler returns: its kind decides the message's disposition.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// How a handler failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandlerErrorKind {
    /// Worth retrying later with backoff (timeouts, 5xx, optimistic-concurrency conflicts).
    Transient,
    /// The downstream asked us to slow down; wait at least `retry_after`.
    Throttled {
        /// The downstream's `Retry-After`.
        retry_after: Duration,
    },
    /// Retrying cannot help (invalid request, rejected by policy): dead-letter `HandlerRejected`.
    Permanent,
}

impl HandlerErrorKind {
    /// Stable lower-case name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            HandlerErrorKind::Transient => "transient",
            HandlerErrorKind::Throttled { .. } => "throttled",
            HandlerErrorKind::Permanent => "permanent",
        }
    }
}

/// A handler's failure: kind + message + optional source.
///
/// The message ends up in logs and dead-letter descriptions, so it must never contain secrets.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub struct HandlerError {
    kind: HandlerErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl HandlerError {
    /// A failure of the given kind.
    pub fn new(kind: HandlerErrorKind, message: impl fmt::Display) -> Self {
        HandlerError {
            kind,
            message: message.to_string(),
            source: None,
        }
    }

    /// A failure worth retrying.
    pub fn transient(message: impl fmt::Display) -> Self {
        HandlerError::new(HandlerErrorKind::Transient, message)
    }

    /// A failure the downstream asked to retry after `retry_after`.
    pub fn throttled(retry_after: Duration, message: impl fmt::Display) -> Self {
        HandlerError::new(HandlerErrorKind::Throttled { retry_after }, message)
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl fmt::Display) -> Self {
        HandlerError::new(HandlerErrorKind::Permanent, message)
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind, which decides the disposition.
    pub fn kind(&self) -> HandlerErrorKind {
        self.kind
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<fleet_store::StoreError> for HandlerError {
    fn from(e: fleet_store::StoreError) -> Self {
        let kind = if crate::pipeline::store_error_is_transient(&e) {
            HandlerErrorKind::Transient
        } else {
            HandlerErrorKind::Permanent
        };
        HandlerError::new(kind, format!("store: {e}")).with_source(e)
    }
}

/// What a successful handler reports (for logs and metrics; the disposition is `Complete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler changed state or emitted events.
    Done,
    /// Nothing to do: the work was already recorded or the state already converged.
    NoOp,
}

impl Outcome {
    /// Stable lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::NoOp => "noop",
        }
    }
}
