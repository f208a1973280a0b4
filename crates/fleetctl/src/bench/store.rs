//! `fleetctl bench store`: commit throughput of a store backend.
//!
//! Each unit is what the runtime commits for one handled message that emits one event: an
//! inbox row, one idempotency key and one outbox row (a ~500-byte envelope). Two figures:
//! *unbatched* (one `commit` per unit, sequentially — the latency-bound path) and *batched*
//! (`commit_many` of `--batch` units per transaction — the group-commit path). A third figure,
//! *concurrent*, has `--concurrency` tasks each calling `commit` for one unit at a time, the way
//! a worker with that many messages in flight does.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::Utc;
use fleet_store::{
    OutboxMessage, PostgresOptions, PostgresStore, SqliteOptions, SqliteStore, Store, StoreUrl,
    UnitOfWork,
};
use uuid::Uuid;

/// The worker name the benchmark writes its rows under.
const WORKER: &str = "fleetctl-bench";

/// Which backend to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// SQLite (a temporary file unless `--url` names one).
    Sqlite,
    /// PostgreSQL (`--url` required; a throw-away schema is created and dropped).
    Postgres,
}

/// Arguments of `fleetctl bench store`.
#[derive(Debug, clap::Args)]
pub struct StoreBenchArgs {
    /// Backend to measure.
    #[arg(long, value_enum, default_value = "sqlite")]
    backend: Backend,
    /// Store URL (`sqlite://file.db?synchronous=full`, `postgres://user:pw@host/db`). Without
    /// it, SQLite uses a temporary file. The benchmark's rows use worker `fleetctl-bench`.
    #[arg(long, env = "FLEET_BENCH_STORE_URL")]
    url: Option<String>,
    /// Units to commit in each of the two phases.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..))]
    units: u32,
    /// Units per `commit_many` in the batched phase.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    batch: u32,
    /// Tasks committing one unit at a time in the concurrent phase (like a worker with that
    /// many messages in flight).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// One measured phase.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Phase {
    mode: &'static str,
    units: u32,
    batch: u32,
    concurrency: u32,
    seconds: f64,
    units_per_second: f64,
}

