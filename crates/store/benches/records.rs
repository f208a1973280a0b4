//! Record throughput at inventory scale: 100,000 `RuntimeService` documents written in one unit
//! of work (a first inventory pass), listed back as typed records (every later pass), and 1,000
//! of them updated under their versions (a steady-state pass). SQLite always; PostgreSQL too when
//! `FLEET_BENCH_POSTGRES_URL` names a server (each measurement in a throw-away schema).

use std::collections::BTreeMap;
use std::hint::black_box;

use chrono::Utc;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use fleet_store::records::{
    ObservedState, PlatformKind, RuntimeService, ServiceEndpoints, ServiceStatus,
};
use fleet_store::{Expect, StoreExt, UnitOfWork};

const RECORDS: usize = 100_000;

fn service(i: usize, replicas: u32) -> RuntimeService {
    let now = Utc::now();
    RuntimeService {
        id: format!("svc-{i:06}"),
        tenant_id: "t1".into(),
        environment_id: "env-1".into(),
        name: format!("svc-{i:06}"),
        platform: PlatformKind::ContainerApps,
        resource_id: Some(format!(
            "/subscriptions/t1/resourceGroups/env-1/providers/Microsoft.App/containerApps/svc-{i:06}"
        )),
        image: format!("registry.example/app-{}:1.{}", i % 50, i % 7),
        replicas,
        config_version: Some(3),
        status: ServiceStatus::Running,
        endpoints: ServiceEndpoints {
            url: None,
            liveness: Some(format!("http://127.0.0.1:1/svc/t1/env-1/svc-{i:06}/live")),
            readiness: Some(format!("http://127.0.0.1:1/svc/t1/env-1/svc-{i:06}/ready")),
            dependencies: BTreeMap::new(),
        },
        observed: Some(ObservedState {
            image: format!("registry.example/app-{}:1.{}", i % 50, i % 7),
            replicas,
            ready_replicas: replicas,
            config_version: Some(3),
            revision: Some("4".into()),
            provisioning_state: Some("Succeeded".into()),
            observed_at: now,
        }),
        labels: BTreeMap::new(),
        updated_at: now,
    }
}

fn insert_all(services: &[RuntimeService]) -> UnitOfWork {
    let mut unit = UnitOfWork::new();
    for s in services {
        unit.put(s, Expect::Absent)
            .unwrap_or_else(|e| panic!("put: {e}"));
    }
    unit
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    let services: Vec<RuntimeService> = (0..RECORDS).map(|i| service(i, 2)).collect();
    let open = |name: &str| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let url = format!("sqlite://{}", dir.path().join(name).display());
        let store = rt
            .block_on(fleet_store::open(&url))
            .unwrap_or_else(|e| panic!("store: {e}"));
        (dir, store)
    };

    let mut g = c.benchmark_group("store_records_100k_sqlite");
    g.sample_size(10);
    g.bench_function("put_100k_one_unit", |b| {
        b.iter_batched(
            || open("put.db"),
            |(dir, store)| {
                let unit = insert_all(&services);
                rt.block_on(store.commit(unit))
                    .unwrap_or_else(|e| panic!("commit: {e}"));
                drop(store);
                drop(dir);
            },
            BatchSize::PerIteration,
        )
    });

    let (_dir, store) = open("list.db");
    rt.block_on(store.commit(insert_all(&services)))
        .unwrap_or_else(|e| panic!("seed: {e}"));
    g.bench_function("list_100k_typed", |b| {
        b.iter(|| {
            let listed = rt
                .block_on(store.list::<RuntimeService>("t1", Some("env-1")))
                .unwrap_or_else(|e| panic!("list: {e}"));
            assert_eq!(listed.len(), RECORDS);
            black_box(listed)
        })
    });
    g.bench_function("list_100k_raw", |b| {
        b.iter(|| {
            let listed = rt
                .block_on(store.list_raw(
                    fleet_store::RecordKind::Service,
                    Some("t1"),
                    Some("env-1"),
                ))
                .unwrap_or_else(|e| panic!("list: {e}"));
            assert_eq!(listed.len(), RECORDS);
            black_box(listed)
        })
    });
    let mut held = rt
        .block_on(store.list::<RuntimeService>("t1", Some("env-1")))
        .unwrap_or_else(|e| panic!("list: {e}"));
    g.bench_function("update_1k_of_100k_versioned", |b| {
        b.iter(|| {
            let mut unit = UnitOfWork::new();
            for v in held.iter_mut().take(RECORDS / 100) {
                v.record.replicas += 1;
                unit.put(&v.record, Expect::Version(v.version))
                    .unwrap_or_else(|e| panic!("put: {e}"));
                v.version += 1;
            }
            rt.block_on(store.commit(unit))
                .unwrap_or_else(|e| panic!("commit: {e}"));
        })
    });
    g.finish();
    if let Ok(url) = std::env::var("FLEET_BENCH_POSTGRES_URL") {
        postgres(c, &rt, &url, &services);
    }
}

fn postgres(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    url: &str,
    services: &[RuntimeService],
) {
    use fleet_store::{PostgresOptions, PostgresStore, Store};
    let connect = || {
        let mut options =
            PostgresOptions::from_url(url).unwrap_or_else(|e| panic!("postgres url: {e}"));
        options.schema = format!("fleet_bench_{}", uuid::Uuid::new_v4().simple());
        rt.block_on(async {
            let store = PostgresStore::connect(options).await?;
            store.migrate().await?;
            Ok::<_, fleet_store::StoreError>(store)
        })
        .unwrap_or_else(|e| panic!("postgres: {e}"))
    };
    let mut g = c.benchmark_group("store_records_100k_postgres");
    g.sample_size(10);
    // Schemas are dropped after the measurement, not inside it.
    let mut written = Vec::new();
    g.bench_function("put_100k_one_unit", |b| {
        b.iter_batched(
            connect,
            |store| {
                rt.block_on(store.commit(insert_all(services)))
                    .unwrap_or_else(|e| panic!("commit: {e}"));
                written.push(store);
            },
            BatchSize::PerIteration,
        )
    });
    for store in written {
        rt.block_on(store.drop_schema())
            .unwrap_or_else(|e| panic!("drop schema: {e}"));
    }
    let store = connect();
    rt.block_on(store.commit(insert_all(services)))
        .unwrap_or_else(|e| panic!("seed: {e}"));
    g.bench_function("list_100k_typed", |b| {
        b.iter(|| {
            let listed = rt
                .block_on(store.list::<RuntimeService>("t1", Some("env-1")))
                .unwrap_or_else(|e| panic!("list: {e}"));
            assert_eq!(listed.len(), RECORDS);
            black_box(listed)
        })
    });
    g.finish();
    rt.block_on(store.drop_schema())
        .unwrap_or_else(|e| panic!("drop schema: {e}"));
}

criterion_group!(benches, bench);
criterion_main!(benches);
