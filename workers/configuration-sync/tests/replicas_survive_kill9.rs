//! Two `configuration-sync-worker` processes share one subscription over AMQP (the production
//! Service Bus adapter against the emulator's listener), one PostgreSQL store and one sandbox
//! cloud (a shared `FLEET_SANDBOX_DIR`); one is killed with SIGKILL while it is handling events.
//! Every published event must still have exactly one effect, and that effect is a real applied
//! configuration change:
//!
//! - each trigger yields one distinct `ConfigurationSynced`, a success (`applied`, or
//!   `unchanged` when the killed replica had already made the control-plane change but never
//!   committed it), never `failed`;
//! - each configuration record moves to the published version once and records it as applied
//!   to its service;
//! - each sandbox service carries the published configuration version, in exactly one new
//!   revision (no change applied twice);
//! - nothing is dead-lettered;
//! - the kill happened mid-handling: the replica had events in flight when it died, and at
//!   least one of them had reached the control plane (which the survivor then finds
//!   `unchanged`).
//!
//! The sandbox's simulated operation durations are scaled down (`FLEET_SANDBOX_TIME_SCALE`), so a
//! configuration change lands before the worker's first poll, one second after it is made. The
//! 200 events (one configuration and one service each) keep the shared sandbox document small:
//! every sandbox call of either replica takes its file lock and re-reads it.
//!
//! A second test pins that a malformed connection string stops the binary with exit 64 and
//! never shows the key.

#![allow(clippy::large_futures)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use fleet_amqp::{ListenerOptions, serve};
use fleet_bus::{Bus, EntityPath, PropertyValue, ReceiveOptions};
use fleet_cloud::{PlatformKind, ProvisioningState, Scope, ServiceSpec};
use fleet_emulator::{
    CorrelationFilter, Emulator, EmulatorOptions, Filter, InProcessBus, Rule, SubscriptionConfig,
    SystemClock, TopicConfig, Topology,
};
use fleet_envelope::payload::{ConfigurationPublished, ConfigurationSynced, SyncOutcome};
use fleet_envelope::{Envelope, Payload};
use fleet_sandbox::{Sandbox, SandboxConfig, Timings};
use fleet_store::records::{AppliedConfiguration, RuntimeConfiguration};
use fleet_store::{Expect, Store, StoreExt, TenantBinding, UnitOfWork};
use fleet_testkit::envelope_message;
use fleet_worker_support::testing;
use tokio::net::TcpListener;

const IP: &str = "127.0.0.150";
const TOPIC: &str = "fleet-events";
const WORKER: &str = "configuration-sync";
const TAP: &str = "kill9-tap";
const TENANT: &str = "t-kill9";
const ENV: &str = "env-kill9";
const EVENTS: usize = 200;
/// Messages each replica handles at once.
const MAX_IN_FLIGHT: usize = 16;
/// Effects seen before the kill: some events are done when the replica dies.
const KILL_AFTER: usize = 10;
/// Events the victim must be handling when it is killed.
const IN_FLIGHT_AT_KILL: i64 = 4;
/// Sandbox durations ×0.05: a configuration change lands in 750 ms, before the worker's first
/// poll (one second after the change), so each event is in flight about a second.
const TIME_SCALE: &str = "0.05";
const DEADLINE: Duration = Duration::from_secs(180);

fn topology() -> Topology {
    let mut worker = SubscriptionConfig::new(WORKER);
    // Short locks: what the killed replica held comes back to the survivor quickly.
    worker.settings.lock_duration = Duration::from_secs(5);
    worker.rules.push(Rule {
        name: "ConfigurationPublished".into(),
        filter: Filter::Correlation(CorrelationFilter {
            subject: Some("ConfigurationPublished".into()),
            ..CorrelationFilter::default()
        }),
    });
    let mut retry = CorrelationFilter::default();
    retry.properties.insert(
        fleet_runtime::PROP_RETRY_FOR.to_owned(),
        PropertyValue::String(WORKER.into()),
    );
    worker.rules.push(Rule {
        name: "fleet-retry".into(),
        filter: Filter::Correlation(retry),
    });
    let mut tap = SubscriptionConfig::new(TAP);
    tap.rules.push(Rule {
        name: "synced".into(),
        filter: Filter::Correlation(CorrelationFilter {
            subject: Some("ConfigurationSynced".into()),
            ..CorrelationFilter::default()
        }),
    });
    let mut topic = TopicConfig::new(TOPIC);
    topic.subscriptions.push(worker);
    topic.subscriptions.push(tap);
    Topology::default().with_topic(topic)
}

