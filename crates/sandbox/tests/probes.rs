//! Real HTTP probes against the sandbox's endpoints: healthy, converging, unhealthy under
//! faults, crash-looping, timeout and retry.

mod common;

use std::time::Duration;

use common::{scope, spec, world};
use fleet_cloud::{HealthProber, ObservedService, PlatformKind, ProbeConfig, ProbeStatus};
use fleet_sandbox::{Drift, HealthFaults};

fn prober(timeout_ms: u64) -> HealthProber {
    HealthProber::new(ProbeConfig {
        timeout: Duration::from_millis(timeout_ms),
        attempts: 3,
        retry_delay: Duration::from_millis(10),
    })
    .unwrap()
}

fn urls(s: &ObservedService) -> (String, String) {
    (
        s.endpoints.liveness.clone().unwrap(),
        s.endpoints.readiness.clone().unwrap(),
    )
}

#[tokio::test]
async fn readiness_follows_the_rollout() {
    let w = world().await;
    let aca = w.sandbox.compute(PlatformKind::ContainerApps);
    aca.apply(
        &scope(),
        &spec("orders", PlatformKind::ContainerApps, "reg/orders:1", 2),
    )
    .await
    .unwrap();
    let svc = aca.get(&scope(), "orders").await.unwrap();
    let (live, ready) = urls(&svc);
    assert!(live.starts_with(w.sandbox.base_url()));
    let p = prober(2000);

    assert_eq!(p.probe(&live).await.status, ProbeStatus::Healthy);
    let converging = p.probe(&ready).await;
    assert_eq!(
        (
            converging.status,
            converging.http_status,
            converging.attempts
        ),
        (ProbeStatus::Unhealthy, Some(503), 3)
    );

    w.advance(45);
    let ready_now = p.probe(&ready).await;
    assert_eq!(
        (ready_now.status, ready_now.attempts),
        (ProbeStatus::Healthy, 1)
    );

    // A scale keeps the ready replicas serving: readiness stays up.
    aca.scale(&scope(), "orders", 4).await.unwrap();
    assert!(p.probe(&ready).await.is_healthy());
}

#[tokio::test]
async fn a_broken_image_fails_liveness_and_readiness() {
    let w = world().await;
    let aks = w.sandbox.compute(PlatformKind::Aks);
    aks.apply(
        &scope(),
        &spec("catalog", PlatformKind::Aks, "reg/catalog:broken", 1),
    )
    .await
    .unwrap();
    w.advance(3600);
    let (live, ready) = urls(&aks.get(&scope(), "catalog").await.unwrap());
    let p = prober(2000);
    assert_eq!(p.probe(&live).await.status, ProbeStatus::Unhealthy);
    assert_eq!(p.probe(&ready).await.status, ProbeStatus::Unhealthy);
}

#[tokio::test]
async fn injected_health_faults_drive_the_endpoints() {
    let w = world().await;
    let fx = w.sandbox.compute(PlatformKind::Functions);
    fx.apply(
        &scope(),
        &spec("billing", PlatformKind::Functions, "reg/billing:1", 1),
    )
    .await
    .unwrap();
    w.advance(60);
    w.sandbox
        .set_dependencies(&scope(), "billing", ["db", "queue"])
        .unwrap();
    let svc = fx.get(&scope(), "billing").await.unwrap();
    let (live, ready) = urls(&svc);
    let db = svc.endpoints.dependencies["db"].clone();
    let queue = svc.endpoints.dependencies["queue"].clone();
    let deps = format!("{}/svc/tenant-a/prod/billing/deps", w.sandbox.base_url());
    let p = prober(2000);
    let all = p.probe_many([&live, &ready, &db, &queue, &deps], 5).await;
    assert!(all.iter().all(|r| r.is_healthy()), "{all:?}");

    let faults = HealthFaults {
        dependencies_down: ["db".to_owned()].into(),
        ..HealthFaults::default()
    };
    w.sandbox
        .set_health_faults(&scope(), "billing", faults)
        .unwrap();
    let statuses: Vec<_> = p
        .probe_many([&live, &ready, &db, &queue, &deps], 5)
        .await
        .into_iter()
        .map(|r| r.status)
        .collect();
    use ProbeStatus::{Healthy, Unhealthy};
    assert_eq!(statuses, [Healthy, Healthy, Unhealthy, Healthy, Unhealthy]);

    w.sandbox
        .set_health_faults(
            &scope(),
            "billing",
            HealthFaults {
                readiness_down: true,
                ..HealthFaults::default()
            },
        )
        .unwrap();
    assert_eq!(
        (p.probe(&live).await.status, p.probe(&ready).await.status),
        (Healthy, Unhealthy)
    );
    assert_eq!(fx.get(&scope(), "billing").await.unwrap().ready_replicas, 0);

    w.sandbox
        .set_health_faults(
            &scope(),
            "billing",
            HealthFaults {
                liveness_down: true,
                ..HealthFaults::default()
            },
        )
        .unwrap();
    assert_eq!(
        (p.probe(&live).await.status, p.probe(&ready).await.status),
        (Unhealthy, Unhealthy)
    );
}

