use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;
use crate::{Record, RecordKind};

fn at() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .expect("valid time")
}

#[test]
fn service_serializes_in_camel_case_with_lowercase_platform() {
    let svc = RuntimeService {
        id: "svc-1".into(),
        tenant_id: "t1".into(),
        environment_id: "env-1".into(),
        name: "api".into(),
        platform: PlatformKind::ContainerApps,
        resource_id: None,
        image: "api:1".into(),
        replicas: 2,
        config_version: Some(3),
        status: ServiceStatus::Running,
        endpoints: ServiceEndpoints::default(),
        observed: None,
        labels: Default::default(),
        updated_at: at(),
    };
    let v = serde_json::to_value(&svc).expect("serializes");
    assert_eq!(v["tenantId"], "t1");
    assert_eq!(v["environmentId"], "env-1");
    assert_eq!(v["platform"], "containerapps");
    assert_eq!(v["configVersion"], 3);
    assert_eq!(v["status"], "running");
    assert_eq!(RuntimeService::KIND, RecordKind::Service);
    assert_eq!(svc.id(), "svc-1");
    let back: RuntimeService = serde_json::from_value(v).expect("decodes");
    assert_eq!(back, svc);
}

#[test]
fn platform_kinds_use_the_documented_names() {
    let names: Vec<_> = [
        PlatformKind::Aks,
        PlatformKind::ContainerApps,
        PlatformKind::Functions,
        PlatformKind::AppService,
    ]
    .iter()
    .map(|k| serde_json::to_value(k).expect("serializes"))
    .collect();
    assert_eq!(
        names,
        vec![
            json!("aks"),
            json!("containerapps"),
            json!("functions"),
            json!("appservice")
        ]
    );
}

#[test]
fn deployment_states_are_pascal_case() {
    assert_eq!(
        serde_json::to_value(DeploymentState::RolledBack).expect("ok"),
        json!("RolledBack")
    );
    assert!(DeploymentState::Succeeded.is_terminal());
    assert!(!DeploymentState::Failed.is_terminal());
}

#[test]
fn older_documents_without_optional_fields_still_decode() {
    let doc = json!({
        "id": "sb-1", "tenantId": "t1", "environmentId": "e1",
        "vaultUri": "https://kv.vault.azure.net", "secretName": "db-password",
        "rotationIntervalSeconds": 86400
    });
    let b: SecretBinding = serde_json::from_value(doc).expect("decodes");
    assert_eq!(b.consecutive_failures, 0);
    assert!(b.current_version.is_none());

    let doc = json!({
        "id": "p1", "tenantId": "t1", "environmentId": "e1", "serviceId": "svc-1",
        "minReplicas": 1, "maxReplicas": 5, "metric": "cpuPercent", "target": 60.0,
        "cooldownSeconds": 300
    });
    let p: ScalingPolicy = serde_json::from_value(doc).expect("decodes");
    assert!(
        p.enabled,
        "policies are enabled unless a document says otherwise"
    );
}

#[test]
fn every_record_type_reports_its_kind() {
    assert_eq!(RuntimeDeployment::KIND, RecordKind::Deployment);
    assert_eq!(HealthCheckResult::KIND, RecordKind::HealthCheck);
    assert_eq!(ScalingPolicy::KIND, RecordKind::ScalingPolicy);
    assert_eq!(RuntimeDriftFinding::KIND, RecordKind::DriftFinding);
    assert_eq!(RuntimeConfiguration::KIND, RecordKind::Configuration);
    assert_eq!(SecretBinding::KIND, RecordKind::SecretBinding);
    for kind in RecordKind::ALL {
        assert_eq!(
            kind.as_str().parse::<RecordKind>().expect("round trips"),
            kind
        );
    }
}

#[test]
fn documents_encode_decode_and_reject_what_is_not_one_json_value() {
    let doc = crate::Document::encode(&json!({"a": [1, 2], "b": "x"})).expect("encodes");
    assert_eq!(doc.as_str(), r#"{"a":[1,2],"b":"x"}"#);
    assert_eq!(
        doc.to_value().expect("JSON"),
        json!({"a": [1, 2], "b": "x"})
    );
    let typed: std::collections::BTreeMap<String, serde_json::Value> =
        doc.decode().expect("decodes");
    assert_eq!(typed["b"], "x");
    assert_eq!(crate::Document::from(json!([true])).as_str(), "[true]");
    let parsed = crate::Document::parse(" {\"k\": 1} ").expect("one value");
    assert_eq!(parsed.as_str(), " {\"k\": 1} ", "kept as written");
    for bad in ["", "{", "{\"k\": 1} {}", "nul", "[1,]"] {
        let err = crate::Document::parse(bad).expect_err(bad);
        assert!(!err.to_string().is_empty(), "{bad:?}");
    }
}

#[test]
fn written_objects_are_valid_json_with_every_string_escaped() {
    let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} é 🚀";
    let doc = crate::Document::object(|o| {
        o.string("plain", "tenant-contoso")
            .string(awkward, awkward)
            .int("min", i64::MIN)
            .int("max", i64::MAX)
            .object("empty", |_| {})
            .object("nested", |n| {
                n.string("a", "b").int("n", -1);
            });
    });
    let value = doc.to_value().expect("valid JSON");
    assert_eq!(
        value,
        json!({
            "plain": "tenant-contoso",
            awkward: awkward,
            "min": i64::MIN,
            "max": i64::MAX,
            "empty": {},
            "nested": {"a": "b", "n": -1}
        })
    );
    // Plain strings are copied as they are, so the text is the compact serializer's.
    let compact = crate::Document::object(|o| {
        o.string("k", "v").int("n", 7);
    });
    assert_eq!(compact.as_str(), r#"{"k":"v","n":7}"#);
}
