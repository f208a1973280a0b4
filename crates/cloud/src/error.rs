//! The crate's one error type: a kind that drives retry classification, a message, a source.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// What went wrong, in the terms a caller's retry policy needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloudErrorKind {
    /// A passing failure (connection reset, 5xx, timeout): retry with backoff.
    Transient,
    /// The control plane asked the caller to slow down (HTTP 429); wait `retry_after` first.
    Throttled {
        /// How long the control plane asked the caller to wait (`Retry-After`).
        retry_after: Duration,
    },
    /// The resource does not exist (or belongs to another tenant, which must look the same).
    NotFound,
    /// The request conflicts with the resource's current state (e.g. an operation in progress).
    Conflict,
    /// The request itself is wrong (bad spec, bad manifest, bad argument); retrying cannot help.
    Invalid,
    /// The caller's identity may not do this.
    Unauthorized,
    /// Any other failure that retrying will not fix.
    Permanent,
}

impl CloudErrorKind {
    /// A short stable name, for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloudErrorKind::Transient => "transient",
            CloudErrorKind::Throttled { .. } => "throttled",
            CloudErrorKind::NotFound => "notFound",
            CloudErrorKind::Conflict => "conflict",
            CloudErrorKind::Invalid => "invalid",
            CloudErrorKind::Unauthorized => "unauthorized",
            CloudErrorKind::Permanent => "permanent",
        }
    }
}

impl fmt::Display for CloudErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloudErrorKind::Throttled { retry_after } => {
                write!(f, "throttled (retry after {} ms)", retry_after.as_millis())
            }
            other => f.write_str(other.as_str()),
        }
    }
}

/// An error from a control-plane port, a desired-state reader or the prober.
///
/// Messages never carry secret values: callers put names and versions in them, not contents.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct CloudError {
    kind: CloudErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl CloudError {
    /// An error of `kind` with `message`.
    pub fn new(kind: CloudErrorKind, message: impl Into<String>) -> Self {
        CloudError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// A [`CloudErrorKind::Transient`] error.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(CloudErrorKind::Transient, message)
    }

    /// A [`CloudErrorKind::Throttled`] error asking to wait `retry_after`.
    pub fn throttled(retry_after: Duration, message: impl Into<String>) -> Self {
        Self::new(CloudErrorKind::Throttled { retry_after }, message)
    }

    /// A [`CloudErrorKind::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(CloudErrorKind::NotFound, message)
    }

    /// A [`CloudErrorKind::Conflict`] error.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(CloudErrorKind::Conflict, message)
    }

    /// A [`CloudErrorKind::Invalid`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(CloudErrorKind::Invalid, message)
    }

    /// A [`CloudErrorKind::Unauthorized`] error.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(CloudErrorKind::Unauthorized, message)
    }

    /// A [`CloudErrorKind::Permanent`] error.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(CloudErrorKind::Permanent, message)
    }

    /// What went wrong.
    pub fn kind(&self) -> CloudErrorKind {
        self.kind
    }

    /// The human-readable message (without the kind prefix).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when retrying later may succeed (transient failures and throttling).
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            CloudErrorKind::Transient | CloudErrorKind::Throttled { .. }
        )
    }

    /// The wait the control plane asked for, when it throttled the call.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            CloudErrorKind::Throttled { retry_after } => Some(retry_after),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttled_is_transient_and_carries_retry_after() {
        let e = CloudError::throttled(Duration::from_secs(7), "too many requests");
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert_eq!(
            e.to_string(),
            "throttled (retry after 7000 ms): too many requests"
        );
    }

    #[test]
    fn only_transient_and_throttled_are_transient() {
        assert!(CloudError::transient("x").is_transient());
        for e in [
            CloudError::not_found("x"),
            CloudError::conflict("x"),
            CloudError::invalid("x"),
            CloudError::unauthorized("x"),
            CloudError::permanent("x"),
        ] {
            assert!(!e.is_transient(), "{e}");
            assert_eq!(e.retry_after(), None);
        }
    }
}