#[tokio::test]
async fn a_slow_endpoint_times_out_after_every_attempt() {
    let w = world().await;
    let app = w.sandbox.compute(PlatformKind::AppService);
    app.apply(
        &scope(),
        &spec("web", PlatformKind::AppService, "reg/web:1", 1),
    )
    .await
    .unwrap();
    w.sandbox
        .set_health_faults(
            &scope(),
            "web",
            HealthFaults {
                delay_ms: 500,
                ..HealthFaults::default()
            },
        )
        .unwrap();
    let (live, _) = urls(&app.get(&scope(), "web").await.unwrap());
    let r = prober(100).probe(&live).await;
    assert_eq!((r.status, r.attempts), (ProbeStatus::TimedOut, 3));
    let patient = prober(2000).probe(&live).await;
    assert_eq!(patient.status, ProbeStatus::Healthy);
    assert!(patient.latency >= Duration::from_millis(500));
}

#[tokio::test]
async fn a_flapping_endpoint_passes_on_a_retry() {
    let w = world().await;
    let aca = w.sandbox.compute(PlatformKind::ContainerApps);
    aca.apply(
        &scope(),
        &spec("cart", PlatformKind::ContainerApps, "reg/cart:1", 1),
    )
    .await
    .unwrap();
    w.advance(60);
    let (live, ready) = urls(&aca.get(&scope(), "cart").await.unwrap());
    w.sandbox
        .set_health_faults(
            &scope(),
            "cart",
            HealthFaults {
                fail_next: 2,
                ..HealthFaults::default()
            },
        )
        .unwrap();
    let r = prober(2000).probe(&live).await;
    assert_eq!((r.status, r.attempts), (ProbeStatus::Healthy, 3));
    w.sandbox
        .set_health_faults(
            &scope(),
            "cart",
            HealthFaults {
                fail_next: 3,
                ..HealthFaults::default()
            },
        )
        .unwrap();
    let r = prober(2000).probe(&ready).await;
    assert_eq!(
        (r.status, r.attempts, r.http_status),
        (ProbeStatus::Unhealthy, 3, Some(503))
    );
    assert!(prober(2000).probe(&ready).await.is_healthy());
}

#[tokio::test]
async fn deleted_services_answer_not_found() {
    let w = world().await;
    let aks = w.sandbox.compute(PlatformKind::Aks);
    aks.apply(&scope(), &spec("gone", PlatformKind::Aks, "reg/gone:1", 1))
        .await
        .unwrap();
    let (live, _) = urls(&aks.get(&scope(), "gone").await.unwrap());
    w.sandbox
        .inject_drift(
            &scope(),
            Drift::Delete {
                service_id: "gone".into(),
            },
        )
        .unwrap();
    let r = prober(1000).probe(&live).await;
    assert_eq!(
        (r.status, r.http_status),
        (ProbeStatus::Unhealthy, Some(404))
    );
}
