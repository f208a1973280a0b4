//! A valid example of every event type, with fixed ids and times: for documentation, the CLI's
//! `envelope example`, and tests in any crate.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::event_type::EventType;
use crate::payload::*;

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 31, h, m, s)
        .single()
        .unwrap_or_default()
}

/// A valid payload of `event_type`.
pub fn sample_payload(event_type: EventType) -> Payload {
    match event_type {
        EventType::RuntimeDeploymentRequested => RuntimeDeploymentRequested {
            deployment_id: "dep-7f3a".into(),
            service_id: "svc-42".into(),
            platform: Platform::Containerapps,
            image: "fleetacr.azurecr.io/orders-api:1.14.2".into(),
            replicas: 3,
            configuration_id: Some("cfg-orders".into()),
            configuration_version: Some(12),
            secret_bindings: vec!["sb-orders-db".into()],
            reason: DeploymentReason::Manual,
            requested_by: Some("release-pipeline".into()),
        }
        .into(),
        EventType::RuntimeDeploymentCompleted => RuntimeDeploymentCompleted {
            deployment_id: "dep-7f3a".into(),
            service_id: "svc-42".into(),
            platform: Platform::Containerapps,
            image: "fleetacr.azurecr.io/orders-api:1.14.2".into(),
            replicas: 3,
            outcome: DeploymentOutcome::Succeeded,
            revision: Some("orders-api--r15".into()),
            failed_step: None,
            error: None,
            started_at: at(12, 0, 0),
            completed_at: at(12, 3, 10),
        }
        .into(),
        EventType::HealthCheckCompleted => HealthCheckCompleted {
            service_id: "svc-42".into(),
            window: Window { start: at(12, 0, 0), end: at(12, 0, 30) },
            status: HealthStatus::Degraded,
            previous_status: Some(HealthStatus::Healthy),
            consecutive_failed_windows: 1,
            probes: vec![
                ProbeResult {
                    kind: ProbeKind::Liveness,
                    target: "http://orders-api/healthz".into(),
                    passed: true,
                    attempts: 1,
                    latency_ms: Some(12),
                    http_status: Some(200),
                    error: None,
                },
                ProbeResult {
                    kind: ProbeKind::Readiness,
                    target: "http://orders-api/readyz".into(),
                    passed: false,
                    attempts: 3,
                    latency_ms: Some(2000),
                    http_status: Some(503),
                    error: Some("database pool exhausted".into()),
                },
            ],
        }
        .into(),
        EventType::ScalingPolicyApplied => ScalingPolicyApplied {
            service_id: "svc-42".into(),
            policy_id: "pol-cpu".into(),
            from_replicas: 3,
            to_replicas: 5,
            reason: "CpuPercentage above 75 for 5m".into(),
            metric: Some(MetricReading { name: "CpuPercentage".into(), value: 81.5, threshold: 75.0 }),
            cooldown_until: Some(at(12, 10, 0)),
        }
        .into(),
        EventType::RuntimeDriftDetected => RuntimeDriftDetected {
            finding_id: "fnd-19".into(),
            finding_hash: "9f2c4e1b7a0d3f5e8c6b2a4d1e0f9c8b7a6d5e4f3c2b1a0918273645a1b2c3d4".into(),
            service_id: Some("svc-42".into()),
            resource_id: "/subscriptions/0000/resourceGroups/rg-prod/providers/Microsoft.App/containerApps/orders-api"
                .into(),
            kind: DriftKind::Replicas,
            desired: json!(3),
            actual: json!(1),
            desired_source: DesiredStateSource::Git,
            status: FindingStatus::Open,
            occurrences: 2,
            first_seen_at: at(11, 55, 0),
            last_seen_at: at(12, 0, 0),
        }
        .into(),
        EventType::ConfigurationPublished => ConfigurationPublished {
            configuration_id: "cfg-orders".into(),
            version: 12,
            service_ids: vec!["svc-42".into(), "svc-43".into()],
            values: Some(BTreeMap::from([
                ("FEATURE_FAST_CHECKOUT".to_owned(), "true".to_owned()),
                ("LOG_LEVEL".to_owned(), "info".to_owned()),
            ])),
            reference: None,
        }
        .into(),
        EventType::ConfigurationSynced => ConfigurationSynced {
            configuration_id: "cfg-orders".into(),
            version: 12,
            service_id: "svc-42".into(),
            outcome: SyncOutcome::Applied,
            previous_version: Some(11),
            restart_required: true,
            error: None,
        }
        .into(),
        EventType::SecretRotationRequested => SecretRotationRequested {
            secret_binding_id: "sb-orders-db".into(),
            reason: RotationReason::Scheduled,
            requested_by: None,
            grace_period_seconds: Some(3600),
        }
        .into(),
        EventType::SecretRotated => SecretRotated {
            secret_binding_id: "sb-orders-db".into(),
            vault_name: "kv-fleet-prod".into(),
            vault_secret_name: "orders-db-password".into(),
            new_version: "8d1c0e6f2b4a4f3e9a7d5c3b1e0f2a4c".into(),
            previous_version: Some("1a2b3c4d5e6f47a8b9c0d1e2f3a4b5c6".into()),
            service_ids: vec!["svc-42".into()],
            previous_version_disabled_at: Some(at(13, 0, 0)),
        }
        .into(),
        EventType::SecretRotationFailed => SecretRotationFailed {
            secret_binding_id: "sb-orders-db".into(),
            vault_secret_name: Some("orders-db-password".into()),
            attempts: 5,
            last_error: "Key Vault answered 403 Forbidden".into(),
            first_failure_at: at(11, 0, 0),
            last_failure_at: at(12, 0, 0),
        }
        .into(),
        EventType::RuntimeInventoryUpdated => RuntimeInventoryUpdated {
            service_id: "svc-42".into(),
            platform: Platform::Containerapps,
            resource_id: "/subscriptions/0000/resourceGroups/rg-prod/providers/Microsoft.App/containerApps/orders-api"
                .into(),
            change: InventoryChange::Updated,
            changed_fields: vec!["replicas".into()],
            observed: Some(ObservedRuntime {
                image: Some("fleetacr.azurecr.io/orders-api:1.14.2".into()),
                replicas: Some(5),
                revision: Some("orders-api--r15".into()),
                provisioning_state: Some("Succeeded".into()),
            }),
        }
        .into(),
    }
}

/// A valid envelope of `event_type` with fixed ids and times.
pub fn sample_envelope(event_type: EventType) -> Envelope {
    let index = EventType::ALL
        .iter()
        .position(|t| *t == event_type)
        .unwrap_or(0) as u128;
    let mut e = Envelope::new(
        sample_payload(event_type),
        "tenant-contoso",
        "env-prod-weu",
        "/workers/example",
        "corr-5b1d2c",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        at(12, 0, 0),
    )
    .with_subject("services/svc-42")
    .with_span_id("00f067aa0ba902b7");
    e.event_id = Uuid::from_u128(0x019c_1a2b_3c00_7d4e_8f00_0000_0000_0000 + index);
    e.causation_id = Some(Uuid::from_u128(0x019c_1a2b_3b00_7a1b_9c2d_3e4f_5a6b_7c8d));
    e
}
