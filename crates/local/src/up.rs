//! [`up`]: the whole fleet in one process — emulator engine, sandbox cloud, store and every
//! worker — optionally driving the demo scenario and injected input, until told to stop or,
//! with `until_idle`, until no work is left.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fleet_bus::{Bus, EntityPath};
use fleet_emulator::{Emulator, EmulatorOptions};
use fleet_sandbox::{Sandbox, SandboxConfig};
use fleet_store::Store;
use fleet_worker_support::Environments;
use fleet_worker_support::local::LocalCloud;
use tokio::sync::watch;

use crate::clock::FleetClock;
use crate::error::{LocalError, LocalErrorKind};
use crate::layout::{Layout, Manifest};
use crate::observe::{Flow, FlowSink, ObservedBus};
use crate::records::View;
use crate::scenario::{Driver, StepReport};
use crate::summary::{Summary, WorkerSummary};
use crate::topology::{self, TOPIC};
use crate::transport::Transport;
use crate::workers::{RunningWorker, WorkerEnv, start_all};

/// Speed of simulated time while the demo scenario runs.
pub const DEMO_SPEED: f64 = 60.0;
/// Real time without any bus activity after which an otherwise idle fleet counts as idle.
pub const DEFAULT_QUIET: Duration = Duration::from_millis(1500);
// How often the idle condition is evaluated.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// A scenario `fleetctl up` can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// One tenant, one environment, services on every platform kind, every path of the flow.
    Demo,
}

impl std::str::FromStr for Scenario {
    type Err = LocalError;

    fn from_str(s: &str) -> Result<Scenario, LocalError> {
        match s {
            "demo" => Ok(Scenario::Demo),
            other => Err(LocalError::new(
                LocalErrorKind::Input,
                format!("unknown scenario {other:?} (expected: demo)"),
            )),
        }
    }
}

/// How to run the fleet.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The scenario to drive.
    pub scenario: Option<Scenario>,
    /// Stop once no work is pending.
    pub until_idle: bool,
    /// A file of messages to inject after start.
    pub publish: Option<PathBuf>,
    /// Speed of simulated time; default 60 with a scenario, else 1.
    pub speed: Option<f64>,
    /// Remove the previous fleet's state first.
    pub reset: bool,
    /// Quiet period of the idle check.
    pub quiet: Duration,
    /// How the workers reach the engine. In-process here, so that code embedding a fleet (tests
    /// running several at once) binds no port unless it asks; `fleetctl up` defaults to AMQP.
    pub transport: Transport,
    /// Where the AMQP listener binds with [`Transport::Amqp`] (a loopback address, port 5672).
    pub listen: SocketAddr,
}

impl UpOptions {
    /// Defaults for `data_dir`: no scenario, runs until stopped.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        UpOptions {
            data_dir: data_dir.into(),
            scenario: None,
            until_idle: false,
            publish: None,
            speed: None,
            reset: false,
            quiet: DEFAULT_QUIET,
            transport: Transport::InProcess,
            listen: SocketAddr::from(([127, 0, 0, 1], 5672)),
        }
    }
}

// What driving produced: `--publish` lines the broker refused, and the scenario's steps.
type Driven = (Vec<String>, Vec<StepReport>);

/// What `up` leaves behind besides the summary: the observed flow (tests check chains on it).
pub struct UpOutcome {
    /// The end-of-run report.
    pub summary: Summary,
    /// Everything observed.
    pub flow: Arc<Flow>,
}

struct Parts {
    emulator: Emulator,
    store: Arc<dyn Store>,
    sandbox: Arc<Sandbox>,
}

async fn open_parts(layout: &Layout, clock: &FleetClock) -> Result<Parts, LocalError> {
    let topology = topology::topology()?;
    let emulator = Emulator::open(
        topology,
        layout.emulator_db(),
        Arc::new(clock.clone()),
        EmulatorOptions::default(),
    )
    .await
    .map_err(|e| LocalError::component("opening the emulator engine", e))?;
    let store = fleet_store::open(&layout.store_url())
        .await
        .map_err(|e| LocalError::component("opening the store", e))?;
    let sandbox = Sandbox::start(SandboxConfig {
        data_dir: Some(layout.sandbox_dir()),
        clock: Arc::new(clock.clone()),
        seed: 7,
        ..SandboxConfig::default()
    })
    .await
    .map_err(|e| LocalError::component("starting the sandbox cloud", e))?;
    Ok(Parts {
        emulator,
        store,
        sandbox: Arc::new(sandbox),
    })
}

