//! The crate's one error type: a kind that tells callers what went wrong, a message naming the
//! bad value, and the underlying source.

/// What kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalErrorKind {
    /// The data directory is missing, unreadable or in an unexpected state.
    DataDir,
    /// Bad input (a `--publish` file, a scenario name, an option value).
    Input,
    /// A component (emulator, store, sandbox, a worker) failed to start or run.
    Component,
    /// The scenario did not reach a step's expected outcome in time.
    Scenario,
}

/// An error of the local fleet.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LocalError {
    kind: LocalErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl LocalError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: LocalErrorKind, message: impl Into<String>) -> Self {
        LocalError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure.
    pub fn kind(&self) -> LocalErrorKind {
        self.kind
    }

    pub(crate) fn component(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        LocalError::new(LocalErrorKind::Component, what).with_source(source)
    }
}
