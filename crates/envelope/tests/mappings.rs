//! The Service Bus property mapping and the CloudEvents mapping.

mod common;

use common::*;
use fleet_envelope::cloudevents::{self, from_cloudevent, to_cloudevent};
use fleet_envelope::servicebus::{PropertyValue, to_message_properties};
use fleet_envelope::{Envelope, EventType, Format, examples};
use serde_json::json;

fn ce_bytes(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[test]
fn service_bus_properties_follow_the_envelope() {
    let e = examples::sample_envelope(EventType::HealthCheckCompleted);
    let p = to_message_properties(&e);
    assert_eq!(p.message_id, e.event_id.to_string());
    assert_eq!(p.correlation_id, "corr-5b1d2c");
    assert_eq!(p.subject, "HealthCheckCompleted");
    assert_eq!(p.content_type, "application/json");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned();
    let s = |v: &str| PropertyValue::String(v.to_owned());
    let expected = [
        ("Diagnostic-Id", PropertyValue::String(tp.clone())),
        ("environmentId", s("env-prod-weu")),
        ("eventType", s("HealthCheckCompleted")),
        ("eventVersion", PropertyValue::Int(1)),
        ("tenantId", s("tenant-contoso")),
        ("traceparent", PropertyValue::String(tp)),
    ];
    let actual: Vec<_> = p
        .application_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn traceparent_derives_a_parent_id_when_span_id_is_absent() {
    let mut e = examples::sample_envelope(EventType::SecretRotated);
    e.span_id = None;
    let tp = e.traceparent();
    assert_eq!(
        tp,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            fleet_envelope::derived_span_id(e.event_id)
        )
    );
    assert!(e.validate().is_ok());
}

#[test]
fn cloudevents_carry_every_attribute() {
    let e = examples::sample_envelope(EventType::ScalingPolicyApplied);
    let ce = to_cloudevent(&e);
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["id"], e.event_id.to_string());
    assert_eq!(ce["type"], "ScalingPolicyApplied");
    assert_eq!(ce["source"], "/workers/example");
    assert_eq!(ce["subject"], "services/svc-42");
    assert_eq!(ce["time"], "2026-01-31T12:00:00Z");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["tenantid"], "tenant-contoso");
    assert_eq!(ce["environmentid"], "env-prod-weu");
    assert_eq!(ce["correlationid"], "corr-5b1d2c");
    assert_eq!(
        ce["causationid"],
        e.causation_id.map(|c| c.to_string()).unwrap_or_default()
    );
    assert_eq!(ce["eventversion"], 1);
    assert_eq!(
        ce["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(ce["data"], e.data);
}

#[test]
fn cloudevents_round_trip_is_lossless_for_every_type() {
    for t in EventType::ALL {
        let e = examples::sample_envelope(t);
        let back =
            from_cloudevent(&cloudevents::encode(&e)).unwrap_or_else(|err| panic!("{t}: {err}"));
        assert_eq!(back, e, "{t}");
    }
}

#[test]
fn absent_optionals_stay_absent_through_cloudevents() {
    let mut e = examples::sample_envelope(EventType::SecretRotationRequested);
    e.span_id = None;
    e.subject = None;
    e.causation_id = None;
    let ce = to_cloudevent(&e);
    assert!(ce.get("subject").is_none() && ce.get("causationid").is_none());
    assert_eq!(from_cloudevent(&ce_bytes(&ce)).ok(), Some(e));
}

#[test]
fn unknown_fleet_fields_survive_cloudevents() {
    let mut e = examples::sample_envelope(EventType::ConfigurationSynced);
    e.extensions.insert("priority".into(), json!("high"));
    e.extensions.insert("retries".into(), json!(3));
    e.extensions.insert("replayedFrom".into(), json!("dlq"));
    e.extensions
        .insert("id".into(), json!("clashes with a CloudEvents attribute"));
    e.extensions
        .insert("route".into(), json!({"hops": ["a", "b"]}));
    let ce = to_cloudevent(&e);
    assert_eq!(
        ce["priority"], "high",
        "valid extension names travel as themselves"
    );
    assert_eq!(ce["retries"], 3);
    let packed: serde_json::Value =
        serde_json::from_str(ce["fleetextensions"].as_str().unwrap_or("")).unwrap_or_default();
    assert_eq!(
        packed,
        json!({"replayedFrom": "dlq", "id": "clashes with a CloudEvents attribute", "route": {"hops": ["a", "b"]}})
    );
    let back = from_cloudevent(&ce_bytes(&ce)).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(back.extensions.len(), 5);
    for (k, v) in &e.extensions {
        assert_eq!(back.extensions.get(k), Some(v), "{k}");
    }
    // And back again: the Fleet JSON of both is identical up to extension order.
    let again = from_cloudevent(&cloudevents::encode(&back)).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(again, back);
}

#[test]
fn foreign_cloudevents_extensions_are_kept() {
    let mut ce = to_cloudevent(&examples::sample_envelope(EventType::SecretRotated));
    ce["dataschema"] = json!("urn:fleet:schema:SecretRotated:v1");
    ce["eventversion"] = json!("1");
    let e = from_cloudevent(&ce_bytes(&ce)).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(
        e.extensions.get("dataschema"),
        Some(&json!("urn:fleet:schema:SecretRotated:v1"))
    );
    assert_eq!(
        e.event_version, 1,
        "a string eventversion is read as a number"
    );
    assert_eq!(
        to_cloudevent(&e)["dataschema"],
        "urn:fleet:schema:SecretRotated:v1"
    );
}

#[test]
fn cloudevents_errors_name_cloudevents_attributes() {
    let mut ce = to_cloudevent(&examples::sample_envelope(EventType::SecretRotated));
    let obj = ce
        .as_object_mut()
        .unwrap_or_else(|| panic!("not an object"));
    obj.remove("tenantid");
    obj.insert("specversion".into(), json!("0.3"));
    obj.insert("traceparent".into(), json!("01-abc"));
    obj.insert("time".into(), json!("2026-01-31T12:00:00+01:00"));
    obj.insert("datacontenttype".into(), json!("text/xml"));
    obj.insert("tenantId".into(), json!("camel"));
    let errs = lines(
        &from_cloudevent(&ce_bytes(&ce))
            .err()
            .unwrap_or_else(|| panic!("accepted")),
    );
    assert_has(&errs, "specversion: must be \"1.0\" (got \"0.3\")");
    assert_has(&errs, "tenantid: required");
    assert_has(
        &errs,
        "traceparent: must be a W3C traceparent like 00-<32 hex>-<16 hex>-01 (got \"01-abc\")",
    );
    assert_has(
        &errs,
        "time: must be in UTC (end in Z), not offset +01:00 (got \"2026-01-31T12:00:00+01:00\")",
    );
    assert_has(
        &errs,
        "datacontenttype: must be application/json (got \"text/xml\")",
    );
    assert_has(
        &errs,
        "tenantId: is a Fleet envelope field, not a CloudEvents attribute (use the mapped attribute)",
    );
    assert_eq!(errs.len(), 6, "{errs:#?}");
}

#[test]
fn content_type_and_sniffing_pick_the_format() {
    let e = examples::sample_envelope(EventType::RuntimeInventoryUpdated);
    let ce = cloudevents::encode(&e);
    let fleet = e.encode();
    let detect = |b: &[u8], ct| {
        Envelope::decode_detect(b, ct)
            .map(|(env, f)| (env == e, f))
            .ok()
    };
    assert_eq!(
        detect(&ce, Some("application/cloudevents+json; charset=utf-8")),
        Some((true, Format::CloudEvents))
    );
    assert_eq!(detect(&ce, None), Some((true, Format::CloudEvents)));
    assert_eq!(
        detect(&ce, Some("application/json")),
        Some((true, Format::CloudEvents))
    );
    assert_eq!(detect(&fleet, None), Some((true, Format::Fleet)));
    assert_eq!(
        detect(&fleet, Some("Application/JSON")),
        Some((true, Format::Fleet))
    );
    let err = Envelope::decode_with_content_type(&fleet, Some("text/plain"))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "$: unsupported content type \"text/plain\" (expected application/json or application/cloudevents+json)"
        )
    );
    // A declared CloudEvents body that is really Fleet JSON is judged as CloudEvents.
    assert!(Envelope::decode_with_content_type(&fleet, Some(cloudevents::CONTENT_TYPE)).is_err());
}