/// Runs the fleet until `shutdown` completes (or, with `until_idle`, until idle) and returns
/// the summary. `sink` sees every flow event as it happens.
pub async fn up(
    options: UpOptions,
    shutdown: impl Future<Output = ()> + Send,
    sink: Option<FlowSink>,
) -> Result<UpOutcome, LocalError> {
    let started = Instant::now();
    let layout = Layout::new(&options.data_dir);
    layout.create()?;
    // Taken before anything is reset or opened, so a running fleet's files are never touched.
    let _lock = layout.lock()?;
    if options.reset {
        layout.reset()?;
    } else if options.scenario.is_some() && layout.has_state() {
        return Err(LocalError::new(
            LocalErrorKind::DataDir,
            format!(
                "data directory {} already holds a fleet; the demo starts from scratch: pass --reset to remove it",
                layout.root().display()
            ),
        ));
    }
    let speed = options.speed.unwrap_or(if options.scenario.is_some() {
        DEMO_SPEED
    } else {
        1.0
    });
    let previous = layout.read_manifest()?;
    let start = previous
        .clock
        .map_or_else(Utc::now, |at| at.max(Utc::now()));
    let clock = FleetClock::new(start, speed);
    let sim_start = clock.now();
    let ticker = clock.spawn_ticker();
    let parts = open_parts(&layout, &clock).await?;
    let topology = topology::topology()?;

    let mut specs = Vec::new();
    if options.scenario == Some(Scenario::Demo) {
        specs = crate::seed::seed_demo(
            &parts.store,
            &parts.sandbox,
            &layout.desired_dir(),
            clock.now(),
        )
        .await?;
        layout.write_manifest(&Manifest {
            environments: vec![crate::seed::ENVIRONMENT.to_owned()],
            clock: None,
        })?;
    }
    let mut manifest = layout.read_manifest()?;

    let flow = Flow::new(clock.clone(), sink);
    let wiring = crate::transport::wire(&parts.emulator, options.transport, options.listen).await?;
    let bus_for = {
        let raw_bus = wiring.bus.clone();
        let flow = flow.clone();
        Arc::new(move |who: &str| -> Arc<dyn Bus> {
            ObservedBus::new(raw_bus.clone(), who, flow.clone())
        })
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let env = WorkerEnv {
        store: parts.store.clone(),
        bus_for: bus_for.clone(),
        clock: clock.clone(),
        cloud: LocalCloud::from_sandbox(parts.sandbox.clone()),
        environments: Environments::new(manifest.environments.clone()),
        desired_dir: layout.desired_dir(),
        shutdown: stop_rx,
    };
    let (workers, missing) = start_all(&env)?;
    let routes: BTreeMap<String, Vec<String>> = workers
        .iter()
        .map(|w| {
            (
                w.name.clone(),
                topology::subscribed_types(&topology, &w.name),
            )
        })
        .collect();
    let routed: Vec<String> = routes.values().flatten().cloned().collect();

    let input_sender = bus_for("fleetctl")
        .sender(TOPIC)
        .await
        .map_err(|e| LocalError::component("opening a sender to the topic", e))?;
    let input = match &options.publish {
        Some(path) => crate::publish::read(path, &routed)?,
        None => Vec::new(),
    };
    let driver_sender = bus_for("fleetctl")
        .sender(TOPIC)
        .await
        .map_err(|e| LocalError::component("opening a sender to the topic", e))?;
    let mut driver = Driver {
        sender: driver_sender,
        flow: flow.clone(),
        sandbox: parts.sandbox.clone(),
        clock: clock.clone(),
        desired_dir: layout.desired_dir(),
        specs,
        routes,
    };
    let scenario = options.scenario;
    let drive = async {
        let refused = crate::publish::send_all(input_sender.as_ref(), input).await;
        let steps = match scenario {
            Some(Scenario::Demo) => crate::scenario::run_demo(&mut driver).await?,
            None => Vec::new(),
        };
        // With the scenario done, timers go back to real time so the fleet can fall quiet.
        clock.set_speed(1.0);
        Ok::<_, LocalError>((refused, steps))
    };

    let mut result: Option<Result<Driven, LocalError>> = None;
    {
        tokio::pin!(drive);
        tokio::pin!(shutdown);
        let mut drive_done = false;
        loop {
            tokio::select! {
                r = &mut drive, if !drive_done => {
                    drive_done = true;
                    let failed = r.is_err();
                    result = Some(r);
                    if failed { break; }
                }
                () = &mut shutdown => break,
                () = tokio::time::sleep(IDLE_POLL), if options.until_idle && drive_done => {
                    if idle(&parts, &workers, &flow, options.quiet).await? {
                        break;
                    }
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    let mut worker_errors = Vec::new();
    let mut worker_summaries = Vec::new();
    for w in workers {
        let s = w.stats.snapshot();
        worker_summaries.push(WorkerSummary {
            name: w.name.clone(),
            received: s.received,
            handled: s.handled,
            dedupe_hits: s.dedupe_hits,
            retried: s.retried,
            dead_lettered: s.dead_lettered,
            timer_runs: s.timer_runs,
        });
        match w.handle.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => worker_errors.push(format!("{}: {e}", w.name)),
            Err(e) => worker_errors.push(format!("{}: {e}", w.name)),
        }
    }
    // Every sender and receiver is gone with the workers and the driver, so the wire can close.
    drop(driver);
    drop(input_sender);
    let wire_closed = wiring.close().await;
    let simulated_secs = (clock.now() - sim_start).num_milliseconds() as f64 / 1000.0;
    manifest.clock = Some(clock.now());
    layout.write_manifest(&manifest)?;
    let mut records = BTreeMap::new();
    for view in View::ALL {
        records.insert(
            view.name().to_owned(),
            crate::records::list(&parts.store, view).await?,
        );
    }
    parts
        .emulator
        .close()
        .await
        .map_err(|e| LocalError::component("closing the emulator engine", e))?;
    ticker.abort();
    let dead_letters = crate::dlq::list(&layout.emulator_db())?;
    let (refused_input, steps) = match result {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(e),
        None => (Vec::new(), Vec::new()),
    };
    if !worker_errors.is_empty() {
        return Err(LocalError::new(
            LocalErrorKind::Component,
            format!("workers failed: {}", worker_errors.join("; ")),
        ));
    }
    wire_closed?;
    let summary = Summary {
        data_dir: layout.root().display().to_string(),
        scenario: scenario.map(|_| "demo".to_owned()),
        speed,
        wall_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        simulated_secs,
        missing_workers: missing,
        dedupe_hits: worker_summaries.iter().map(|w| w.dedupe_hits).sum(),
        workers: worker_summaries,
        events: flow.counts(),
        steps,
        refused_input,
        dead_letters,
        records,
    };
    Ok(UpOutcome { summary, flow })
}

/// No message waiting or in flight in any running worker's subscription, no outbox row
/// pending, no run in flight, and no bus activity for `quiet`.
async fn idle(
    parts: &Parts,
    workers: &[RunningWorker],
    flow: &Flow,
    quiet: Duration,
) -> Result<bool, LocalError> {
    if flow.quiet_for() < quiet {
        return Ok(false);
    }
    if workers.iter().any(|w| w.stats.snapshot().in_flight > 0) {
        return Ok(false);
    }
    let pending = parts
        .store
        .pending_outbox()
        .await
        .map_err(|e| LocalError::component("reading the outbox", e))?;
    if pending > 0 {
        return Ok(false);
    }
    for w in workers {
        let path = EntityPath::subscription(TOPIC, w.name.clone());
        let handle = parts
            .emulator
            .resolve_receiver(&path, false)
            .map_err(|e| LocalError::component(format!("resolving {path}"), e))?;
        let waiting = parts
            .emulator
            .peek(&handle, 0, 1)
            .await
            .map_err(|e| LocalError::component(format!("peeking {path}"), e))?;
        if !waiting.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}