/// Runs the benchmark.
pub fn run(args: StoreBenchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: StoreBenchArgs) -> anyhow::Result<ExitCode> {
    let target = Target::open(args.backend, args.url.as_deref()).await?;
    let measured = measure(&target.store, args.units, args.batch, args.concurrency).await;
    target.close().await?;
    let phases = measured?;
    let backend = match args.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    if args.json {
        let out = serde_json::json!({ "backend": backend, "phases": phases });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{:<10} {:<10} {:>8} {:>6} {:>6} {:>9} {:>10}",
            "backend", "mode", "units", "batch", "tasks", "seconds", "units/s"
        );
        for p in &phases {
            println!(
                "{:<10} {:<10} {:>8} {:>6} {:>6} {:>9.3} {:>10.0}",
                backend, p.mode, p.units, p.batch, p.concurrency, p.seconds, p.units_per_second
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The store being measured and how to clean up after it.
struct Target {
    store: Arc<dyn Store>,
    cleanup: Cleanup,
}

enum Cleanup {
    Nothing,
    RemoveFile(std::path::PathBuf),
    DropSchema(Arc<PostgresStore>),
}

impl Target {
    async fn open(backend: Backend, url: Option<&str>) -> anyhow::Result<Self> {
        match (backend, url) {
            (Backend::Sqlite, None) => {
                let path = std::env::temp_dir().join(format!("fleet-bench-{}.db", Uuid::new_v4()));
                let store = SqliteStore::open(SqliteOptions::file(&path)).await?;
                store.migrate().await?;
                Ok(Self {
                    store: Arc::new(store),
                    cleanup: Cleanup::RemoveFile(path),
                })
            }
            (Backend::Postgres, None) => {
                bail!("--backend postgres needs --url postgres://user:password@host:port/database")
            }
            (backend, Some(url)) => match (backend, StoreUrl::parse(url)?) {
                (Backend::Sqlite, StoreUrl::Sqlite(options)) => {
                    let store = SqliteStore::open(options).await?;
                    store.migrate().await?;
                    Ok(Self {
                        store: Arc::new(store),
                        cleanup: Cleanup::Nothing,
                    })
                }
                (Backend::Postgres, StoreUrl::Postgres(options)) => {
                    // A private schema keeps the benchmark's rows out of real data and lets it
                    // clean up completely.
                    let options = PostgresOptions {
                        schema: format!("fleet_bench_{}", Uuid::new_v4().simple()),
                        ..*options
                    };
                    let store = Arc::new(PostgresStore::connect(options).await?);
                    store.migrate().await?;
                    Ok(Self {
                        store: Arc::clone(&store) as Arc<dyn Store>,
                        cleanup: Cleanup::DropSchema(store),
                    })
                }
                (backend, _) => bail!(
                    "--url does not name a {} store (expected {})",
                    match backend {
                        Backend::Sqlite => "SQLite",
                        Backend::Postgres => "PostgreSQL",
                    },
                    match backend {
                        Backend::Sqlite => "sqlite://path or sqlite::memory:",
                        Backend::Postgres => "postgres://…",
                    }
                ),
            },
        }
    }

    async fn close(self) -> anyhow::Result<()> {
        match self.cleanup {
            Cleanup::Nothing => Ok(()),
            Cleanup::RemoveFile(path) => {
                drop(self.store);
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    // The writer thread may still be closing; a leftover temp file is harmless.
                    let _ = std::fs::remove_file(file);
                }
                Ok(())
            }
            Cleanup::DropSchema(store) => {
                drop(self.store);
                store.drop_schema().await?;
                Ok(())
            }
        }
    }
}

/// A unit as the runtime builds it for one handled message emitting one event.
fn unit(i: u32) -> UnitOfWork {
    let now = Utc::now();
    let event_id = Uuid::now_v7();
    let emitted = Uuid::now_v7();
    let body = format!(
        r#"{{"eventId":"{emitted}","eventType":"RuntimeInventoryUpdated","eventVersion":1,"source":"/workers/runtime-inventory","tenantId":"tenant-bench","environmentId":"env-bench","subject":"services/svc-{i}","occurredAt":"{}","traceId":"4bf92f3577b34da6a3ce929d0e0e4736","correlationId":"{event_id}","causationId":"{event_id}","data":{{"serviceId":"svc-{i}","replicas":3,"status":"running","image":"registry.example/app:1.2.3"}}}}"#,
        now.to_rfc3339()
    );
    let mut uow = UnitOfWork::new();
    uow.set_inbox(WORKER, event_id, now);
    uow.add_idempotency_key(
        WORKER,
        &format!("svc-{i}:{event_id}"),
        serde_json::json!({"applied": true}),
        now,
    );
    uow.add_outbox(OutboxMessage {
        id: emitted,
        worker: WORKER.to_string(),
        destination: "runtime-events".to_string(),
        body: body.into_bytes(),
        content_type: "application/json".to_string(),
        properties: fleet_store::Document::from(serde_json::json!({
            "tenantId": "tenant-bench", "environmentId": "env-bench",
            "eventType": "RuntimeInventoryUpdated", "eventVersion": 1
        })),
        created_at: now,
    });
    uow
}

async fn measure(
    store: &Arc<dyn Store>,
    units: u32,
    batch: u32,
    concurrency: u32,
) -> anyhow::Result<Vec<Phase>> {
    let phase = |mode, batch, concurrency, seconds: f64| Phase {
        mode,
        units,
        batch,
        concurrency,
        seconds,
        units_per_second: f64::from(units) / seconds.max(f64::EPSILON),
    };

    // Units are built before the clock starts: the figure is the store's, not serde's.
    let work: Vec<UnitOfWork> = (0..units).map(unit).collect();
    let start = Instant::now();
    for uow in work {
        store.commit(uow).await.context("unbatched commit failed")?;
    }
    let unbatched = phase("unbatched", 1, 1, start.elapsed().as_secs_f64());

    let mut work: Vec<UnitOfWork> = (0..units).map(unit).collect();
    let start = Instant::now();
    while !work.is_empty() {
        let rest = work.split_off(work.len().min(batch as usize));
        let chunk = std::mem::replace(&mut work, rest);
        for result in store.commit_many(chunk).await {
            result.context("batched commit failed")?;
        }
    }
    let batched = phase("batched", batch, 1, start.elapsed().as_secs_f64());

    let queue: Vec<UnitOfWork> = (0..units).map(unit).collect();
    let queue = Arc::new(std::sync::Mutex::new(queue));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (store, queue) = (Arc::clone(store), Arc::clone(&queue));
        tasks.spawn(async move {
            loop {
                let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                let Some(uow) = next else {
                    return anyhow::Ok(());
                };
                store
                    .commit(uow)
                    .await
                    .context("concurrent commit failed")?;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.context("a committing task panicked")??;
    }
    let concurrent = phase("concurrent", 1, concurrency, start.elapsed().as_secs_f64());
    Ok(vec![unbatched, batched, concurrent])
}
