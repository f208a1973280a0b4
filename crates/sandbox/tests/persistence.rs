//! The world survives a restart; the demo seed matches its desired-state directory.

mod common;

use std::sync::Arc;

use common::{scope, spec, start_time};
use fleet_cloud::{
    ComputeSet, DesiredState, HealthProber, ManifestDir, OperationStatus, PlatformKind,
    ProbeConfig, SecretValue, diff,
};
use fleet_sandbox::{ManualClock, Sandbox, SandboxConfig, write_desired_state};

async fn open(dir: &std::path::Path, clock: &ManualClock) -> Sandbox {
    Sandbox::start(SandboxConfig {
        data_dir: Some(dir.to_path_buf()),
        clock: Arc::new(clock.clone()),
        ..SandboxConfig::default()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn services_operations_and_secrets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let sandbox = open(dir.path(), &clock).await;
    let aks = sandbox.compute(PlatformKind::Aks);
    let op = aks
        .apply(
            &scope(),
            &spec("catalog", PlatformKind::Aks, "reg/catalog:7", 3),
        )
        .await
        .unwrap();
    let version = sandbox
        .vault()
        .set_secret(&scope(), "db", SecretValue::new("pw"))
        .await
        .unwrap();
    let old_base = sandbox.base_url().to_owned();
    sandbox.shutdown().await;

    clock.advance(std::time::Duration::from_secs(120));
    let sandbox = open(dir.path(), &clock).await;
    let aks = sandbox.compute(PlatformKind::Aks);
    assert_eq!(
        aks.poll(&scope(), &op).await.unwrap().status,
        OperationStatus::Succeeded
    );
    let svc = aks.get(&scope(), "catalog").await.unwrap();
    assert_eq!(
        (svc.image.as_str(), svc.replicas, svc.ready_replicas),
        ("reg/catalog:7", 3, 3)
    );
    let bundle = sandbox
        .vault()
        .get_secret(&scope(), "db", None)
        .await
        .unwrap();
    assert_eq!(
        (bundle.version.as_str(), bundle.value.expose()),
        (version.as_str(), "pw")
    );
    // Endpoints follow the new server, not the address persisted before the restart.
    let live = svc.endpoints.liveness.unwrap();
    assert!(live.starts_with(sandbox.base_url()), "{live} vs {old_base}");
    assert!(
        HealthProber::new(ProbeConfig::default())
            .unwrap()
            .probe(&live)
            .await
            .is_healthy()
    );
}

#[tokio::test]
async fn two_sandboxes_on_one_data_dir_see_each_others_changes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(start_time());
    let a = open(dir.path(), &clock).await;
    let b = open(dir.path(), &clock).await;
    let (aca_a, aca_b) = (
        a.compute(PlatformKind::ContainerApps),
        b.compute(PlatformKind::ContainerApps),
    );
    aca_a
        .apply(
            &scope(),
            &spec("orders", PlatformKind::ContainerApps, "reg/orders:1", 2),
        )
        .await
        .unwrap();
    let seen = aca_b.list(&scope()).await.unwrap();
    assert_eq!(seen.len(), 1);
    // B's endpoints are its own server's, serving the shared world.
    assert!(
        seen[0]
            .endpoints
            .liveness
            .as_deref()
            .is_some_and(|u| u.starts_with(b.base_url()))
    );

    aca_b.scale(&scope(), "orders", 5).await.unwrap();
    let version = b
        .vault()
        .set_secret(&scope(), "db", SecretValue::new("pw"))
        .await
        .unwrap();
    assert_eq!(aca_a.get(&scope(), "orders").await.unwrap().replicas, 5);
    assert_eq!(
        a.vault()
            .get_secret(&scope(), "db", None)
            .await
            .unwrap()
            .version,
        version
    );
    // An idempotent re-apply through A still knows the operation B started.
    let again = aca_a.scale(&scope(), "orders", 5).await.unwrap();
    assert!(!again.changed);
}

#[tokio::test]
async fn a_corrupt_data_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sandbox.json"), b"{not json").unwrap();
    let err = Sandbox::start(SandboxConfig {
        data_dir: Some(dir.path().to_path_buf()),
        ..SandboxConfig::default()
    })
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("sandbox.json") && err.to_string().contains("corrupt"),
        "{err}"
    );
}

#[tokio::test]
async fn the_demo_covers_every_platform_and_matches_its_desired_state() {
    let w = common::world().await;
    let specs = w.sandbox.seed_demo("tenant-a", "prod").unwrap();
    let platforms: std::collections::BTreeSet<_> = specs.iter().map(|s| s.platform).collect();
    assert_eq!(platforms.len(), PlatformKind::ALL.len());

    let dir = tempfile::tempdir().unwrap();
    write_desired_state(dir.path(), &specs).unwrap();
    let desired = ManifestDir::new(dir.path()).read(&scope()).await.unwrap();
    assert_eq!(desired, specs);

    let computes: ComputeSet = w.sandbox.computes();
    let observed = computes.list_all(&scope()).await.unwrap();
    assert!(
        diff(&desired, &observed).is_empty(),
        "{:?}",
        diff(&desired, &observed)
    );
    assert!(observed.iter().all(|s| s.ready_replicas == s.replicas));

    // Seeding again changes nothing.
    assert_eq!(w.sandbox.seed_demo("tenant-a", "prod").unwrap(), specs);
    assert_eq!(computes.list_all(&scope()).await.unwrap(), observed);

    let urls: Vec<String> = observed
        .iter()
        .flat_map(|s| {
            [s.endpoints.liveness.clone(), s.endpoints.readiness.clone()]
                .into_iter()
                .flatten()
                .chain(s.endpoints.dependencies.values().cloned())
        })
        .collect();
    let results = HealthProber::new(ProbeConfig::default())
        .unwrap()
        .probe_many(&urls, 8)
        .await;
    assert!(results.iter().all(|r| r.is_healthy()), "{results:?}");
}
