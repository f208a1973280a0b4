//! `fleetctl envelope …` run as a process: exit codes, output, and no panic on any input.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use fleet_envelope::{EventType, MAX_ENVELOPE_BYTES, cloudevents, examples};

fn fleetctl(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fleetctl"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn fleetctl: {e}"));
    if let Some(mut input) = child.stdin.take() {
        // The command may refuse early and close its end; that is not a test failure.
        let _ = input.write_all(stdin);
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for fleetctl: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("envelope-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

#[test]
fn validate_accepts_a_valid_envelope_from_stdin_and_from_a_file() {
    let e = examples::sample_envelope(EventType::HealthCheckCompleted);
    let o = fleetctl(&["envelope", "validate"], &e.encode());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("valid: HealthCheckCompleted v1 {}\n", e.event_id)
    );

    let path = temp_file("valid.json", &e.encode());
    let o = fleetctl(
        &["envelope", "validate", path.to_str().unwrap_or_default()],
        b"",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let _ = std::fs::remove_file(path);
}

#[test]
fn validate_json_reports_type_version_id_and_format() {
    let e = examples::sample_envelope(EventType::SecretRotated);
    let o = fleetctl(
        &["envelope", "validate", "--json", "-"],
        &cloudevents::encode(&e),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_eq!(
        v,
        serde_json::json!({"valid": true, "format": "cloudevents", "eventType": "SecretRotated",
            "eventVersion": 1, "eventId": e.event_id.to_string()})
    );
}

#[test]
fn validate_prints_every_error_one_per_line_and_exits_1() {
    let mut v: serde_json::Value = serde_json::from_slice(
        &examples::sample_envelope(EventType::RuntimeDeploymentRequested).encode(),
    )
    .unwrap_or_default();
    v.as_object_mut().map(|o| o.remove("tenantId"));
    v["traceId"] = "xyz".into();
    v["data"]["replicas"] = (-1).into();
    let o = fleetctl(
        &["envelope", "validate"],
        &serde_json::to_vec(&v).unwrap_or_default(),
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "tenantId: required",
            "traceId: must be 32 lowercase hex characters (got \"xyz\")",
            "data.replicas: must be an integer >= 0 (got -1)",
        ]
    );

    let o = fleetctl(
        &["envelope", "validate", "--json"],
        &serde_json::to_vec(&v).unwrap_or_default(),
    );
    assert_eq!(o.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_eq!(report["valid"], false);
    assert_eq!(report["kind"], "Invalid");
    assert_eq!(
        report["errors"][0],
        serde_json::json!({"path": "tenantId", "rule": "required"})
    );
}

#[test]
fn validate_never_panics_whatever_the_bytes() {
    let deep = "[".repeat(100_000);
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff, 0xfe, 0x00],
        b"null".to_vec(),
        deep.into_bytes(),
        b"{\"a\":1,\"a\":2}".to_vec(),
        (0..=255u8).collect(),
    ];
    for body in cases {
        let o = fleetctl(&["envelope", "validate"], &body);
        assert_eq!(o.status.code(), Some(1), "{body:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
        assert!(
            stdout(&o).lines().all(|l| l.contains(": ")),
            "{}",
            stdout(&o)
        );
    }
}

#[test]
fn validate_refuses_oversized_input_without_reading_it_all() {
    let body = vec![b' '; MAX_ENVELOPE_BYTES * 4];
    let o = fleetctl(&["envelope", "validate"], &body);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "$: envelope is over the 262144-byte limit\n");
    let path = temp_file("big.json", &body);
    let o = fleetctl(
        &["envelope", "validate", path.to_str().unwrap_or_default()],
        b"",
    );
    assert_eq!(
        stdout(&o),
        "$: envelope is 1048576 bytes, over the 262144-byte limit\n"
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn an_unreadable_file_is_a_usage_error() {
    let o = fleetctl(&["envelope", "validate", "/nonexistent/envelope.json"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("fleetctl: cannot read /nonexistent/envelope.json: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn schema_prints_the_committed_schema() {
    let o = fleetctl(&["envelope", "schema", "ScalingPolicyApplied"], b"");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let committed = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/schemas/ScalingPolicyApplied.v1.json"),
    )
    .unwrap_or_default();
    assert_eq!(stdout(&o), committed);
}

#[test]
fn schema_of_an_unknown_type_lists_the_valid_names_and_exits_2() {
    let o = fleetctl(&["envelope", "schema", "RuntimeExploded"], b"");
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("RuntimeExploded"), "{err}");
    for t in EventType::ALL {
        assert!(err.contains(t.as_str()), "{t} missing from: {err}");
    }
}

#[test]
fn convert_round_trips_through_cloudevents() {
    for t in EventType::ALL {
        let mut e = examples::sample_envelope(t);
        e.extensions.insert("replayedFrom".into(), "dlq".into());
        let o = fleetctl(&["envelope", "convert", "--to", "cloudevents"], &e.encode());
        assert_eq!(o.status.code(), Some(0), "{t}: {}", stderr(&o));
        let ce: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        assert_eq!(ce["specversion"], "1.0");
        let o = fleetctl(&["envelope", "convert", "--to", "fleet", "-"], &o.stdout);
        assert_eq!(o.status.code(), Some(0), "{t}: {}", stderr(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("{}\n", String::from_utf8_lossy(&e.encode()))
        );
    }
}

#[test]
fn convert_of_an_invalid_envelope_writes_errors_to_stderr() {
    let o = fleetctl(
        &["envelope", "convert", "--to", "fleet"],
        b"{\"eventId\":\"x\"}",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(
        stderr(&o)
            .lines()
            .any(|l| l.starts_with("eventId: must be a UUID")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn convert_without_a_target_is_a_usage_error() {
    let o = fleetctl(&["envelope", "convert"], b"{}");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn example_output_validates() {
    for t in EventType::ALL {
        for to in ["fleet", "cloudevents"] {
            let o = fleetctl(&["envelope", "example", t.as_str(), "--to", to], b"");
            assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
            let v = fleetctl(&["envelope", "validate"], &o.stdout);
            assert_eq!(v.status.code(), Some(0), "{t} {to}: {}", stdout(&v));
        }
    }
}

#[test]
fn types_lists_the_catalog() {
    let o = fleetctl(&["envelope", "types", "--json"], b"");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_eq!(v.as_array().map(Vec::len), Some(EventType::ALL.len()));
    assert_eq!(
        v[0],
        serde_json::json!({"eventType": "RuntimeDeploymentRequested", "versions": [1]})
    );
}
