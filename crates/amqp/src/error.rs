//! The crate's one error type: a kind, a message naming the bad value, an optional source.

use std::error::Error as StdError;
use std::fmt;

/// What went wrong with a listener or one of its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AmqpErrorKind {
    /// Socket-level failure (accept, read, write).
    Io,
    /// The peer broke the protocol: bad header, undecodable frame, frame out of place.
    Protocol,
    /// A frame or count exceeded a negotiated or configured bound.
    LimitExceeded,
    /// Authentication failed.
    Unauthorized,
    /// The peer did not send anything within the idle timeout.
    IdleTimeout,
    /// A backend (Bus) operation failed.
    Backend,
}

impl AmqpErrorKind {
    /// A stable name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Io => "Io",
            Self::Protocol => "Protocol",
            Self::LimitExceeded => "LimitExceeded",
            Self::Unauthorized => "Unauthorized",
            Self::IdleTimeout => "IdleTimeout",
            Self::Backend => "Backend",
        }
    }
}

impl fmt::Display for AmqpErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of the AMQP listener.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct AmqpError {
    kind: AmqpErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl AmqpError {
    /// An error of `kind` with a message naming the offending value.
    pub fn new(kind: AmqpErrorKind, message: impl Into<String>) -> Self {
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

    /// The kind.
    pub fn kind(&self) -> AmqpErrorKind {
        self.kind
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn protocol(message: impl Into<String>) -> Self {
        Self::new(AmqpErrorKind::Protocol, message)
    }

    pub(crate) fn io(context: &str, err: std::io::Error) -> Self {
        Self::new(AmqpErrorKind::Io, format!("{context}: {err}")).with_source(err)
    }
}
