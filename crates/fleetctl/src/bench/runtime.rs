//! `fleetctl bench runtime`: a no-op handler (it emits one event) through the whole worker
//! pipeline — decode, route, tenant guard, ordering key, dedupe, handle, group commit of inbox
//! row + outbox row, complete, outbox relay publish + mark dispatched.
//!
//! Two kinds of run. *Full*: SQLite store in a temporary directory and the emulator engine behind
//! `InProcessBus` (durable, `synchronous = NORMAL`); the figure is envelopes per second from the
//! first receive until every envelope is handled and every outbox row is dispatched. *Runtime
//! CPU*: the same worker over in-memory fakes of the store and the bus (`fleet-testkit`), so
//! nearly all CPU time is the runtime's own; the figure is process CPU time (user + system,
//! from `/proc/self/stat`) divided by the envelopes handled. The fakes' own hash-map work is
//! included, so it is an upper bound of the runtime's cost per envelope. The in-memory run is
//! made twice: on the multi-threaded async runtime the workers use, and on a single-threaded
//! one, whose CPU time is the per-message work without thread wake-ups and work stealing.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use fleet_bus::{Bus, Message};
use fleet_emulator::{
    CorrelationFilter, Emulator, EmulatorOptions, Filter, InProcessBus, Rule, SubscriptionConfig,
    SystemClock, TopicConfig, Topology,
};
use fleet_envelope::EventType;
use fleet_envelope::examples::{sample_envelope, sample_payload};
use fleet_runtime::{
    HandlerContext, HandlerResult, Outcome, RuntimeConfig, Worker, WorkerDefinition, WorkerStats,
};
use fleet_store::{Store, TenantBinding};
use fleet_testkit::{MemoryBus, MemoryStore, envelope_message};

const WORKER: &str = "bench-worker";
const TOPIC: &str = "fleet-events";
const INPUT: EventType = EventType::HealthCheckCompleted;
const OUTPUT: EventType = EventType::ScalingPolicyApplied;
// Distinct ordering keys, as with a fleet of services; one key would serialize everything.
const SUBJECTS: u64 = 1024;
// Linux reports /proc CPU times in USER_HZ ticks, fixed at 100 by the kernel ABI.
const USER_HZ: f64 = 100.0;

/// Arguments of `fleetctl bench runtime`.
#[derive(Debug, clap::Args)]
pub struct RuntimeBenchArgs {
    /// Envelopes to push through each run.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    messages: u64,
    /// The worker's in-flight bound (FLEET_MAX_IN_FLIGHT).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    in_flight: u64,
    /// Repeat the in-memory runs this many times and report the run with the median CPU time
    /// (and the single-threaded minimum): CPU figures on a shared machine vary between runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    repeat: u64,
    /// Run only the full run, or only the in-memory runs (both runtimes).
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// Which run `--only` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    /// SQLite store + emulator engine.
    Full,
    /// In-memory store and bus (the runtime's own CPU).
    Runtime,
}

/// The figures.
#[derive(Debug, serde::Serialize)]
struct Report {
    messages: u64,
    in_flight: u64,
    /// Full pipeline on SQLite + emulator engine.
    seconds: f64,
    envelopes_per_sec: f64,
    /// Process CPU per envelope in the full run (runtime + SQLite + emulator engine).
    cpu_us_per_envelope_full: f64,
    /// Runtime-only run over in-memory fakes.
    fake_seconds: f64,
    fake_envelopes_per_sec: f64,
    /// Process CPU per envelope with in-memory fakes: the runtime's own cost (upper bound).
    cpu_us_per_envelope_runtime: f64,
    /// The in-memory run on a single-threaded async runtime.
    single_thread_envelopes_per_sec: f64,
    /// Process CPU per envelope of that run: the per-message work without I/O or thread
    /// hand-offs (the in-memory fakes included, so an upper bound).
    cpu_us_per_envelope_single_thread: f64,
    /// The lowest single-threaded figure of the repeats.
    cpu_us_per_envelope_single_thread_min: f64,
    /// The user-mode part of `cpu_us_per_envelope_single_thread`. The rest is kernel time,
    /// which in this run (no I/O) is mostly page faults as the in-memory fakes grow.
    user_us_per_envelope_single_thread: f64,
    /// How many times the in-memory runs were repeated (the figures above are the medians).
    repeat: u64,
}

