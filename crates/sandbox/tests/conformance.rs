//! The sandbox passes `fleet-cloud`'s conformance suites: compute on every platform kind, vault.

mod common;

use std::time::Duration;

use fleet_cloud::conformance::{run_compute, run_vault};
use fleet_cloud::{PlatformKind, Scope};
use futures::FutureExt;

#[tokio::test]
async fn every_platform_passes_the_compute_conformance_suite() {
    let w = common::world().await;
    let clock = w.clock.clone();
    let wait = move |d: Duration| {
        clock.advance(d);
        async {}.boxed()
    };
    for platform in PlatformKind::ALL {
        let compute = w.sandbox.compute(platform);
        let id = format!("conf-{platform}");
        run_compute(
            compute.as_ref(),
            &common::scope(),
            &Scope::new("tenant-z", "prod"),
            &id,
            &wait,
        )
        .await
        .unwrap_or_else(|e| panic!("{platform}: {e}"));
    }
}

#[tokio::test]
async fn the_vault_passes_the_vault_conformance_suite() {
    let w = common::world().await;
    let vault = w.sandbox.vault();
    run_vault(
        vault.as_ref(),
        &common::scope(),
        &Scope::new("tenant-z", "prod"),
        "conformance-secret",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}
