//! The crate's one error type: a kind that drives retry classification, a message for people,
//! and the underlying cause.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong, coarsely enough for a caller to decide what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// An optimistic-concurrency expectation failed (another writer won), or an idempotency key
    /// already exists. Re-reading and re-running the unit is the remedy.
    Conflict,
    /// The unit's inbox row already exists: this event was already handled (possibly by another
    /// replica). Nothing of the unit was written.
    DuplicateInbox,
    /// A row the operation requires does not exist.
    NotFound,
    /// The backend is unreachable, busy, or aborted the transaction for a transient reason
    /// (lock timeout, serialization failure, connection lost). Retrying later may succeed.
    Unavailable,
    /// Stored data could not be decoded (a body that is not JSON, an unknown record kind...).
    Corrupt,
    /// The caller passed something the store cannot accept (a bad URL, an unserializable record).
    Invalid,
    /// The backend rejected a statement for a reason that is neither transient nor the caller's
    /// input (a schema mismatch, a bug).
    Internal,
}

impl StoreErrorKind {
    /// A short stable name, e.g. for metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Conflict => "conflict",
            Self::DuplicateInbox => "duplicate_inbox",
            Self::NotFound => "not_found",
            Self::Unavailable => "unavailable",
            Self::Corrupt => "corrupt",
            Self::Invalid => "invalid",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from the store. Messages name keys (tenant, record id, worker, event id) but never
/// record bodies, outcomes or connection passwords, so they are safe to log.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl StoreError {
    /// An error of `kind` with a message and no underlying cause.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by `source`.
    pub fn with_source(
        kind: StoreErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// Shorthand for a [`StoreErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Conflict, message)
    }

    /// Shorthand for a [`StoreErrorKind::Invalid`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Invalid, message)
    }

    /// Shorthand for a [`StoreErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Unavailable, message)
    }

    /// Shorthand for a [`StoreErrorKind::Corrupt`].
    pub fn corrupt(message: impl Into<String>) -> Self {
        Self::new(StoreErrorKind::Corrupt, message)
    }

    /// The kind, which decides what the caller does next.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The human-readable message (without the kind prefix).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when retrying the same operation later may succeed: the backend was unavailable or
    /// busy. Conflicts are not transient in this sense: the caller must re-read first.
    pub fn is_transient(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }

    /// A copy without the source chain (the source is folded into the message), for reporting
    /// one failure to every unit of a failed group commit.
    pub fn flattened(&self) -> StoreError {
        let message = match &self.source {
            Some(source) => format!("{}: {source}", self.message),
            None => self.message.clone(),
        };
        StoreError::new(self.kind, message)
    }

    /// The same error with `context` prepended to its message.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

/// Removes the password from a connection URL so it can appear in an error message.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_is_transient() {
        assert!(StoreError::unavailable("busy").is_transient());
        assert!(!StoreError::conflict("stale").is_transient());
        assert!(!StoreError::new(StoreErrorKind::DuplicateInbox, "seen").is_transient());
    }

    #[test]
    fn display_starts_with_the_kind() {
        let err = StoreError::conflict("record service/t1/s1 changed");
        assert_eq!(err.to_string(), "conflict: record service/t1/s1 changed");
    }

    #[test]
    fn redact_url_hides_the_password_only() {
        assert_eq!(
            redact_url("postgres://fleet:s3cret@db:5432/fleet?schema=a"),
            "postgres://fleet:***@db:5432/fleet?schema=a"
        );
        assert_eq!(redact_url("postgres://fleet@db/x"), "postgres://fleet@db/x");
        assert_eq!(redact_url("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }
}
