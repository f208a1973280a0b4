//! The emulator's own failures (configuration, storage). Data-plane operations fail with the
//! port's [`fleet_bus::BusError`], which is what clients see.

use std::error::Error as StdError;
use std::fmt;

/// What kind of failure an [`EmulatorError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EmulatorErrorKind {
    /// The topology (`Config.json`) is malformed or asks for something not emulated.
    Config,
    /// The SQLite data file could not be opened, read or written.
    Storage,
    /// A file could not be read.
    Io,
    /// A data-plane operation failed (the source is the `fleet_bus::BusError`).
    Operation,
}

impl fmt::Display for EmulatorErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Config => "invalid configuration",
            Self::Storage => "storage failure",
            Self::Io => "i/o failure",
            Self::Operation => "operation failed",
        })
    }
}

/// An error opening or running the emulator.
#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct EmulatorError {
    kind: EmulatorErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl From<fleet_bus::BusError> for EmulatorError {
    fn from(e: fleet_bus::BusError) -> Self {
        Self::new(EmulatorErrorKind::Operation, e.to_string()).with_source(e)
    }
}

impl EmulatorError {
    /// An error of `kind`.
    pub fn new(kind: EmulatorErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A configuration error at `path` (e.g. `UserConfig.Namespaces[0].Queues[1].Name`).
    pub fn config(path: &str, what: impl fmt::Display) -> Self {
        Self::new(EmulatorErrorKind::Config, format!("{path}: {what}"))
    }

    /// A storage error wrapping its cause.
    pub fn storage(message: impl Into<String>, source: rusqlite::Error) -> Self {
        Self::new(EmulatorErrorKind::Storage, message).with_source(source)
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// The kind.
    pub fn kind(&self) -> EmulatorErrorKind {
        self.kind
    }

    /// The message without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
}