#[test]
fn caused_events_inherit_trace_and_correlation() {
    let trigger = examples::sample_envelope(EventType::RuntimeDeploymentRequested);
    let now = trigger.occurred_at + chrono::Duration::seconds(5);
    let payload = examples::sample_payload(EventType::RuntimeDeploymentCompleted);
    let a = trigger.caused(
        "runtime-deployment",
        0,
        payload.clone(),
        Some("services/svc-42".into()),
        now,
    );
    let b = trigger.caused(
        "runtime-deployment",
        0,
        payload.clone(),
        Some("services/svc-42".into()),
        now,
    );
    assert_eq!(a, b, "a re-run emits the same event");
    assert_eq!(
        a.event_id,
        fleet_envelope::emitted_event_id(trigger.event_id, "runtime-deployment", 0)
    );
    assert_eq!(a.causation_id, Some(trigger.event_id));
    assert_eq!(
        (a.trace_id.as_str(), a.correlation_id.as_str()),
        (trigger.trace_id.as_str(), trigger.correlation_id.as_str())
    );
    assert_eq!(
        (a.tenant_id.as_str(), a.environment_id.as_str()),
        ("tenant-contoso", "env-prod-weu")
    );
    assert_eq!(a.event_type, EventType::RuntimeDeploymentCompleted);
    assert_eq!(a.source, "/workers/runtime-deployment");
    assert!(a.validate().is_ok());
    assert_eq!(a.payload().ok(), Some(payload));
}

