//! The crate's one error type: every problem found in an envelope, each naming its field.

use std::fmt;

/// What went wrong, coarsely: the runtime maps it to a dead-letter reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The body is over [`crate::MAX_ENVELOPE_BYTES`]; it was not parsed.
    TooLarge,
    /// The body is not an envelope at all: not UTF-8, not JSON, not an object, duplicate keys,
    /// nesting too deep.
    Malformed,
    /// The envelope is JSON but breaks field rules (missing, wrong shape, bad payload).
    Invalid,
    /// Every problem is an `eventType` or `eventVersion` this build does not know; the rest of
    /// the envelope is fine. A newer producer is the usual cause, so the message is routed to
    /// `UnsupportedEventType` rather than `MalformedEnvelope`.
    Unsupported,
}

impl ErrorKind {
    /// A stable name for logs and dead-letter reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::TooLarge => "TooLarge",
            ErrorKind::Malformed => "Malformed",
            ErrorKind::Invalid => "Invalid",
            ErrorKind::Unsupported => "Unsupported",
        }
    }
}

/// One broken rule, at one field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldError {
    /// Where: `tenantId`, `data.probes[0].status`, or `$` for the body as a whole.
    pub path: String,
    /// What rule the value breaks, e.g. `required` or `must be 32 lowercase hex characters`.
    pub rule: String,
}

impl FieldError {
    /// A rule broken at `path`.
    pub fn new(path: impl Into<String>, rule: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

/// Every problem found in one envelope (never just the first), plus a coarse kind.
///
/// `Display` prints one error per line, so a CLI or a dead-letter description can show it as is.
#[derive(Debug, thiserror::Error)]
pub struct EnvelopeError {
    /// The coarse classification, see [`ErrorKind`].
    pub kind: ErrorKind,
    /// Each broken rule; never empty.
    pub errors: Vec<FieldError>,
    /// The parser's own error when the body was not JSON, kept for diagnostics.
    #[source]
    pub source: Option<serde_json::Error>,
}

impl EnvelopeError {
    /// An error with one problem.
    pub fn single(kind: ErrorKind, path: impl Into<String>, rule: impl Into<String>) -> Self {
        EnvelopeError {
            kind,
            errors: vec![FieldError::new(path, rule)],
            source: None,
        }
    }

    /// An error from collected problems, `unsupported` of which are about an unknown event
    /// type or version.
    pub(crate) fn from_errors(errors: Vec<FieldError>, unsupported: usize) -> Self {
        let kind = if unsupported > 0 && unsupported == errors.len() {
            ErrorKind::Unsupported
        } else {
            ErrorKind::Invalid
        };
        EnvelopeError {
            kind,
            errors,
            source: None,
        }
    }

    /// The coarse classification.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// Quotes a bad value for an error message, cut short so a huge value cannot flood a log line.
pub(crate) fn quoted(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let cut: String = value.chars().take(MAX).collect();
        format!("{cut:?}…")
    }
}
