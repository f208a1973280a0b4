//! The one error type of the port: a kind the runtime classifies, a message, an optional source.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong, coarse enough for the runtime to decide between retry, dead-letter and abort.
///
/// The variants follow Service Bus' failure reasons so an Azure adapter maps them one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BusErrorKind {
    /// The lock token is unknown, expired, or belongs to another delivery: settle again
    /// is pointless, the message will be (or was) redelivered.
    MessageLockLost,
    /// The queue, topic or subscription does not exist.
    EntityNotFound,
    /// No message with the given sequence number is in the required state
    /// (e.g. `receive_deferred` of a message that is not deferred).
    MessageNotFound,
    /// The entity is full.
    QuotaExceeded,
    /// The message is larger than the entity accepts.
    MessageSizeExceeded,
    /// The operation did not finish within its time budget.
    Timeout,
    /// The service asks the client to back off.
    ServiceBusy,
    /// The credentials were refused.
    Unauthorized,
    /// The connection to the service failed or broke.
    Connection,
    /// The caller passed something the service cannot accept (bad name, bad sequence number...).
    InvalidArgument,
    /// What the caller asked to create exists already (e.g. a rule of the same name).
    AlreadyExists,
    /// The sender or receiver was closed, or the service is shutting down.
    Closed,
    /// Anything else.
    Other,
}

impl BusErrorKind {
    /// A stable, human-readable name (used in logs and dead-letter descriptions).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageLockLost => "MessageLockLost",
            Self::EntityNotFound => "EntityNotFound",
            Self::MessageNotFound => "MessageNotFound",
            Self::QuotaExceeded => "QuotaExceeded",
            Self::MessageSizeExceeded => "MessageSizeExceeded",
            Self::Timeout => "Timeout",
            Self::ServiceBusy => "ServiceBusy",
            Self::Unauthorized => "Unauthorized",
            Self::Connection => "Connection",
            Self::InvalidArgument => "InvalidArgument",
            Self::AlreadyExists => "AlreadyExists",
            Self::Closed => "Closed",
            Self::Other => "Other",
        }
    }
}

impl fmt::Display for BusErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a [`Bus`](crate::Bus), a sender or a receiver.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct BusError {
    kind: BusErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl BusError {
    /// An error of `kind` with a message naming the offending value.
    pub fn new(kind: BusErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind that drives retry classification.
    pub fn kind(&self) -> BusErrorKind {
        self.kind
    }

    /// The message, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying the same operation later can succeed: timeouts, throttling, broken
    /// connections and a full entity (consumers drain it) are transient; everything else is not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            BusErrorKind::Timeout
                | BusErrorKind::ServiceBusy
                | BusErrorKind::Connection
                | BusErrorKind::QuotaExceeded
        )
    }

    /// Shorthand for [`BusErrorKind::EntityNotFound`] naming the entity.
    pub fn entity_not_found(entity: impl fmt::Display) -> Self {
        Self::new(
            BusErrorKind::EntityNotFound,
            format!("entity \"{entity}\" does not exist"),
        )
    }

    /// Shorthand for [`BusErrorKind::MessageLockLost`].
    pub fn lock_lost(message: impl Into<String>) -> Self {
        Self::new(BusErrorKind::MessageLockLost, message)
    }

    /// Shorthand for [`BusErrorKind::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(BusErrorKind::InvalidArgument, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_starts_with_the_kind_and_names_the_value() {
        let err = BusError::entity_not_found("orders");
        assert_eq!(
            err.to_string(),
            "EntityNotFound: entity \"orders\" does not exist"
        );
        assert_eq!(err.kind(), BusErrorKind::EntityNotFound);
        assert!(!err.is_transient());
    }

    #[test]
    fn throttling_and_timeouts_are_transient() {
        for kind in [
            BusErrorKind::Timeout,
            BusErrorKind::ServiceBusy,
            BusErrorKind::Connection,
        ] {
            assert!(BusError::new(kind, "x").is_transient(), "{kind}");
        }
        assert!(!BusError::lock_lost("x").is_transient());
    }
}