/// Kills its process on drop, so a failing assertion leaves nothing running.
struct Replica(Child);

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nobody listens on right now, for a replica's health endpoint.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

/// `GET path` on a replica's HTTP port: the body when it answers 200.
async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    if !(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")) {
        return None;
    }
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// Whether the replica's `/readyz` answers 200 (it is receiving and its store answers).
async fn ready(port: u16) -> bool {
    http_get(port, "/readyz").await.is_some()
}

/// The replica's `fleet_messages_in_flight` gauge: messages its handlers are working on now.
async fn in_flight(port: u16) -> Option<i64> {
    let metrics = http_get(port, "/metrics").await?;
    metrics
        .lines()
        .find(|l| l.starts_with("fleet_messages_in_flight{") && l.contains(WORKER))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.trim().parse().ok())
}

fn spawn_replica(store_url: &str, sandbox_dir: &std::path::Path, port: u16) -> Replica {
    let cs = format!(
        "Endpoint=sb://{IP}/;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true"
    );
    let child = Command::new(env!("CARGO_BIN_EXE_configuration-sync-worker"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FLEET_STORE_URL", store_url)
        .env("FLEET_SERVICEBUS_CONNECTION", cs)
        .env("FLEET_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("FLEET_ENVIRONMENTS", ENV)
        .env("FLEET_MAX_IN_FLIGHT", MAX_IN_FLIGHT.to_string())
        .env("FLEET_RELAY_INTERVAL_SECS", "1")
        .env("FLEET_SHUTDOWN_GRACE_SECS", "2")
        .env("FLEET_SANDBOX_DIR", sandbox_dir)
        .env("FLEET_SANDBOX_TIME_SCALE", TIME_SCALE)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the worker binary starts");
    Replica(child)
}

fn configuration_id(i: usize) -> String {
    format!("cfg-{i:04}")
}

fn service_id(i: usize) -> String {
    format!("svc-{i:04}")
}

fn values(i: usize, version: u64) -> BTreeMap<String, String> {
    BTreeMap::from([("LOG_LEVEL".into(), format!("v{version}-{i}"))])
}

/// Service `i` as it runs before the test: configuration `i` at version 1, on one of the four
/// platform kinds in turn.
fn service_spec(i: usize) -> ServiceSpec {
    let mut spec = ServiceSpec::new(
        service_id(i),
        ENV,
        PlatformKind::ALL[i % PlatformKind::ALL.len()],
        "registry.local/kill9:1",
        1,
    );
    spec.configuration_id = Some(configuration_id(i));
    spec.config_version = Some(1);
    spec
}

fn published(i: usize) -> Envelope {
    let p = ConfigurationPublished {
        configuration_id: configuration_id(i),
        version: 2,
        service_ids: vec![service_id(i)],
        values: Some(values(i, 2)),
        reference: None,
    };
    Envelope::new(
        Payload::ConfigurationPublished(p),
        TENANT,
        ENV,
        "/tests/kill9",
        format!("corr-kill9-{i}"),
        format!("{:032x}", (0x00f1_ee79_u128 << 64) | i as u128),
        Utc::now(),
    )
}

fn seed_record(i: usize) -> RuntimeConfiguration {
    RuntimeConfiguration {
        id: configuration_id(i),
        tenant_id: TENANT.into(),
        environment_id: ENV.into(),
        latest_version: 1,
        values: values(i, 1)
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect(),
        service_ids: vec![service_id(i)],
        applied: BTreeMap::from([(
            service_id(i),
            AppliedConfiguration {
                version: 1,
                applied_at: Utc::now(),
            },
        )]),
        published_at: Utc::now(),
    }
}

/// Seeds the tenant binding, and per event a running service at configuration version 1: in the
/// sandbox shared with the replicas, in the store's inventory, and its configuration record.
async fn seed(store: &dyn Store, sandbox: &Sandbox, scope: &Scope) {
    store
        .put_tenant_binding(&TenantBinding {
            environment_id: ENV.into(),
            tenant_id: TENANT.into(),
            targets: serde_json::json!({}),
        })
        .await
        .expect("binding");
    let mut unit = UnitOfWork::new();
    for i in 0..EVENTS {
        let spec = service_spec(i);
        let op = sandbox
            .compute(spec.platform)
            .apply(scope, &spec)
            .await
            .expect("the sandbox creates the service");
        assert!(op.status.is_terminal(), "{} is created at once", spec.id);
        unit.put(
            &testing::service_record(TENANT, &spec, Utc::now()),
            Expect::Absent,
        )
        .expect("service record");
        unit.put(&seed_record(i), Expect::Absent).expect("record");
    }
    store.commit(unit).await.expect("seed records");
}

/// Drains the tap: (eventId, envelope) of every `ConfigurationSynced` delivered so far.
async fn drain_tap(
    tap: &dyn fleet_bus::BusReceiver,
    seen: &mut Vec<(String, Envelope)>,
    batch: usize,
    wait: Duration,
) {
    loop {
        let got = tap.receive(batch, wait).await.expect("the tap receives");
        if got.is_empty() {
            return;
        }
        let whole = got.len() == batch;
        for m in got {
            let env = Envelope::decode(&m.message.body).expect("emitted events are envelopes");
            seen.push((env.event_id.to_string(), env));
        }
        if !whole {
            return;
        }
    }
}

fn distinct(seen: &[(String, Envelope)]) -> usize {
    seen.iter()
        .map(|(id, _)| id.as_str())
        .collect::<HashSet<_>>()
        .len()
}

fn synced(env: &Envelope) -> ConfigurationSynced {
    match env.payload() {
        Ok(Payload::ConfigurationSynced(s)) => s,
        other => panic!("the tap saw {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_survive_kill9() {
    let Ok(pg) = std::env::var("FLEET_TEST_POSTGRES_URL") else {
        println!("SKIPPED (set FLEET_TEST_POSTGRES_URL)");
        return;
    };
    let began = Instant::now();
    let schema = format!("kill9_{}", uuid::Uuid::new_v4().simple());
    let sep = if pg.contains('?') { '&' } else { '?' };
    let store_url = format!("{pg}{sep}schema={schema}");
    let store: Arc<dyn Store> = fleet_store::open(&store_url).await.expect("store opens");

    let dir = tempfile::tempdir().expect("temp dir");
    let sandbox_dir = dir.path().join("sandbox");
    // The test's view of the replicas' cloud: the same data directory. Services it creates are
    // running at once (creation takes no simulated time here).
    let sandbox = Sandbox::start(SandboxConfig {
        data_dir: Some(sandbox_dir.clone()),
        timings: Timings::default().scaled(0.0),
        ..SandboxConfig::default()
    })
    .await
    .expect("the sandbox starts");
    let scope = Scope::new(TENANT, ENV);
    seed(store.as_ref(), &sandbox, &scope).await;
    let seeded = began.elapsed();

    let emulator = Emulator::open(
        topology(),
        dir.path().join("emulator"),
        Arc::new(SystemClock),
        EmulatorOptions::default(),
    )
    .await
    .expect("emulator opens");
    let backend = Arc::new(InProcessBus::new(emulator));
    let listener = TcpListener::bind((IP, 5672)).await.expect("bind 5672");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served: Arc<dyn Bus> = backend.clone();
    let server = tokio::spawn(serve(listener, served, ListenerOptions::default(), async {
        let _ = stopped.await;
    }));

    let ports = [free_port(), free_port()];
    let mut victim = spawn_replica(&store_url, &sandbox_dir, ports[0]);
    let survivor = spawn_replica(&store_url, &sandbox_dir, ports[1]);
    // Both replicas receive before anything is published, so both take a share of the work.
    let booting = Instant::now();
    for port in ports {
        while !ready(port).await {
            assert!(
                booting.elapsed() < DEADLINE,
                "replica on port {port} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    let sender = backend.sender(TOPIC).await.expect("sender");
    let events: Vec<Envelope> = (0..EVENTS).map(published).collect();
    for event in &events {
        sender.send(envelope_message(event)).await.expect("publish");
    }
    let started = Instant::now();

    let tap = backend
        .receiver(
            &EntityPath::subscription(TOPIC, TAP),
            ReceiveOptions::receive_and_delete(),
        )
        .await
        .expect("tap receiver");
    let mut seen = Vec::new();
    // Kill once some events are done and the victim is busy with several others: it then holds
    // locked, half-handled messages, most of them waiting on a change it made in the sandbox.
    let in_flight_at_kill = loop {
        assert!(
            started.elapsed() < DEADLINE,
            "never saw {KILL_AFTER} effects with {IN_FLIGHT_AT_KILL} events in flight in the victim \
             ({} effects so far)",
            seen.len()
        );
        drain_tap(tap.as_ref(), &mut seen, 64, Duration::from_millis(100)).await;
        if seen.len() < KILL_AFTER {
            continue;
        }
        match in_flight(ports[0]).await {
            Some(n) if n >= IN_FLIGHT_AT_KILL => break n,
            _ => {}
        }
    };
    let done_at_kill = distinct(&seen);
    victim.0.kill().expect("SIGKILL the victim");
    let killed_at = Instant::now();
    let status = victim.0.wait().expect("the victim is reaped");
    println!(
        "killed one replica after {done_at_kill} effects, {in_flight_at_kill} events in flight in it: {status}"
    );

    while distinct(&seen) < EVENTS {
        assert!(
            started.elapsed() < DEADLINE,
            "only {} of {EVENTS} events had an effect",
            distinct(&seen)
        );
        drain_tap(tap.as_ref(), &mut seen, 256, Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    let after_kill = killed_at.elapsed();
    // Whatever a late duplicate relay would add arrives within a few relay sweeps.
    drain_tap(tap.as_ref(), &mut seen, 256, Duration::from_secs(3)).await;

    // One distinct, successful `ConfigurationSynced` per trigger, describing that trigger.
    let triggers: HashMap<String, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id.to_string(), i))
        .collect();
    let mut per_trigger: HashMap<String, HashMap<String, ConfigurationSynced>> = HashMap::new();
    for (id, env) in &seen {
        let cause = env.causation_id.map(|c| c.to_string()).unwrap_or_default();
        per_trigger
            .entry(cause)
            .or_default()
            .insert(id.clone(), synced(env));
    }
    let raw = seen.len();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (cause, effects) in &per_trigger {
        let Some(&i) = triggers.get(cause) else {
            panic!("an effect of an unknown trigger {cause}");
        };
        assert_eq!(
            effects.len(),
            1,
            "trigger {cause} had {} distinct effects",
            effects.len()
        );
        let s = effects.values().next().expect("one effect");
        assert_eq!(
            (
                s.configuration_id.as_str(),
                s.version,
                s.service_id.as_str()
            ),
            (configuration_id(i).as_str(), 2, service_id(i).as_str()),
            "the effect of event {i} describes it"
        );
        assert!(
            matches!(s.outcome, SyncOutcome::Applied | SyncOutcome::Unchanged),
            "event {i} did not sync: {s:?}"
        );
        assert_eq!(s.error, None, "event {i}");
        assert_eq!(s.previous_version, Some(1), "event {i}");
        assert_eq!(
            s.restart_required,
            s.outcome == SyncOutcome::Applied,
            "event {i}"
        );
        *outcomes.entry(format!("{:?}", s.outcome)).or_default() += 1;
    }
    assert_eq!(per_trigger.len(), EVENTS, "every trigger had its effect");
    // `unchanged` means the change was already in the sandbox when the survivor handled the
    // event: only an attempt that made it and never committed explains that — the victim's.
    let unchanged = outcomes.get("Unchanged").copied().unwrap_or_default();
    assert!(
        unchanged >= 1,
        "no event the victim was handling had reached the control plane: {outcomes:?}"
    );

    // Each record is at the published version, written exactly once, applied to its service.
    for i in 0..EVENTS {
        let rec = store
            .get::<RuntimeConfiguration>(TENANT, &configuration_id(i))
            .await
            .expect("read record")
            .expect("record exists");
        assert_eq!(rec.record.latest_version, 2, "cfg-{i:04} moved to v2");
        assert_eq!(rec.version, 2, "cfg-{i:04} was written exactly once");
        assert_eq!(
            rec.record.applied.get(&service_id(i)).map(|a| a.version),
            Some(2),
            "cfg-{i:04} records v2 as applied to its service"
        );
    }

    // Each live service runs the published version, in one new revision, settled and ready.
    for i in 0..EVENTS {
        let spec = service_spec(i);
        let live = sandbox
            .compute(spec.platform)
            .get(&scope, &spec.id)
            .await
            .expect("the service is live in the sandbox");
        assert_eq!(
            (live.configuration_id.as_deref(), live.config_version),
            (Some(configuration_id(i).as_str()), Some(2)),
            "{} carries the published version",
            spec.id
        );
        assert_eq!(
            live.generation, 2,
            "{}: exactly one new revision after its creation",
            spec.id
        );
        assert_eq!(
            live.provisioning_state,
            ProvisioningState::Succeeded,
            "{}",
            spec.id
        );
        assert_eq!(live.ready_replicas, live.replicas, "{}", spec.id);
    }

    for sub in [WORKER, TAP] {
        let dlq = backend
            .receiver(
                &EntityPath::subscription(TOPIC, sub).dead_letter(),
                ReceiveOptions::receive_and_delete(),
            )
            .await
            .expect("dead-letter receiver");
        let dead = dlq
            .receive(10, Duration::from_millis(200))
            .await
            .expect("dead-letter receive");
        assert!(
            dead.is_empty(),
            "{sub} dead-lettered {} messages",
            dead.len()
        );
    }
    println!(
        "{EVENTS} events (seeded in {seeded:?}), one replica killed after {done_at_kill} effects with \
         {in_flight_at_kill} in flight: all handled in {elapsed:?} ({after_kill:?} after the kill), \
         {raw} deliveries of {} distinct effects, outcomes {outcomes:?}, total {:?}",
        per_trigger.len(),
        began.elapsed()
    );

    drop(survivor);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}

#[test]
fn a_bad_connection_string_stops_the_binary_with_64_without_showing_it() {
    let secret = "c2VjcmV0LWtleS1kby1ub3Qtc2hvdw==";
    use std::io::Read;
    let out = Command::new(env!("CARGO_BIN_EXE_configuration-sync-worker"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FLEET_STORE_URL", "sqlite::memory:")
        .env("FLEET_HTTP_ADDR", "127.0.0.1:0")
        .env(
            "FLEET_SERVICEBUS_CONNECTION",
            format!("Endpoint=http://nowhere/;SharedAccessKeyName=k;SharedAccessKey={secret}"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the worker binary runs");
    let mut replica = Replica(out);
    // A binary that ignored the variable would keep running: bound the wait.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = replica.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker did not stop on a bad connection string"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = String::new();
    for pipe in [
        replica
            .0
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        replica
            .0
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        let _ = pipe.read_to_string(&mut text);
    }
    assert_eq!(status.code(), Some(64), "{text}");
    assert!(text.contains("FLEET_SERVICEBUS_CONNECTION"), "{text}");
    assert!(!text.contains(secret), "the key leaked: {text}");
}