/// Runs the benchmark.
pub fn run(args: RuntimeBenchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let skipped = || Measured {
        seconds: f64::NAN,
        cpu_seconds: f64::NAN,
        user_seconds: f64::NAN,
    };
    let full = if args.only == Some(Only::Runtime) {
        skipped()
    } else {
        let dir = tempfile_dir()?;
        let full = runtime.block_on(full_run(&args, &dir));
        let _ = std::fs::remove_dir_all(&dir);
        full?
    };
    let (fake, single, single_min) = if args.only == Some(Only::Full) {
        (skipped(), skipped(), skipped())
    } else {
        // The same run on one thread too: no cross-thread wake-ups or work stealing, so the
        // CPU time is the per-message work alone.
        let one_thread = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the single-threaded async runtime")?;
        let mut fakes = Vec::new();
        let mut singles = Vec::new();
        for i in 0..args.repeat {
            if args.repeat > 1 && !args.json {
                eprintln!("in-memory run {} of {}", i + 1, args.repeat);
            }
            fakes.push(runtime.block_on(fake_run(&args))?);
            singles.push(one_thread.block_on(fake_run(&args))?);
        }
        let single_min = singles
            .iter()
            .copied()
            .min_by(|a, b| a.cpu_seconds.total_cmp(&b.cpu_seconds))
            .unwrap_or_else(skipped);
        (median(fakes), median(singles), single_min)
    };
    let n = args.messages as f64;
    let report = Report {
        messages: args.messages,
        in_flight: args.in_flight,
        seconds: full.seconds,
        envelopes_per_sec: n / full.seconds,
        cpu_us_per_envelope_full: full.cpu_seconds / n * 1e6,
        fake_seconds: fake.seconds,
        fake_envelopes_per_sec: n / fake.seconds,
        cpu_us_per_envelope_runtime: fake.cpu_seconds / n * 1e6,
        single_thread_envelopes_per_sec: n / single.seconds,
        cpu_us_per_envelope_single_thread: single.cpu_seconds / n * 1e6,
        cpu_us_per_envelope_single_thread_min: single_min.cpu_seconds / n * 1e6,
        user_us_per_envelope_single_thread: single.user_seconds / n * 1e6,
        repeat: args.repeat,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        // A run left out with --only has no figures (null in --json).
        if args.only != Some(Only::Runtime) {
            println!(
                "runtime (SQLite store + emulator engine): {} envelopes in {:.2} s = {:.0} envelopes/s, {:.1} µs CPU each (in-flight {})",
                report.messages,
                report.seconds,
                report.envelopes_per_sec,
                report.cpu_us_per_envelope_full,
                report.in_flight
            );
        }
        if args.only != Some(Only::Full) {
            println!(
                "runtime alone (in-memory store and bus): {:.0} envelopes/s, {:.1} µs CPU per envelope",
                report.fake_envelopes_per_sec, report.cpu_us_per_envelope_runtime
            );
            let repeats = if args.repeat > 1 {
                format!(
                    " (median of {}; lowest {:.1} µs)",
                    args.repeat, report.cpu_us_per_envelope_single_thread_min
                )
            } else {
                String::new()
            };
            println!(
                "runtime alone on one thread: {:.0} envelopes/s, {:.1} µs CPU per envelope, {:.1} µs of it user{repeats}",
                report.single_thread_envelopes_per_sec,
                report.cpu_us_per_envelope_single_thread,
                report.user_us_per_envelope_single_thread
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Clone, Copy)]
struct Measured {
    seconds: f64,
    cpu_seconds: f64,
    // The user-mode part of `cpu_seconds`; the rest is the kernel's (page faults, wake-ups).
    user_seconds: f64,
}

/// The run with the median CPU time (the upper one of the middle two for an even count).
fn median(mut runs: Vec<Measured>) -> Measured {
    runs.sort_by(|a, b| a.cpu_seconds.total_cmp(&b.cpu_seconds));
    runs.get(runs.len() / 2).copied().unwrap_or(Measured {
        seconds: f64::NAN,
        cpu_seconds: f64::NAN,
        user_seconds: f64::NAN,
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "fleet-bench-runtime-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

async fn noop(env: &fleet_envelope::Envelope, ctx: &mut HandlerContext<()>) -> HandlerResult {
    ctx.emit(sample_payload(OUTPUT), env.subject.clone())?;
    Ok(Outcome::Done)
}

fn definition() -> anyhow::Result<WorkerDefinition<()>> {
    Ok(WorkerDefinition::builder(WORKER)
        .on(INPUT, |env, ctx| Box::pin(noop(env, ctx)))
        .build()?)
}

fn config(args: &RuntimeBenchArgs) -> anyhow::Result<RuntimeConfig> {
    let mut c = RuntimeConfig::new(WORKER);
    c.topic = TOPIC.into();
    c.publish_topic = TOPIC.into();
    c.max_in_flight = usize::try_from(args.in_flight)?;
    Ok(c)
}

fn inputs(n: u64) -> Vec<Message> {
    let base = sample_envelope(INPUT);
    (0..n)
        .map(|i| {
            let mut e = base
                .clone()
                .with_subject(format!("services/svc-{}", i % SUBJECTS));
            e.event_id = uuid::Uuid::new_v4();
            envelope_message(&e)
        })
        .collect()
}

async fn bind(store: &dyn Store) -> anyhow::Result<()> {
    let e = sample_envelope(INPUT);
    store
        .put_tenant_binding(&TenantBinding {
            environment_id: e.environment_id,
            tenant_id: e.tenant_id,
            targets: serde_json::json!({}),
        })
        .await?;
    Ok(())
}

fn topology() -> Topology {
    let mut sub = SubscriptionConfig::new(WORKER);
    let filter = CorrelationFilter {
        subject: Some(INPUT.as_str().into()),
        ..CorrelationFilter::default()
    };
    sub.rules.push(Rule {
        name: "input".into(),
        filter: Filter::Correlation(filter),
    });
    let mut topic = TopicConfig::new(TOPIC);
    topic.subscriptions.push(sub);
    Topology {
        namespace: "bench".into(),
        ..Topology::default()
    }
    .with_topic(topic)
}

async fn full_run(args: &RuntimeBenchArgs, dir: &std::path::Path) -> anyhow::Result<Measured> {
    let emulator = Emulator::open(
        topology(),
        dir.join("emulator"),
        Arc::new(SystemClock),
        EmulatorOptions::default(),
    )
    .await?;
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new(emulator.clone()));
    let store =
        fleet_store::open(&format!("sqlite://{}", dir.join("store.sqlite3").display())).await?;
    bind(store.as_ref()).await?;
    let sender = bus.sender(TOPIC).await?;
    for chunk in inputs(args.messages).chunks(500) {
        sender.send_batch(chunk.to_vec()).await?;
    }
    let worker = Worker::new(
        definition()?,
        config(args)?,
        store.clone(),
        bus,
        Arc::new(()),
    )
    .without_http();
    let measured = measure(worker, store, args.messages).await?;
    emulator.close().await?;
    Ok(measured)
}

async fn fake_run(args: &RuntimeBenchArgs) -> anyhow::Result<Measured> {
    let bus = MemoryBus::new();
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    bind(store.as_ref()).await?;
    for m in inputs(args.messages) {
        bus.push(m);
    }
    let worker = Worker::new(
        definition()?,
        config(args)?,
        store.clone(),
        Arc::new(bus.clone()),
        Arc::new(()),
    )
    .without_http();
    let measured = measure(worker, store, args.messages).await?;
    let completed = bus
        .counts()
        .completed
        .load(std::sync::atomic::Ordering::Relaxed);
    if completed != args.messages {
        bail!(
            "the in-memory run completed {completed} of {} envelopes",
            args.messages
        );
    }
    Ok(measured)
}

/// Runs `worker` until `n` envelopes are handled and the outbox is empty.
async fn measure(worker: Worker<()>, store: Arc<dyn Store>, n: u64) -> anyhow::Result<Measured> {
    let stats: Arc<WorkerStats> = worker.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (user_before, system_before) = process_cpu_seconds()?;
    let start = Instant::now();
    let task = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    let deadline = start + Duration::from_secs(600);
    loop {
        let s = stats.snapshot();
        if s.handled >= n && store.pending_outbox().await? == 0 {
            break;
        }
        if s.dead_lettered > 0 {
            bail!("{} envelopes were dead-lettered", s.dead_lettered);
        }
        if Instant::now() > deadline {
            bail!("only {} of {n} envelopes handled in 600 s", s.handled);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    let (user, system) = process_cpu_seconds()?;
    let user_seconds = user - user_before;
    let cpu_seconds = user_seconds + system - system_before;
    let _ = stop.send(());
    task.await.context("the worker panicked")??;
    Ok(Measured {
        seconds,
        cpu_seconds,
        user_seconds,
    })
}

/// User and system CPU time of this process so far.
fn process_cpu_seconds() -> anyhow::Result<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime is field 14 and stime field 15 of the whole line, i.e. 11 and 12 after the name.
    Ok((ticks(11) / USER_HZ, ticks(12) / USER_HZ))
}
