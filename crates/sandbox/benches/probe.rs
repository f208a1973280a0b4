//! Probing 1,000 sandbox readiness endpoints with bounded concurrency (one health window).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fleet_cloud::{HealthProber, PlatformKind, ProbeConfig, Scope, ServiceSpec};
use fleet_sandbox::{Drift, Sandbox, SandboxConfig};

const SERVICES: usize = 1_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let (sandbox, urls) = rt.block_on(async {
        let sandbox = Sandbox::start(SandboxConfig::default())
            .await
            .expect("sandbox");
        let scope = Scope::new("bench", "prod");
        for i in 0..SERVICES {
            let platform = PlatformKind::ALL[i % 4];
            let spec = ServiceSpec::new(format!("svc-{i:04}"), "prod", platform, "reg/app:1", 2);
            sandbox
                .inject_drift(&scope, Drift::Extra { spec })
                .expect("service");
        }
        let observed = sandbox.computes().list_all(&scope).await.expect("list");
        let urls: Vec<String> = observed
            .into_iter()
            .filter_map(|s| s.endpoints.readiness)
            .collect();
        (sandbox, urls)
    });
    assert_eq!(urls.len(), SERVICES);
    let prober = HealthProber::new(ProbeConfig {
        timeout: Duration::from_secs(5),
        ..ProbeConfig::default()
    })
    .expect("prober");
    let mut group = c.benchmark_group("probe");
    group.sample_size(10);
    for concurrency in [16, 64] {
        group.bench_with_input(
            BenchmarkId::new("readiness_1000_endpoints", concurrency),
            &concurrency,
            |b, &n| {
                b.iter(|| {
                    let results = rt.block_on(prober.probe_many(&urls, n));
                    assert!(results.iter().all(|r| r.is_healthy()));
                    black_box(results)
                })
            },
        );
    }
    group.finish();
    drop(sandbox);
}

criterion_group!(benches, bench);
criterion_main!(benches);