#[test]
fn new_commands_get_time_ordered_v7_ids() {
    let now = chrono::Utc::now();
    let p = examples::sample_payload(EventType::SecretRotationRequested);
    let a = Envelope::new(
        p.clone(),
        "t",
        "e",
        "/cli/fleetctl",
        "c",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        now,
    );
    let b = Envelope::new(
        p,
        "t",
        "e",
        "/cli/fleetctl",
        "c",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        now + chrono::Duration::milliseconds(2),
    );
    assert_eq!(a.event_id.get_version_num(), 7);
    assert!(a.event_id < b.event_id);
    assert_eq!(a.causation_id, None);
    assert!(a.validate().is_ok(), "{:?}", a.validate());
}

#[test]
fn envelopes_nest_in_other_serde_documents() {
    let e = examples::sample_envelope(EventType::ConfigurationPublished);
    let doc = json!({ "reason": "MaxRetriesExceeded", "envelope": e });
    #[derive(serde::Deserialize)]
    struct Export {
        envelope: Envelope,
    }
    let back: Export = serde_json::from_value(doc).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(back.envelope, e);
    let bad = json!({ "envelope": { "eventId": "x" } });
    let err = serde_json::from_value::<Export>(bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with("eventId: must be a UUID"), "{err}");
    assert!(err.contains("; tenantId: required"), "{err}");
}

#[test]
fn encode_writes_exactly_what_serde_writes_and_decodes_back() {
    for t in EventType::ALL {
        let mut e = examples::sample_envelope(t)
            .with_subject("services/\"quoted\" \u{e9}")
            .with_span_id("00f067aa0ba902b7");
        e.causation_id = Some(e.event_id);
        e.extensions
            .insert("note\n".into(), json!({"a": [1, 2.5, null], "b": "\\"}));
        e.extensions.insert("region".into(), json!("westeurope"));
        let body = e.encode();
        assert_eq!(body, serde_json::to_vec(&e).unwrap(), "{t}");
        assert_eq!(Envelope::decode(&body).unwrap(), e, "{t}");
    }
}
