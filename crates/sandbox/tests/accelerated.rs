//! An accelerated clock lands long-running operations in real time without anyone advancing it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{scope, spec};
use fleet_cloud::{OperationStatus, PlatformKind};
use fleet_sandbox::{AcceleratedClock, Sandbox, SandboxConfig};

#[tokio::test]
async fn a_45_second_rollout_lands_in_well_under_a_second_at_1000x() {
    let clock = AcceleratedClock::new(common::start_time(), 1000.0);
    let sandbox = Sandbox::start(SandboxConfig {
        clock: Arc::new(clock),
        ..SandboxConfig::default()
    })
    .await
    .unwrap();
    let aks = sandbox.compute(PlatformKind::Aks);
    let op = aks
        .apply(
            &scope(),
            &spec("catalog", PlatformKind::Aks, "reg/catalog:1", 2),
        )
        .await
        .unwrap();
    assert_eq!(op.status, OperationStatus::InProgress);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(10);
    let done = loop {
        let polled = aks.poll(&scope(), &op).await.unwrap();
        if polled.status.is_terminal() {
            break polled;
        }
        assert!(
            Instant::now() < deadline,
            "operation still {:?} after 10 s",
            polled.status
        );
        // The control plane's own hint, scaled down by the clock factor.
        let hint = polled.poll_after.unwrap_or(Duration::from_secs(1));
        tokio::time::sleep(hint / 1000).await;
    };
    assert_eq!(done.status, OperationStatus::Succeeded);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        aks.get(&scope(), "catalog").await.unwrap().ready_replicas,
        2
    );
}
