//! Shape rules shared by the envelope fields, the payload checker and the CloudEvents mapping.
//! Each returns the rule text on failure, so callers only add the path.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::error::quoted;

/// Service Bus caps `MessageId` and `CorrelationId` at 128 characters.
pub(crate) const MAX_ID_CHARS: usize = 128;
/// A generous cap for free-text identifiers (`source`, `subject`).
pub(crate) const MAX_TEXT_CHARS: usize = 1024;

/// The JSON kind of a value, for "got ..." in messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A short rendering of a bad value for "got ..." in messages.
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::String(s) => quoted(s),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        other => kind_of(other).to_owned(),
    }
}

/// A UUID in the canonical 8-4-4-4-12 form (either case), not nil.
///
/// Only the canonical form is accepted so that re-encoding gives back the same text modulo case.
pub(crate) fn uuid(s: &str) -> Result<Uuid, String> {
    let canonical = s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if !canonical {
        return Err(format!(
            "must be a UUID like 0190b5b4-8b1a-7c3e-9f00-1a2b3c4d5e6f (got {})",
            quoted(s)
        ));
    }
    match Uuid::try_parse(s) {
        Ok(id) if id.is_nil() => Err("must not be the nil UUID".to_owned()),
        Ok(id) => Ok(id),
        Err(_) => Err(format!("must be a UUID (got {})", quoted(s))),
    }
}

fn lower_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A W3C trace-id: 32 lowercase hex characters, not all zeros.
pub(crate) fn trace_id(s: &str) -> Result<(), String> {
    if !lower_hex(s, 32) {
        return Err(format!(
            "must be 32 lowercase hex characters (got {})",
            quoted(s)
        ));
    }
    if s.bytes().all(|b| b == b'0') {
        return Err("must not be all zeros".to_owned());
    }
    Ok(())
}

/// A W3C span-id (parent-id): 16 lowercase hex characters, not all zeros.
pub(crate) fn span_id(s: &str) -> Result<(), String> {
    if !lower_hex(s, 16) {
        return Err(format!(
            "must be 16 lowercase hex characters (got {})",
            quoted(s)
        ));
    }
    if s.bytes().all(|b| b == b'0') {
        return Err("must not be all zeros".to_owned());
    }
    Ok(())
}

/// 64 lowercase hex characters (a SHA-256 digest).
pub(crate) fn sha256_hex(s: &str) -> Result<(), String> {
    if lower_hex(s, 64) {
        Ok(())
    } else {
        Err(format!(
            "must be 64 lowercase hex characters (got {})",
            quoted(s)
        ))
    }
}

/// An RFC 3339 timestamp in UTC: `2026-01-31T12:00:00Z`, optional fraction, `Z` or `+00:00`.
///
/// A zone is required (a local time is ambiguous) and other offsets are refused rather than
/// converted, so that what is stored is what was sent. `-00:00` means "offset unknown" in
/// RFC 3339 and is refused too.
pub(crate) fn timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    let bad = || {
        format!(
            "must be an RFC 3339 timestamp in UTC like 2026-01-31T12:00:00Z (got {})",
            quoted(s)
        )
    };
    if s.len() < 20 || s.as_bytes().get(10) != Some(&b'T') {
        return Err(bad());
    }
    let parsed = DateTime::parse_from_rfc3339(s).map_err(|_| bad())?;
    if parsed.offset().local_minus_utc() != 0 {
        return Err(format!(
            "must be in UTC (end in Z), not offset {} (got {})",
            parsed.offset(),
            quoted(s)
        ));
    }
    if s.ends_with("-00:00") {
        return Err(format!(
            "offset -00:00 means an unknown offset; use Z (got {})",
            quoted(s)
        ));
    }
    if s.ends_with('z') {
        return Err(bad());
    }
    Ok(parsed.with_timezone(&Utc))
}

/// Free text used as an identifier: non-empty, at most `max` characters, no control characters.
pub(crate) fn text(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    // ASCII text needs no decoding: its control characters are the bytes below 0x20 and 0x7f.
    let control = if s.is_ascii() {
        s.bytes().any(|b| b < 0x20 || b == 0x7f)
    } else {
        s.chars().any(char::is_control)
    };
    if control {
        return Err(format!(
            "must not contain control characters (got {})",
            quoted(s)
        ));
    }
    // A string has at most as many characters as bytes: count only when that could matter.
    if s.len() > max && s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    Ok(())
}

/// A URI reference: identifier text without whitespace.
pub(crate) fn uri_reference(s: &str) -> Result<(), String> {
    text(s, MAX_TEXT_CHARS)?;
    let space = if s.is_ascii() {
        s.bytes().any(|b| b.is_ascii_whitespace() || b == 0x0b)
    } else {
        s.chars().any(char::is_whitespace)
    };
    if space {
        return Err(format!(
            "must be a URI reference without spaces (got {})",
            quoted(s)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_ascii_shortcuts_agree_with_the_unicode_definitions() {
        for b in 0u8..128 {
            let c = char::from(b);
            let s = format!("a{c}b");
            assert_eq!(text(&s, 10).is_err(), c.is_control(), "{b:#x}");
            if !c.is_control() {
                assert_eq!(uri_reference(&s).is_err(), c.is_whitespace(), "{b:#x}");
            }
        }
        assert!(text("a\u{85}b", 10).is_err(), "a C1 control outside ASCII");
        assert!(
            uri_reference("a\u{2003}b").is_err(),
            "a Unicode space outside ASCII"
        );
    }
    use super::*;

    #[test]
    fn timestamps_need_a_utc_zone() {
        assert!(timestamp("2026-01-31T12:00:00Z").is_ok());
        assert!(timestamp("2026-01-31T12:00:00.123456789Z").is_ok());
        assert!(timestamp("2026-01-31T12:00:00+00:00").is_ok());
        let no_zone = timestamp("2026-01-31T12:00:00").err().unwrap_or_default();
        assert!(
            no_zone.starts_with("must be an RFC 3339 timestamp in UTC"),
            "{no_zone}"
        );
        let offset = timestamp("2026-01-31T12:00:00+02:00")
            .err()
            .unwrap_or_default();
        assert!(offset.contains("not offset +02:00"), "{offset}");
        assert!(timestamp("2026-01-31T12:00:00-00:00").is_err());
        assert!(timestamp("2026-01-31 12:00:00Z").is_err());
        assert!(timestamp("2026-02-30T12:00:00Z").is_err());
    }

    #[test]
    fn ids_must_have_their_exact_shape() {
        assert!(uuid("0190b5b4-8b1a-7c3e-9f00-1a2b3c4d5e6f").is_ok());
        assert!(uuid("0190B5B4-8B1A-7C3E-9F00-1A2B3C4D5E6F").is_ok());
        assert!(uuid("0190b5b48b1a7c3e9f001a2b3c4d5e6f").is_err());
        assert!(uuid("{0190b5b4-8b1a-7c3e-9f00-1a2b3c4d5e6f}").is_err());
        assert!(uuid("00000000-0000-0000-0000-000000000000").is_err());
        assert!(trace_id("4bf92f3577b34da6a3ce929d0e0e4736").is_ok());
        assert!(trace_id("4BF92F3577B34DA6A3CE929D0E0E4736").is_err());
        assert!(trace_id("00000000000000000000000000000000").is_err());
        assert!(span_id("00f067aa0ba902b7").is_ok());
        assert!(span_id("00f067aa0ba902b").is_err());
        assert!(span_id("0000000000000000").is_err());
    }
}
