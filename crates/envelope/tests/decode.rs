//! Decoding: valid envelopes round-trip, bad ones are refused with every error named.

mod common;

use common::*;
use fleet_envelope::{Envelope, ErrorKind, EventType, MAX_ENVELOPE_BYTES, examples};
use serde_json::json;

#[test]
fn every_sample_decodes_and_round_trips() {
    for t in EventType::ALL {
        let e = examples::sample_envelope(t);
        let decoded = Envelope::decode(&e.encode()).unwrap_or_else(|err| panic!("{t}: {err}"));
        assert_eq!(decoded, e, "{t}");
        assert_eq!(
            decoded.payload().ok(),
            Some(examples::sample_payload(t)),
            "{t}"
        );
        assert_eq!(decoded.encode(), e.encode(), "{t}: encoding is stable");
    }
}

#[test]
fn unknown_top_level_fields_survive_a_round_trip() {
    let mut v = sample_json(EventType::SecretRotated);
    v["x-priority"] = json!("high");
    v["retryCount"] = json!({"n": [1, 2]});
    let e = Envelope::decode(&serde_json::to_vec(&v).unwrap_or_default())
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(e.extensions.get("x-priority"), Some(&json!("high")));
    let again: serde_json::Value = serde_json::from_slice(&e.encode()).unwrap_or_default();
    assert_eq!(again, v);
}

#[test]
fn missing_fields_are_all_reported() {
    let errs = errors_of(&json!({}));
    for field in [
        "eventId",
        "eventType",
        "eventVersion",
        "source",
        "tenantId",
        "environmentId",
        "occurredAt",
        "traceId",
        "correlationId",
        "data",
    ] {
        assert_has(&errs, &format!("{field}: required"));
    }
    assert_eq!(errs.len(), 10, "{errs:#?}");
}

