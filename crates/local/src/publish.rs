//! `--publish FILE`: input from outside the fleet, one message per line, sent as-is.
//!
//! Each non-empty line is one message body, bytes untouched (bad input is the point: it must end
//! in a dead-letter queue with a reason, not be cleaned up on the way in). The broker `Subject`
//! routes it: the envelope's `eventType` when the line parses — strictly, or loosely as a JSON
//! object with an `eventType` string. A line that names no type a subscription routes (bytes that
//! are not JSON, an unknown type, a type no worker consumes) would be dropped by the topic
//! without a trace, so it goes to the fleet's front door instead — the deploy command's
//! subscription — whose worker dead-letters it with the reason.

use std::path::Path;

use fleet_bus::{BusSender, Message, PropertyValue};
use fleet_envelope::Envelope;
use fleet_envelope::servicebus::{self, to_message_properties};

use crate::error::{LocalError, LocalErrorKind};

/// The largest `--publish` file read (bounded before it is read).
pub const MAX_PUBLISH_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Where input naming no routable event type is sent.
pub const FRONT_DOOR: &str = "RuntimeDeploymentRequested";

/// One line of a publish file, ready to send.
#[derive(Debug, Clone)]
pub struct InputLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The message.
    pub message: Message,
}

/// Reads `path` into messages; `routed` are the event types some subscription consumes.
pub fn read(path: &Path, routed: &[String]) -> Result<Vec<InputLine>, LocalError> {
    let bad = |what: String| LocalError::new(LocalErrorKind::Input, what);
    let meta = std::fs::metadata(path).map_err(|e| {
        bad(format!("cannot read --publish file {}", path.display())).with_source(e)
    })?;
    if meta.len() > MAX_PUBLISH_FILE_BYTES {
        return Err(bad(format!(
            "--publish file {} is {} bytes; the limit is {MAX_PUBLISH_FILE_BYTES}",
            path.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        bad(format!("cannot read --publish file {}", path.display())).with_source(e)
    })?;
    Ok(bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, raw)| {
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            (!raw.iter().all(u8::is_ascii_whitespace)).then(|| InputLine {
                line: i + 1,
                message: message_for(raw, routed),
            })
        })
        .collect())
}

/// The message for one raw line.
pub fn message_for(raw: &[u8], routed: &[String]) -> Message {
    let mut msg = Message::new(raw.to_vec());
    if let Ok(env) = Envelope::decode(raw) {
        // A valid envelope travels with the §3 property mapping, as a publisher would send it.
        let props = to_message_properties(&env);
        msg.message_id = Some(props.message_id);
        msg.correlation_id = Some(props.correlation_id);
        msg.content_type = Some(props.content_type);
        for (k, v) in props.application_properties {
            let v = match v {
                servicebus::PropertyValue::String(s) => PropertyValue::String(s),
                servicebus::PropertyValue::Int(i) => PropertyValue::Int(i),
            };
            msg.application_properties.insert(k, v);
        }
    } else {
        msg.content_type = Some("application/json".to_owned());
    }
    let named = serde_json::from_slice::<serde_json::Value>(raw)
        .ok()
        .and_then(|v| {
            v.get("eventType")
                .and_then(|t| t.as_str())
                .map(str::to_owned)
        });
    msg.subject = Some(match named {
        Some(t) if routed.contains(&t) => t,
        _ => FRONT_DOOR.to_owned(),
    });
    msg
}

/// Sends every line in order; a line the broker refuses (e.g. over the size limit) is reported
/// and skipped, the rest still go.
pub async fn send_all(sender: &dyn BusSender, lines: Vec<InputLine>) -> Vec<String> {
    let mut refused = Vec::new();
    for l in lines {
        if let Err(e) = sender.send(l.message).await {
            refused.push(format!("line {}: {e}", l.line));
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_envelope::{EventType, examples};

    fn routed() -> Vec<String> {
        vec!["ConfigurationPublished".to_owned()]
    }

    #[test]
    fn a_valid_envelope_travels_under_its_type_with_its_bytes_untouched() {
        let env = examples::sample_envelope(EventType::ConfigurationPublished);
        let raw = env.encode();
        let msg = message_for(&raw, &routed());
        assert_eq!(msg.subject.as_deref(), Some("ConfigurationPublished"));
        assert_eq!(msg.message_id, Some(env.event_id.to_string()));
        assert_eq!(&msg.body[..], &raw[..]);
    }

    #[test]
    fn input_naming_no_routable_type_goes_to_the_front_door() {
        for raw in [
            &b"\xff\xfe not json"[..],
            br#"{"eventType":"RuntimeExploded"}"#,
            br#"{"eventType":"SecretRotationFailed"}"#,
        ] {
            let msg = message_for(raw, &routed());
            assert_eq!(msg.subject.as_deref(), Some(FRONT_DOOR), "{raw:?}");
            assert_eq!(&msg.body[..], raw, "bytes are sent as they are");
        }
        let loose = message_for(
            br#"{"eventType":"ConfigurationPublished","eventId":1}"#,
            &routed(),
        );
        assert_eq!(loose.subject.as_deref(), Some("ConfigurationPublished"));
    }

    #[test]
    fn blank_lines_are_skipped_and_line_numbers_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "a\n\n  \r\nb\r\n").expect("write");
        let lines = read(&path, &routed()).expect("read");
        let got: Vec<(usize, Vec<u8>)> = lines
            .iter()
            .map(|l| (l.line, l.message.body.to_vec()))
            .collect();
        assert_eq!(got, [(1, b"a".to_vec()), (4, b"b".to_vec())]);
        let err = read(&dir.path().join("missing"), &routed()).expect_err("missing file");
        assert!(err.to_string().contains("missing"), "{err}");
    }
}
