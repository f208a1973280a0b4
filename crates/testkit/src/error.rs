//! The testkit's error type.

use std::error::Error as StdError;
use std::fmt;

/// What failed in a harness operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestkitErrorKind {
    /// Building the emulator, the store or the topology failed.
    Setup,
    /// A bus operation failed.
    Bus,
    /// A store operation failed.
    Store,
    /// A condition was not met in time.
    Timeout,
    /// The worker under test failed or panicked.
    Worker,
}

/// A harness error: kind + message + source.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct TestkitError {
    kind: TestkitErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl TestkitError {
    /// A new error.
    pub fn new(kind: TestkitErrorKind, message: impl fmt::Display) -> Self {
        TestkitError {
            kind,
            message: message.to_string(),
            source: None,
        }
    }

    /// Attaches the cause.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind.
    pub fn kind(&self) -> TestkitErrorKind {
        self.kind
    }
}

pub(crate) fn bus(what: &str) -> impl FnOnce(fleet_bus::BusError) -> TestkitError + '_ {
    move |e| TestkitError::new(TestkitErrorKind::Bus, what).with_source(e)
}

pub(crate) fn store(what: &str) -> impl FnOnce(fleet_store::StoreError) -> TestkitError + '_ {
    move |e| TestkitError::new(TestkitErrorKind::Store, what).with_source(e)
}
