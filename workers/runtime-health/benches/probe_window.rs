//! One health window over 1,000 sandbox services (2,000 HTTP probes on loopback) with the
//! default bound of 64 probes in flight: it must fit well inside the 30-second window.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use fleet_cloud::{PlatformKind, Scope, ServiceSpec};
use fleet_sandbox::{ManualClock, Sandbox, SandboxConfig};
use fleet_worker_runtime_health::Settings;
use fleet_worker_runtime_health::probe::probe_services;

const SERVICES: usize = 1_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let sandbox = rt
        .block_on(Sandbox::start(SandboxConfig {
            clock: clock.clone(),
            ..SandboxConfig::default()
        }))
        .unwrap_or_else(|e| panic!("sandbox: {e}"));
    let scope = Scope::new("t1", "env-1");
    let compute = sandbox.compute(PlatformKind::ContainerApps);
    for i in 0..SERVICES {
        let spec = ServiceSpec::new(
            format!("svc-{i:04}"),
            "env-1",
            PlatformKind::ContainerApps,
            "img:1",
            1,
        );
        rt.block_on(compute.apply(&scope, &spec))
            .unwrap_or_else(|e| panic!("apply: {e}"));
    }
    clock.advance(Duration::from_secs(120));
    let observed = rt
        .block_on(compute.list(&scope))
        .unwrap_or_else(|e| panic!("list: {e}"));
    let settings = Settings::default();
    let prober = fleet_cloud::HealthProber::new(settings.probe_config())
        .unwrap_or_else(|e| panic!("prober: {e}"));
    let mut g = c.benchmark_group("health_window_1000_services");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("probe_all_concurrency_64", |b| {
        b.iter(|| {
            let results = rt.block_on(probe_services(
                &prober,
                &observed,
                settings.probe_concurrency,
            ));
            assert_eq!(results.len(), SERVICES);
            assert!(
                results
                    .iter()
                    .all(|r| r.readiness.as_ref().is_some_and(|p| p.is_healthy()))
            );
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
