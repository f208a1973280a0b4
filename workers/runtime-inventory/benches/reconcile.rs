//! Inventory reconcile of 100,000 services: the pure computation (nothing changed, and
//! everything changed), a steady-state pass (list the records, reconcile, write the 1% that
//! changed) and the cold start — every service new, computed and written to SQLite in one
//! batched unit of work.

use std::collections::BTreeMap;
use std::hint::black_box;

use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fleet_cloud::{ObservedService, PlatformKind, ProvisioningState, Scope, ServiceEndpoints};
use fleet_store::{StoreExt, UnitOfWork, Versioned};
use fleet_worker_runtime_inventory::reconcile::reconcile;

const SERVICES: usize = 100_000;

fn observed(n: usize, replicas: u32) -> Vec<ObservedService> {
    (0..n)
        .map(|i| ObservedService {
            id: format!("svc-{i:06}"),
            environment_id: "env-1".into(),
            platform: PlatformKind::ContainerApps,
            resource_id: format!("/subscriptions/t1/resourceGroups/env-1/providers/Microsoft.App/containerApps/svc-{i:06}"),
            image: format!("registry.example/app-{}:1.{}", i % 50, i % 7),
            replicas,
            ready_replicas: replicas,
            configuration_id: None,
            config_version: Some(3),
            secret_versions: BTreeMap::new(),
            endpoints: ServiceEndpoints {
                liveness: Some(format!("http://127.0.0.1:1/svc/t1/env-1/svc-{i:06}/live")),
                readiness: Some(format!("http://127.0.0.1:1/svc/t1/env-1/svc-{i:06}/ready")),
                dependencies: BTreeMap::new(),
            },
            provisioning_state: ProvisioningState::Succeeded,
            generation: 4,
            labels: BTreeMap::new(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let scope = Scope::new("t1", "env-1");
    let now = Utc::now();
    let live = observed(SERVICES, 2);
    let records: Vec<Versioned<_>> = reconcile(&scope, &[], &live, now)
        .into_iter()
        .map(|ch| Versioned {
            version: 1,
            updated_at: now,
            record: ch.record,
        })
        .collect();
    let scaled = observed(SERVICES, 3);

    let mut g = c.benchmark_group("inventory_reconcile_100k");
    g.sample_size(10);
    g.bench_function("unchanged", |b| {
        b.iter(|| black_box(reconcile(&scope, &records, &live, now)).len())
    });
    g.bench_function("all_changed", |b| {
        b.iter(|| black_box(reconcile(&scope, &records, &scaled, now)).len())
    });
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => panic!("tokio runtime: {e}"),
    };
    g.bench_function("all_new_reconciled_and_written_sqlite", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
                let url = format!("sqlite://{}", dir.path().join("bench.db").display());
                let store = rt
                    .block_on(fleet_store::open(&url))
                    .unwrap_or_else(|e| panic!("store: {e}"));
                (dir, store)
            },
            |(dir, store)| {
                let changes = reconcile(&scope, &[], &live, now);
                let mut unit = UnitOfWork::new();
                for ch in &changes {
                    unit.put(&ch.record, ch.expect)
                        .unwrap_or_else(|e| panic!("put: {e}"));
                }
                rt.block_on(store.commit(unit))
                    .unwrap_or_else(|e| panic!("commit: {e}"));
                drop(dir);
            },
            BatchSize::PerIteration,
        )
    });
    // Steady state: the store already holds 100,000 services and 1% of them changed since the
    // last pass. One iteration is a whole pass: list the records, reconcile, write the changes.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let url = format!("sqlite://{}", dir.path().join("steady.db").display());
    let store = rt
        .block_on(fleet_store::open(&url))
        .unwrap_or_else(|e| panic!("store: {e}"));
    let mut seed = UnitOfWork::new();
    for ch in reconcile(&scope, &[], &live, now) {
        seed.put(&ch.record, ch.expect)
            .unwrap_or_else(|e| panic!("put: {e}"));
    }
    rt.block_on(store.commit(seed))
        .unwrap_or_else(|e| panic!("seed: {e}"));
    let mut flip = 0u32;
    g.bench_function(
        "steady_pass_1pct_changed_list_reconcile_write_sqlite",
        |b| {
            b.iter(|| {
                flip += 1;
                let mut observed = live.clone();
                for o in observed.iter_mut().take(SERVICES / 100) {
                    o.replicas = 2 + flip % 2;
                    o.ready_replicas = o.replicas;
                }
                rt.block_on(async {
                    let records = store
                        .list::<fleet_store::records::RuntimeService>("t1", Some("env-1"))
                        .await
                        .unwrap_or_else(|e| panic!("list: {e}"));
                    let changes = reconcile(&scope, &records, &observed, now);
                    assert_eq!(changes.len(), SERVICES / 100);
                    let mut unit = UnitOfWork::new();
                    for ch in &changes {
                        unit.put(&ch.record, ch.expect)
                            .unwrap_or_else(|e| panic!("put: {e}"));
                    }
                    store
                        .commit(unit)
                        .await
                        .unwrap_or_else(|e| panic!("commit: {e}"));
                })
            })
        },
    );
    // The same steady state without the store read: the reconcile over 100,000 records held in
    // memory plus the batched write of the 1% that changed.
    let mut held = rt
        .block_on(store.list::<fleet_store::records::RuntimeService>("t1", Some("env-1")))
        .unwrap_or_else(|e| panic!("list: {e}"));
    let position: std::collections::HashMap<String, usize> = held
        .iter()
        .enumerate()
        .map(|(i, v)| (v.record.id.clone(), i))
        .collect();
    g.bench_function("steady_1pct_changed_reconcile_and_write_sqlite", |b| {
        b.iter(|| {
            flip += 1;
            let mut observed = live.clone();
            for o in observed.iter_mut().take(SERVICES / 100) {
                o.replicas = 2 + flip % 2;
                o.ready_replicas = o.replicas;
            }
            let changes = reconcile(&scope, &held, &observed, now);
            assert_eq!(changes.len(), SERVICES / 100);
            let mut unit = UnitOfWork::new();
            for ch in &changes {
                unit.put(&ch.record, ch.expect)
                    .unwrap_or_else(|e| panic!("put: {e}"));
            }
            rt.block_on(store.commit(unit))
                .unwrap_or_else(|e| panic!("commit: {e}"));
            for ch in changes {
                if let Some(&i) = position.get(&ch.record.id) {
                    held[i].version += 1;
                    held[i].record = ch.record;
                }
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
