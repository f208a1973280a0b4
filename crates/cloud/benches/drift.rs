//! Drift comparison of 100,000 services (1% drifted, 0.1% missing, 0.1% extra).

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fleet_cloud::{
    ObservedService, PlatformKind, ProvisioningState, ServiceEndpoints, ServiceSpec, diff,
};

const SERVICES: usize = 100_000;

fn fleet() -> (Vec<ServiceSpec>, Vec<ObservedService>) {
    let mut desired = Vec::with_capacity(SERVICES);
    let mut observed = Vec::with_capacity(SERVICES);
    for i in 0..SERVICES {
        let platform = PlatformKind::ALL[i % 4];
        let spec = ServiceSpec::new(
            format!("svc-{i:06}"),
            "prod",
            platform,
            format!("reg.io/app-{}:1.0.{}", i % 50, i % 7),
            2,
        );
        let mut live = ObservedService {
            id: spec.id.clone(),
            environment_id: spec.environment_id.clone(),
            platform,
            resource_id: format!("/subscriptions/s/resourceGroups/rg/providers/x/{}", spec.id),
            image: spec.image.clone(),
            replicas: spec.replicas,
            ready_replicas: spec.replicas,
            configuration_id: None,
            config_version: None,
            secret_versions: BTreeMap::new(),
            endpoints: ServiceEndpoints::default(),
            provisioning_state: ProvisioningState::Succeeded,
            generation: 1,
            labels: BTreeMap::new(),
        };
        if i % 100 == 0 {
            live.image.push_str("-hotfix");
        }
        if i % 1000 == 1 {
            live.id = format!("rogue-{i:06}");
        }
        if i % 1000 != 2 {
            observed.push(live);
        }
        desired.push(spec);
    }
    (desired, observed)
}

fn bench(c: &mut Criterion) {
    let (desired, observed) = fleet();
    let mut group = c.benchmark_group("drift");
    group.sample_size(10);
    group.bench_function("diff_100k_services", |b| {
        b.iter(|| black_box(diff(black_box(&desired), black_box(&observed))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
