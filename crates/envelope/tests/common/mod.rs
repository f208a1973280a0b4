//! Helpers shared by the integration tests.

#![allow(dead_code)]

use fleet_envelope::{Envelope, EnvelopeError, EventType, examples};
use serde_json::Value;

/// A valid envelope of `t` as a JSON value, to be broken by a test.
pub fn sample_json(t: EventType) -> Value {
    serde_json::from_slice(&examples::sample_envelope(t).encode()).unwrap_or(Value::Null)
}

/// Decodes `value`, which the test expects to be rejected, and returns the error lines.
pub fn errors_of(value: &Value) -> Vec<String> {
    errors_of_bytes(&serde_json::to_vec(value).unwrap_or_default())
}

/// Decodes `bytes`, which the test expects to be rejected, and returns the error lines.
pub fn errors_of_bytes(bytes: &[u8]) -> Vec<String> {
    match Envelope::decode(bytes) {
        Ok(e) => panic!("expected an error, decoded {e:?}"),
        Err(e) => lines(&e),
    }
}

/// The error's lines.
pub fn lines(e: &EnvelopeError) -> Vec<String> {
    e.errors.iter().map(ToString::to_string).collect()
}

/// Asserts `lines` contains `expected` exactly.
pub fn assert_has(lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|l| l == expected),
        "expected line {expected:?} in {lines:#?}"
    );
}