#[test]
fn ids_of_the_wrong_shape_are_named() {
    let mut v = sample_json(EventType::HealthCheckCompleted);
    v["eventId"] = json!("not-a-uuid");
    v["traceId"] = json!("4BF92F3577B34DA6A3CE929D0E0E4736");
    v["spanId"] = json!("0000000000000000");
    v["causationId"] = json!(42);
    let errs = errors_of(&v);
    assert_has(
        &errs,
        "eventId: must be a UUID like 0190b5b4-8b1a-7c3e-9f00-1a2b3c4d5e6f (got \"not-a-uuid\")",
    );
    assert_has(
        &errs,
        "traceId: must be 32 lowercase hex characters (got \"4BF92F3577B34DA6A3CE929D0E0E4736\")",
    );
    assert_has(&errs, "spanId: must not be all zeros");
    assert_has(&errs, "causationId: must be a string (got 42)");
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn an_all_zero_trace_id_is_refused() {
    let mut v = sample_json(EventType::HealthCheckCompleted);
    v["traceId"] = json!("00000000000000000000000000000000");
    assert_eq!(errors_of(&v), vec!["traceId: must not be all zeros"]);
}

#[test]
fn timestamps_need_utc() {
    let mut v = sample_json(EventType::HealthCheckCompleted);
    v["occurredAt"] = json!("2026-01-31T12:00:00");
    assert_eq!(
        errors_of(&v),
        vec![
            "occurredAt: must be an RFC 3339 timestamp in UTC like 2026-01-31T12:00:00Z (got \"2026-01-31T12:00:00\")"
        ]
    );
    v["occurredAt"] = json!("2026-01-31T14:00:00+02:00");
    assert_eq!(
        errors_of(&v),
        vec![
            "occurredAt: must be in UTC (end in Z), not offset +02:00 (got \"2026-01-31T14:00:00+02:00\")"
        ]
    );
}

#[test]
fn unknown_event_type_is_unsupported_not_malformed() {
    let mut v = sample_json(EventType::HealthCheckCompleted);
    v["eventType"] = json!("RuntimeExploded");
    let err = Envelope::decode(&serde_json::to_vec(&v).unwrap_or_default()).err();
    let err = err.unwrap_or_else(|| panic!("accepted an unknown type"));
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let line = err.to_string();
    assert!(
        line.starts_with("eventType: unknown event type \"RuntimeExploded\" (expected one of: "),
        "{line}"
    );
}

#[test]
fn unsupported_event_version_is_named() {
    let mut v = sample_json(EventType::ScalingPolicyApplied);
    v["eventVersion"] = json!(2);
    let err = Envelope::decode(&serde_json::to_vec(&v).unwrap_or_default()).err();
    let err = err.unwrap_or_else(|| panic!("accepted version 2"));
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(
        lines(&err),
        vec!["eventVersion: unsupported version 2 of ScalingPolicyApplied (supported: 1)"]
    );
    v["eventVersion"] = json!(0);
    assert_eq!(
        errors_of(&v),
        vec!["eventVersion: must be an integer >= 1 (got 0)"]
    );
    v["eventVersion"] = json!("1");
    assert_eq!(
        errors_of(&v),
        vec!["eventVersion: must be an integer >= 1 (got \"1\")"]
    );
}

#[test]
fn payload_errors_are_all_reported_with_data_paths() {
    let mut v = sample_json(EventType::RuntimeDeploymentRequested);
    v["data"]["replicas"] = json!(-1);
    v["data"]["platform"] = json!("k8s");
    v["data"].as_object_mut().map(|d| d.remove("image"));
    v["data"]["deploymentId"] = json!("");
    v["data"]["secretBindings"] = json!(["ok", 7]);
    let errs = errors_of(&v);
    assert_has(&errs, "data.replicas: must be an integer >= 0 (got -1)");
    assert_has(
        &errs,
        "data.platform: must be one of \"aks\", \"containerapps\", \"functions\", \"appservice\" (got \"k8s\")",
    );
    assert_has(&errs, "data.image: required");
    assert_has(&errs, "data.deploymentId: must not be empty");
    assert_has(&errs, "data.secretBindings[1]: must be a string (got 7)");
    assert_eq!(errs.len(), 5, "{errs:#?}");
}

#[test]
fn nested_payload_errors_name_the_element() {
    let mut v = sample_json(EventType::HealthCheckCompleted);
    v["data"]["probes"][1]["kind"] = json!("startup");
    v["data"]["probes"][0]["attempts"] = json!(0);
    v["data"]["window"]["end"] = json!("yesterday");
    let errs = errors_of(&v);
    assert_has(
        &errs,
        "data.probes[1].kind: must be one of \"liveness\", \"readiness\", \"dependency\" (got \"startup\")",
    );
    assert_has(
        &errs,
        "data.probes[0].attempts: must be an integer >= 1 (got 0)",
    );
    assert!(
        errs.iter()
            .any(|l| l.starts_with("data.window.end: must be an RFC 3339 timestamp")),
        "{errs:#?}"
    );
}

#[test]
fn cross_field_payload_rules_are_checked() {
    let mut v = sample_json(EventType::ScalingPolicyApplied);
    v["data"]["toReplicas"] = v["data"]["fromReplicas"].clone();
    assert_eq!(
        errors_of(&v),
        vec!["data.toReplicas: must differ from fromReplicas"]
    );
    let mut v = sample_json(EventType::ConfigurationPublished);
    v["data"]["ref"] = json!("appconfig://snapshots/cfg-orders-12");
    assert_eq!(
        errors_of(&v),
        vec!["data.ref: must be absent when values is present"]
    );
}

#[test]
fn numbers_out_of_range_are_refused() {
    let mut v = sample_json(EventType::RuntimeDeploymentRequested);
    v["data"]["replicas"] = json!(4_294_967_296_u64);
    assert_eq!(
        errors_of(&v),
        vec!["data.replicas: must be an integer <= 4294967295 (got 4294967296)"]
    );
    v["data"]["replicas"] = json!(2.5);
    assert_eq!(
        errors_of(&v),
        vec!["data.replicas: must be an integer >= 0 (got 2.5)"]
    );
    let mut v = sample_json(EventType::ScalingPolicyApplied);
    v["data"]["metric"]["value"] = json!("81.5");
    assert_eq!(
        errors_of(&v),
        vec!["data.metric.value: must be a number (got \"81.5\")"]
    );
    let body = String::from_utf8(
        serde_json::to_vec(&sample_json(EventType::RuntimeDeploymentRequested)).unwrap_or_default(),
    )
    .unwrap_or_default()
    .replace("\"replicas\":3", "\"replicas\":1e999");
    let errs = errors_of_bytes(body.as_bytes());
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("data.replicas: invalid JSON: number out of range"),
        "{errs:#?}"
    );
    let body = body.replace("1e999", "123456789012345678901234567890");
    assert!(errors_of_bytes(body.as_bytes())[0].starts_with("data.replicas: must be an integer"));
}

