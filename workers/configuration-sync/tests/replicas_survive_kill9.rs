//! Two `configuration-sync-worker` processes share one subscription over AMQP (the production
//! Service Bus adapter against the emulator's listener) and one PostgreSQL store; one is killed
//! with SIGKILL while both are busy. Every published event must still have exactly one effect:
//! each configuration record moves to the published version once, each trigger yields one
//! distinct `ConfigurationSynced`, and nothing is dead-lettered.
//!
//! The services are deliberately absent from the inventory, so each event's effect (record +
//! idempotency key + `failed` sync announcement) is decided by the store alone: every replica
//! runs its own in-memory sandbox cloud, and a control-plane call would depend on which
//! replica's sandbox it reached.
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
use fleet_emulator::{
    CorrelationFilter, Emulator, EmulatorOptions, Filter, InProcessBus, Rule, SubscriptionConfig,
    SystemClock, TopicConfig, Topology,
};
use fleet_envelope::payload::ConfigurationPublished;
use fleet_envelope::{Envelope, Payload};
use fleet_store::records::RuntimeConfiguration;
use fleet_store::{Expect, Store, StoreExt, TenantBinding, UnitOfWork};
use fleet_testkit::envelope_message;
use tokio::net::TcpListener;

const IP: &str = "127.0.0.150";
const TOPIC: &str = "fleet-events";
const WORKER: &str = "configuration-sync";
const TAP: &str = "kill9-tap";
const TENANT: &str = "t-kill9";
const ENV: &str = "env-kill9";
const EVENTS: usize = 400;
const KILL_AFTER: usize = 10;
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

/// Whether the replica's `/readyz` answers 200 (it is receiving and its store answers).
async fn ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = "GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")
}

fn spawn_replica(store_url: &str, dir: &std::path::Path, n: u32, port: u16) -> Replica {
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
        .env("FLEET_MAX_IN_FLIGHT", "16")
        .env("FLEET_RELAY_INTERVAL_SECS", "1")
        .env("FLEET_SHUTDOWN_GRACE_SECS", "2")
        .env("FLEET_SANDBOX_DIR", dir.join(format!("sandbox-{n}")))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the worker binary starts");
    Replica(child)
}

fn published(i: usize) -> Envelope {
    let p = ConfigurationPublished {
        configuration_id: format!("cfg-{i:04}"),
        version: 2,
        service_ids: vec![format!("svc-{i:04}")],
        values: Some(BTreeMap::from([("LOG_LEVEL".into(), format!("v2-{i}"))])),
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
        id: format!("cfg-{i:04}"),
        tenant_id: TENANT.into(),
        environment_id: ENV.into(),
        latest_version: 1,
        values: serde_json::Map::new(),
        service_ids: vec![format!("svc-{i:04}")],
        applied: BTreeMap::new(),
        published_at: Utc::now(),
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_survive_kill9() {
    let Ok(pg) = std::env::var("FLEET_TEST_POSTGRES_URL") else {
        println!("SKIPPED (set FLEET_TEST_POSTGRES_URL)");
        return;
    };
    let schema = format!("kill9_{}", uuid::Uuid::new_v4().simple());
    let sep = if pg.contains('?') { '&' } else { '?' };
    let store_url = format!("{pg}{sep}schema={schema}");
    let store: Arc<dyn Store> = fleet_store::open(&store_url).await.expect("store opens");
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
        unit.put(&seed_record(i), Expect::Absent).expect("record");
    }
    store.commit(unit).await.expect("seed records");

    let dir = tempfile::tempdir().expect("temp dir");
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
    let mut victim = spawn_replica(&store_url, dir.path(), 1, ports[0]);
    let survivor = spawn_replica(&store_url, dir.path(), 2, ports[1]);
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
    // Kill while both replicas are busy: some events are done, most are not.
    // Kill as soon as effects appear: both replicas then hold locked, half-handled messages.
    while seen.len() < KILL_AFTER {
        assert!(started.elapsed() < DEADLINE, "no progress before the kill");
        let got = tap
            .receive(1, Duration::from_millis(100))
            .await
            .expect("the tap receives");
        for m in got {
            let env = Envelope::decode(&m.message.body).expect("emitted events are envelopes");
            seen.push((env.event_id.to_string(), env));
        }
    }
    let done = seen.len();
    assert!(
        ready(ports[0]).await,
        "the victim was still receiving when killed"
    );
    victim.0.kill().expect("SIGKILL the victim");
    let killed_at = Instant::now();
    let status = victim.0.wait().expect("the victim is reaped");
    let killed_after = done;
    println!("killed one replica after {killed_after} effects: {status}");

    while seen
        .iter()
        .map(|(id, _)| id.as_str())
        .collect::<HashSet<_>>()
        .len()
        < EVENTS
    {
        assert!(
            started.elapsed() < DEADLINE,
            "only {} of {EVENTS} events had an effect",
            seen.len()
        );
        drain_tap(tap.as_ref(), &mut seen, 256, Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    let after_kill = killed_at.elapsed();
    // Whatever a late duplicate relay would add arrives within a few relay sweeps.
    drain_tap(tap.as_ref(), &mut seen, 256, Duration::from_secs(3)).await;

    let triggers: HashMap<String, usize> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (e.event_id.to_string(), i))
        .collect();
    let mut per_trigger: HashMap<String, HashSet<String>> = HashMap::new();
    for (id, env) in &seen {
        let cause = env.causation_id.map(|c| c.to_string()).unwrap_or_default();
        per_trigger.entry(cause).or_default().insert(id.clone());
    }
    let raw = seen.len();
    for (cause, ids) in &per_trigger {
        assert!(
            triggers.contains_key(cause),
            "an effect of an unknown trigger {cause}"
        );
        assert_eq!(
            ids.len(),
            1,
            "trigger {cause} had {} distinct effects",
            ids.len()
        );
    }
    assert_eq!(per_trigger.len(), EVENTS, "every trigger had its effect");

    for i in 0..EVENTS {
        let rec = store
            .get::<RuntimeConfiguration>(TENANT, &format!("cfg-{i:04}"))
            .await
            .expect("read record")
            .expect("record exists");
        assert_eq!(rec.record.latest_version, 2, "cfg-{i:04} moved to v2");
        assert_eq!(rec.version, 2, "cfg-{i:04} was written exactly once");
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
        "{EVENTS} events, one replica killed after {killed_after}: all handled in {elapsed:?} ({after_kill:?} after the kill), \
         {raw} deliveries of {} distinct effects",
        per_trigger.len()
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
