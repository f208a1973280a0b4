//! Property tests: no input panics the decoder, and every envelope survives both round trips.

mod common;

use chrono::{TimeZone, Utc};
use fleet_envelope::cloudevents::{from_cloudevent, to_cloudevent};
use fleet_envelope::{Envelope, EventType, FIELD_NAMES, examples};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Members of the catalog's payloads (each is absent from some types, which is part of the test).
const PAYLOAD_KEYS: &[&str] = &[
    "serviceId",
    "replicas",
    "platform",
    "image",
    "window",
    "probes",
    "status",
    "previousStatus",
    "desired",
    "actual",
    "kind",
    "findingHash",
    "values",
    "ref",
    "version",
    "serviceIds",
    "observed",
    "change",
    "attempts",
    "fromReplicas",
    "toReplicas",
    "metric",
    "outcome",
    "newVersion",
    "previousVersion",
    "firstSeenAt",
    "configurationVersion",
    "secretBindings",
    "x",
];

fn every_line_names_a_field(e: &fleet_envelope::EnvelopeError) {
    assert!(!e.errors.is_empty());
    for fe in &e.errors {
        assert!(!fe.path.is_empty() && !fe.rule.is_empty(), "{fe:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Err(e) = Envelope::decode(&bytes) { every_line_names_a_field(&e); }
        let _ = Envelope::decode_with_content_type(&bytes, None);
        let _ = from_cloudevent(&bytes);
    }

    #[test]
    fn mutated_envelopes_never_panic(
        index in 0..EventType::ALL.len(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut body = examples::sample_envelope(EventType::ALL[index]).encode();
        for (at, byte) in flips {
            let i = at.index(body.len());
            body[i] = byte;
        }
        if truncate {
            body.truncate(cut.index(body.len()));
        }
        match Envelope::decode(&body) {
            // Whatever is accepted must encode back to something accepted and equal.
            Ok(e) => prop_assert_eq!(Envelope::decode(&e.encode()).ok(), Some(e)),
            Err(e) => every_line_names_a_field(&e),
        }
    }

    #[test]
    fn arbitrary_field_values_never_panic(
        index in 0..EventType::ALL.len(),
        field in prop::sample::select(FIELD_NAMES.to_vec()),
        value in json_value(),
    ) {
        let mut v: Value = serde_json::from_slice(&examples::sample_envelope(EventType::ALL[index]).encode()).unwrap_or_default();
        v[field] = value;
        let body = serde_json::to_vec(&v).unwrap_or_default();
        if let Err(e) = Envelope::decode(&body) { every_line_names_a_field(&e); }
        let mut ce = to_cloudevent(&examples::sample_envelope(EventType::ALL[index]));
        ce[field.to_ascii_lowercase()] = v[field].clone();
        let _ = from_cloudevent(&serde_json::to_vec(&ce).unwrap_or_default());
    }

    #[test]
    fn arbitrary_payload_members_never_panic_and_what_passes_reads_typed(
        index in 0..EventType::ALL.len(),
        key in prop::sample::select(PAYLOAD_KEYS.to_vec()),
        value in json_value(),
    ) {
        let sample = examples::sample_envelope(EventType::ALL[index]).encode();
        let mut v: Value = serde_json::from_slice(&sample).unwrap_or_default();
        v["data"][key] = value;
        match Envelope::decode(&serde_json::to_vec(&v).unwrap_or_default()) {
            // The schema check is the gate: whatever passes it must read as the typed payload.
            Ok(e) => prop_assert!(e.payload().is_ok(), "{:?}", e.payload()),
            Err(e) => {
                every_line_names_a_field(&e);
                for fe in &e.errors {
                    prop_assert!(fe.path.starts_with("data"), "{}", fe);
                }
            }
        }
    }

    #[test]
    fn envelopes_survive_both_round_trips(
        index in 0..EventType::ALL.len(),
        tenant in "[a-z0-9-]{1,20}",
        subject in proptest::option::of("[ -~]{1,40}"),
        span in proptest::option::of("[0-9a-f]{15}[1-9a-f]"),
        secs in 0i64..4_102_444_800,
        nanos in 0u32..1_000_000_000,
        extensions in prop::collection::btree_map("[a-zA-Z_-]{1,12}", json_value(), 0..5),
    ) {
        let mut e = examples::sample_envelope(EventType::ALL[index]);
        e.tenant_id = tenant;
        e.subject = subject;
        e.span_id = span;
        e.occurred_at = Utc.timestamp_opt(secs, nanos).single().unwrap_or_default();
        for (k, v) in extensions {
            if !FIELD_NAMES.contains(&k.as_str()) {
                e.extensions.insert(k, v);
            }
        }
        prop_assert_eq!(Envelope::decode(&e.encode()).ok(), Some(e.clone()));
        let ce = serde_json::to_vec(&to_cloudevent(&e)).unwrap_or_default();
        prop_assert_eq!(from_cloudevent(&ce).ok(), Some(e.clone()));
        prop_assert_eq!(Envelope::decode_with_content_type(&ce, None).ok(), Some(e));
    }
}

#[test]
fn null_optional_fields_read_as_absent() {
    let mut v = common::sample_json(EventType::SecretRotated);
    v["subject"] = Value::Null;
    v["spanId"] = Value::Null;
    v["causationId"] = Value::Null;
    let e = Envelope::decode(&serde_json::to_vec(&v).unwrap_or_default())
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!((e.subject, e.span_id, e.causation_id), (None, None, None));
    v["tenantId"] = json!(null);
    assert_eq!(common::errors_of(&v), vec!["tenantId: required"]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn cloudevents_survive_the_trip_through_fleet(
        index in 0..EventType::ALL.len(),
        attributes in prop::collection::btree_map(
            "[a-z0-9]{1,20}",
            prop_oneof![".{0,16}".prop_map(Value::from), any::<bool>().prop_map(Value::from), any::<i64>().prop_map(Value::from)],
            0..5,
        ),
    ) {
        let mut ce = to_cloudevent(&examples::sample_envelope(EventType::ALL[index]));
        let reserved = ce.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
        for (k, v) in attributes {
            if !reserved.contains(&k) && k != "fleetextensions" {
                ce[k] = v;
            }
        }
        let e = from_cloudevent(&serde_json::to_vec(&ce).unwrap_or_default());
        prop_assert!(e.is_ok(), "{:?}", e);
        let back = e.map(|e| to_cloudevent(&e)).unwrap_or_default();
        prop_assert_eq!(back, ce);
    }
}
