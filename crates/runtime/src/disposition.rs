//! What happens to a message after the pipeline: the handler never settles it itself.

use std::fmt;
use std::time::Duration;

/// Why a message went to the dead-letter queue (the `DeadLetterReason` broker property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// The body is not a valid envelope (rule 1).
    MalformedEnvelope,
    /// No handler for the event type and version (rule 2).
    UnsupportedEventType,
    /// No tenant binding for the envelope's environment (rule 3).
    UnknownEnvironment,
    /// The envelope's tenant does not own its environment (rule 3, a security event).
    TenantMismatch,
    /// Transient failures used up the worker's attempts (rule 7).
    MaxRetriesExceeded,
    /// The handler failed permanently (rule 7).
    HandlerRejected,
}

impl DeadLetterReason {
    /// The reason as written to the broker.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::MalformedEnvelope => "MalformedEnvelope",
            DeadLetterReason::UnsupportedEventType => "UnsupportedEventType",
            DeadLetterReason::UnknownEnvironment => "UnknownEnvironment",
            DeadLetterReason::TenantMismatch => "TenantMismatch",
            DeadLetterReason::MaxRetriesExceeded => "MaxRetriesExceeded",
            DeadLetterReason::HandlerRejected => "HandlerRejected",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The runtime's decision for one delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (handled, deduplicated, or another replica won): complete the message.
    Complete,
    /// Schedule a copy after the delay, then complete the original (the lock is not held).
    Retry(Duration),
    /// Move to the dead-letter queue with a reason and a description.
    DeadLetter {
        /// Machine-readable reason.
        reason: DeadLetterReason,
        /// Human-readable detail (never secrets: handler errors must redact them).
        description: String,
    },
}

impl Disposition {
    /// Name recorded on the message span (`messaging.servicebus.disposition_status`).
    pub fn status(&self) -> &'static str {
        match self {
            Disposition::Complete => "complete",
            Disposition::Retry(_) => "retry",
            Disposition::DeadLetter { .. } => "dead_letter",
        }
    }
}