#[test]
fn data_must_be_an_object() {
    let mut v = sample_json(EventType::SecretRotated);
    v["data"] = json!([1]);
    assert_eq!(
        errors_of(&v),
        vec!["data: must be a JSON object (got array)"]
    );
}

#[test]
fn bodies_over_the_limit_are_refused_before_parsing() {
    // Not even JSON: proves the size check runs first.
    let body = vec![b'{'; MAX_ENVELOPE_BYTES + 1];
    let err = Envelope::decode(&body)
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(
        err.to_string(),
        "$: envelope is 262145 bytes, over the 262144-byte limit"
    );
}

#[test]
fn an_envelope_just_under_the_limit_is_accepted() {
    let mut e = examples::sample_envelope(EventType::SecretRotated);
    let base = e.encode().len();
    let pad = MAX_ENVELOPE_BYTES - base - r#","pad":"""#.len();
    e.extensions.insert("pad".into(), json!("x".repeat(pad)));
    assert_eq!(e.encode().len(), MAX_ENVELOPE_BYTES);
    assert!(e.validate().is_ok());
    e.extensions
        .insert("pad".into(), json!("x".repeat(pad + 1)));
    assert_eq!(
        e.validate().err().map(|e| e.kind()),
        Some(ErrorKind::TooLarge)
    );
}

#[test]
fn invalid_utf8_is_refused() {
    let mut body = examples::sample_envelope(EventType::SecretRotated).encode();
    body[20] = 0xff;
    let err = Envelope::decode(&body)
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert_eq!(
        err.to_string(),
        "$: not valid UTF-8 (bad byte at offset 20)"
    );
}

#[test]
fn non_objects_are_refused() {
    for (body, kind) in [
        ("[]", "array"),
        ("\"x\"", "string"),
        ("null", "null"),
        ("3", "integer"),
    ] {
        assert_eq!(
            errors_of_bytes(body.as_bytes()),
            vec![format!("$: must be a JSON object (got {kind})")]
        );
    }
    let errs = errors_of_bytes(b"");
    assert!(
        errs[0].starts_with("$: invalid JSON: unexpected end of input"),
        "{errs:?}"
    );
    let errs = errors_of_bytes(b"{} {}");
    assert!(
        errs[0].starts_with("$: invalid JSON: trailing characters"),
        "{errs:?}"
    );
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let deep = "[".repeat(100_000);
    assert_eq!(
        errors_of_bytes(deep.as_bytes()),
        vec!["$: must be a JSON object (got array)"]
    );
    let deep_member = format!("{{\"data\":{deep}");
    assert_eq!(
        errors_of_bytes(deep_member.as_bytes()),
        vec!["$: nested deeper than 128 levels"]
    );
    // The CloudEvents reader builds the whole tree first: it must hold too.
    let err = fleet_envelope::cloudevents::from_cloudevent(deep.as_bytes())
        .err()
        .map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("$: nested deeper than 128 levels"));
    let deep_data = format!("{{\"data\":{}{}}}", "{\"a\":".repeat(200), "}".repeat(201));
    assert_eq!(
        errors_of_bytes(deep_data.as_bytes()),
        vec!["$: nested deeper than 128 levels"]
    );
}

#[test]
fn duplicate_keys_are_refused_at_any_depth() {
    let body = examples::sample_envelope(EventType::HealthCheckCompleted).encode();
    let text = String::from_utf8(body).unwrap_or_default();
    let twice_top = text.replacen("\"tenantId\":", "\"tenantId\":\"evil\",\"tenantId\":", 1);
    let err = Envelope::decode(twice_top.as_bytes())
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert_eq!(
        lines(&err),
        vec!["tenantId: duplicate key (a JSON object must not repeat a member name)"]
    );
    let twice_deep = text
        .replacen("\"passed\":true", "\"passed\":true,\"passed\":false", 1)
        .replacen("\"start\":", "\"start\":1,\"start\":", 1);
    let errs = errors_of_bytes(twice_deep.as_bytes());
    assert_has(
        &errs,
        "data.probes[0].passed: duplicate key (a JSON object must not repeat a member name)",
    );
    assert_has(
        &errs,
        "data.window.start: duplicate key (a JSON object must not repeat a member name)",
    );
}

#[test]
fn errors_have_one_line_each() {
    let err = Envelope::decode(b"{\"tenantId\":1}")
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    let text = err.to_string();
    assert_eq!(text.lines().count(), err.errors.len());
    assert!(
        text.lines()
            .any(|l| l == "tenantId: must be a string (got 1)"),
        "{text}"
    );
}
