//! Per-port fault injection (throttling with Retry-After, errors, latency, seeded
//! determinism) and drift injection seen through `list`.

mod common;

use std::time::Duration;

use common::{scope, spec, world};
use fleet_cloud::{CloudErrorKind, PlatformKind};
use fleet_sandbox::{Drift, FaultPlan, Port};

#[tokio::test]
async fn throttling_carries_retry_after_and_faults_are_per_port() {
    let w = world().await;
    w.sandbox.set_faults(
        Port::Compute(PlatformKind::Aks),
        FaultPlan {
            throttle_next: 2,
            retry_after: Duration::from_secs(12),
            ..FaultPlan::default()
        },
    );
    let aks = w.sandbox.compute(PlatformKind::Aks);
    for _ in 0..2 {
        let err = aks.list(&scope()).await.unwrap_err();
        assert!(err.is_transient());
        assert_eq!(err.retry_after(), Some(Duration::from_secs(12)));
    }
    assert!(aks.list(&scope()).await.is_ok());
    w.sandbox.set_faults(
        Port::Compute(PlatformKind::Aks),
        FaultPlan {
            error_rate: 1.0,
            ..FaultPlan::default()
        },
    );
    assert_eq!(
        aks.list(&scope()).await.unwrap_err().kind(),
        CloudErrorKind::Transient
    );
    assert!(
        w.sandbox
            .compute(PlatformKind::Functions)
            .list(&scope())
            .await
            .is_ok()
    );
    w.sandbox.clear_faults();
    assert!(aks.list(&scope()).await.is_ok());
}

#[tokio::test]
async fn injected_latency_delays_calls() {
    let w = world().await;
    w.sandbox.set_faults(
        Port::Vault,
        FaultPlan {
            latency: Duration::from_millis(150),
            ..FaultPlan::default()
        },
    );
    let started = std::time::Instant::now();
    let _ = w.sandbox.vault().list_versions(&scope(), "none").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn fault_sequences_repeat_with_the_same_seed() {
    async fn run(seed: u64) -> Vec<bool> {
        let w = common::world_with(|c| c.seed = seed).await;
        w.sandbox.set_faults(
            Port::Metrics,
            FaultPlan {
                error_rate: 0.3,
                throttle_rate: 0.2,
                ..FaultPlan::default()
            },
        );
        let aks = w.sandbox.compute(PlatformKind::Aks);
        w.sandbox.set_faults(
            Port::Compute(PlatformKind::Aks),
            FaultPlan {
                error_rate: 0.5,
                ..FaultPlan::default()
            },
        );
        let mut out = Vec::new();
        for _ in 0..32 {
            out.push(aks.list(&scope()).await.is_ok());
        }
        out
    }
    assert_eq!(run(9).await, run(9).await);
}

#[tokio::test]
async fn injected_drift_is_visible_through_list() {
    let w = world().await;
    let aca = w.sandbox.compute(PlatformKind::ContainerApps);
    for id in ["a", "b", "c"] {
        aca.apply(
            &scope(),
            &spec(id, PlatformKind::ContainerApps, "reg/app:1", 2),
        )
        .await
        .unwrap();
    }
    w.advance(60);
    let sb = &w.sandbox;
    sb.inject_drift(
        &scope(),
        Drift::Image {
            service_id: "a".into(),
            image: "reg/app:hotfix".into(),
        },
    )
    .unwrap();
    sb.inject_drift(
        &scope(),
        Drift::Replicas {
            service_id: "b".into(),
            replicas: 7,
        },
    )
    .unwrap();
    sb.inject_drift(
        &scope(),
        Drift::Config {
            service_id: "b".into(),
            configuration_id: Some("cfg".into()),
            version: Some(9),
        },
    )
    .unwrap();
    sb.inject_drift(
        &scope(),
        Drift::Delete {
            service_id: "c".into(),
        },
    )
    .unwrap();
    sb.inject_drift(
        &scope(),
        Drift::Extra {
            spec: spec("rogue", PlatformKind::ContainerApps, "reg/rogue:1", 1),
        },
    )
    .unwrap();

    let live = aca.list(&scope()).await.unwrap();
    let summary: Vec<_> = live
        .iter()
        .map(|s| {
            (
                s.id.as_str(),
                s.image.as_str(),
                s.replicas,
                s.config_version,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("a", "reg/app:hotfix", 2, None),
            ("b", "reg/app:1", 7, Some(9)),
            ("rogue", "reg/rogue:1", 1, None)
        ]
    );
    // Re-applying the desired spec repairs the drift (and is a change, not a no-op).
    let op = aca
        .apply(
            &scope(),
            &spec("a", PlatformKind::ContainerApps, "reg/app:1", 2),
        )
        .await
        .unwrap();
    assert!(op.changed);
    let err = sb
        .inject_drift(
            &scope(),
            Drift::Delete {
                service_id: "c".into(),
            },
        )
        .unwrap_err();
    assert_eq!(err.kind(), CloudErrorKind::NotFound);
}
