//! [`Harness`]: a worker's world in one process — the emulator engine behind `InProcessBus`, a
//! store, a fake clock — plus helpers to publish, inspect the dead-letter queue and the emitted
//! events, and wait on conditions.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use fleet_bus::{Bus, EntityPath, Message, PropertyValue, ReceiveOptions, ReceivedMessage};
use fleet_emulator::{
    CorrelationFilter, Emulator, EmulatorOptions, Filter, InProcessBus, Rule, SubscriptionConfig,
    TopicConfig, Topology,
};
use fleet_envelope::servicebus::{self, to_message_properties};
use fleet_envelope::{Envelope, EventType};
use fleet_runtime::{
    PROP_RETRY_FOR, RETRY_SUBJECT, RuntimeConfig, RuntimeError, Worker, WorkerDefinition,
    WorkerStats,
};
use fleet_store::{Store, TenantBinding};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::FakeClock;
use crate::error::{TestkitError, TestkitErrorKind, bus, store};

/// The topic every harness worker subscribes to and publishes on.
pub const TOPIC: &str = "fleet-events";
/// A subscription receiving everything, for inspecting emitted events.
pub const OBSERVER: &str = "observer";
/// Env var naming the PostgreSQL server for tests that share state between replicas.
pub const ENV_TEST_POSTGRES_URL: &str = "FLEET_TEST_POSTGRES_URL";

/// One worker's world, in-process.
pub struct Harness {
    /// Drives timers, retry delays, locks and scheduled messages.
    pub clock: FakeClock,
    /// The bus port over the emulator engine.
    pub bus: Arc<InProcessBus>,
    /// The store workers and assertions use.
    pub store: Arc<dyn Store>,
    /// Name of the worker under test (also its subscription).
    pub worker: String,
    // Holds the emulator's data file (and a SQLite store's) for the harness's lifetime.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

/// A worker running in a task.
pub struct RunningWorker {
    /// Its live counters.
    pub stats: Arc<WorkerStats>,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), RuntimeError>>,
}

impl std::fmt::Debug for RunningWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningWorker")
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl RunningWorker {
    /// Starts the shutdown sequence without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits (up to `timeout`) for `run` to return.
    pub async fn stop(mut self, timeout: Duration) -> Result<(), TestkitError> {
        self.begin_shutdown();
        match tokio::time::timeout(timeout, self.handle).await {
            Err(_) => Err(TestkitError::new(
                TestkitErrorKind::Timeout,
                "the worker did not stop in time",
            )),
            Ok(Err(join)) => Err(TestkitError::new(
                TestkitErrorKind::Worker,
                "the worker task panicked",
            )
            .with_source(join)),
            Ok(Ok(Err(e))) => {
                Err(TestkitError::new(TestkitErrorKind::Worker, "the worker failed").with_source(e))
            }
            Ok(Ok(Ok(()))) => Ok(()),
        }
    }

    /// Kills the worker at whatever point it is: no drain, no settle, no flush.
    pub fn crash(self) {
        self.handle.abort();
    }
}

impl Harness {
    /// A harness whose store is SQLite in a temporary directory.
    pub async fn sqlite(worker: &str, subscribed: &[EventType]) -> Result<Harness, TestkitError> {
        let dir = tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("store.sqlite3").display());
        let store = fleet_store::open(&url)
            .await
            .map_err(store("opening the SQLite store"))?;
        Harness::build(worker, subscribed, store, dir).await
    }

    /// A harness on PostgreSQL in a fresh schema, or `None` (after printing
    /// `SKIPPED (set FLEET_TEST_POSTGRES_URL)`) when the variable is unset.
    pub async fn postgres(
        worker: &str,
        subscribed: &[EventType],
    ) -> Result<Option<Harness>, TestkitError> {
        let Some(store) = postgres_store().await? else {
            return Ok(None);
        };
        Harness::build(worker, subscribed, store, tempdir()?)
            .await
            .map(Some)
    }

    /// A harness over a given store (e.g. one shared with another harness, or a faulty one).
    pub async fn with_store(
        worker: &str,
        subscribed: &[EventType],
        store: Arc<dyn Store>,
    ) -> Result<Harness, TestkitError> {
        Harness::build(worker, subscribed, store, tempdir()?).await
    }

    async fn build(
        worker: &str,
        subscribed: &[EventType],
        store: Arc<dyn Store>,
        dir: tempfile::TempDir,
    ) -> Result<Harness, TestkitError> {
        let clock = FakeClock::at_epoch();
        let topology = Harness::topology(worker, subscribed);
        let emulator = Emulator::open(
            topology,
            dir.path().join("emulator"),
            clock.for_emulator(),
            EmulatorOptions::default(),
        )
        .await
        .map_err(|e| {
            TestkitError::new(TestkitErrorKind::Setup, "opening the emulator").with_source(e)
        })?;
        Ok(Harness {
            clock,
            bus: Arc::new(InProcessBus::new(emulator)),
            store,
            worker: worker.to_owned(),
            _dir: dir,
        })
    }

    /// The topology: topic [`TOPIC`] with the worker's subscription (one `Subject` rule per
    /// subscribed event type, all of them when empty, plus the delayed-retry rule) and
    /// [`OBSERVER`], which receives everything.
    pub fn topology(worker: &str, subscribed: &[EventType]) -> Topology {
        let mut sub = SubscriptionConfig::new(worker);
        if subscribed.is_empty() {
            sub.rules.push(Rule {
                name: "all".into(),
                filter: Filter::True,
            });
        }
        for t in subscribed {
            let filter = CorrelationFilter {
                subject: Some(t.as_str().to_owned()),
                ..CorrelationFilter::default()
            };
            sub.rules.push(Rule {
                name: t.as_str().to_owned(),
                filter: Filter::Correlation(filter),
            });
        }
        let mut retry = CorrelationFilter::default();
        retry.properties.insert(
            PROP_RETRY_FOR.to_owned(),
            PropertyValue::String(worker.to_owned()),
        );
        sub.rules.push(Rule {
            name: "fleet-retry".into(),
            filter: Filter::Correlation(retry),
        });
        let mut topic = TopicConfig::new(TOPIC);
        topic.subscriptions.push(sub);
        topic.subscriptions.push(SubscriptionConfig::new(OBSERVER));
        Topology::default().with_topic(topic)
    }

    /// Test defaults: in-flight 8, grace 5 s, 3 attempts with 100 ms–1 s delays (fake time).
    pub fn config(&self) -> RuntimeConfig {
        let mut c = RuntimeConfig::new(&self.worker);
        c.topic = TOPIC.to_owned();
        c.publish_topic = TOPIC.to_owned();
        c.subscription = self.worker.clone();
        c.max_in_flight = 8;
        c.shutdown_grace = Duration::from_secs(5);
        c.retry = fleet_runtime::RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        c
    }

    /// A worker over this harness's store, bus and clock, without HTTP.
    pub fn worker<P: Send + Sync + 'static>(
        &self,
        def: WorkerDefinition<P>,
        config: RuntimeConfig,
        ports: Arc<P>,
    ) -> Worker<P> {
        self.worker_on(def, config, ports, self.store.clone())
    }

    /// Like [`Self::worker`] over another store (e.g. a [`crate::FaultyStore`]).
    pub fn worker_on<P: Send + Sync + 'static>(
        &self,
        def: WorkerDefinition<P>,
        config: RuntimeConfig,
        ports: Arc<P>,
        store: Arc<dyn Store>,
    ) -> Worker<P> {
        let bus: Arc<dyn Bus> = self.bus.clone();
        Worker::new(def, config, store, bus, ports)
            .with_clock(self.clock.for_runtime())
            .without_http()
    }

    /// Runs `worker` in a task until [`RunningWorker::stop`].
    pub fn start<P: Send + Sync + 'static>(&self, worker: Worker<P>) -> RunningWorker {
        let (tx, rx) = oneshot::channel::<()>();
        let stats = worker.stats();
        let handle = tokio::spawn(worker.run(async move {
            let _ = rx.await;
        }));
        RunningWorker {
            stats,
            stop: Some(tx),
            handle,
        }
    }

    /// Records that `tenant` owns `environment`.
    pub async fn bind_tenant(&self, environment: &str, tenant: &str) -> Result<(), TestkitError> {
        let binding = TenantBinding {
            environment_id: environment.to_owned(),
            tenant_id: tenant.to_owned(),
            targets: serde_json::json!({}),
        };
        self.store
            .put_tenant_binding(&binding)
            .await
            .map_err(store("binding a tenant"))
    }

    /// Publishes `envelope` on [`TOPIC`] with the standard Service Bus mapping.
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), TestkitError> {
        self.publish_message(envelope_message(envelope)).await
    }

    /// Publishes a raw message on [`TOPIC`].
    pub async fn publish_message(&self, msg: Message) -> Result<(), TestkitError> {
        let sender = self
            .bus
            .sender(TOPIC)
            .await
            .map_err(bus("opening a sender"))?;
        sender.send(msg).await.map_err(bus("sending"))
    }

    /// Everything in the worker subscription's dead-letter queue (peeked, not removed).
    pub async fn dead_letters(&self) -> Result<Vec<ReceivedMessage>, TestkitError> {
        let path = EntityPath::subscription(TOPIC, self.worker.clone()).dead_letter();
        peek_all(self.bus.as_ref(), &path).await
    }

    /// Messages still waiting in the worker's subscription (peeked).
    pub async fn pending(&self) -> Result<Vec<ReceivedMessage>, TestkitError> {
        peek_all(
            self.bus.as_ref(),
            &EntityPath::subscription(TOPIC, self.worker.clone()),
        )
        .await
    }

    /// The broker messages carrying the worker's events (properties included), in publish order.
    pub async fn emitted_messages(&self) -> Result<Vec<ReceivedMessage>, TestkitError> {
        let source = format!("/workers/{}", self.worker);
        let msgs = peek_all(
            self.bus.as_ref(),
            &EntityPath::subscription(TOPIC, OBSERVER),
        )
        .await?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.message.subject.as_deref() != Some(RETRY_SUBJECT))
            .filter(|m| Envelope::decode(&m.message.body).is_ok_and(|e| e.source == source))
            .collect())
    }

    /// Events published by the worker under test, in publish order (from [`OBSERVER`]).
    pub async fn emitted(&self) -> Result<Vec<Envelope>, TestkitError> {
        let source = format!("/workers/{}", self.worker);
        let msgs = peek_all(
            self.bus.as_ref(),
            &EntityPath::subscription(TOPIC, OBSERVER),
        )
        .await?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.message.subject.as_deref() != Some(RETRY_SUBJECT))
            .filter_map(|m| Envelope::decode(&m.message.body).ok())
            .filter(|e| e.source == source)
            .collect())
    }

    /// Polls `check` until it returns true or `timeout` (real time) passes.
    pub async fn wait_until<F, Fut>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: F,
    ) -> Result<(), TestkitError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if check().await {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TestkitError::new(
                    TestkitErrorKind::Timeout,
                    format!("timed out waiting for {what}"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// The bus message carrying `envelope` (body + §3 property mapping).
pub fn envelope_message(envelope: &Envelope) -> Message {
    let props = to_message_properties(envelope);
    let mut msg = Message::new(envelope.encode());
    msg.message_id = Some(props.message_id);
    msg.correlation_id = Some(props.correlation_id);
    msg.subject = Some(props.subject);
    msg.content_type = Some(props.content_type);
    for (k, v) in props.application_properties {
        let v = match v {
            servicebus::PropertyValue::String(s) => PropertyValue::String(s),
            servicebus::PropertyValue::Int(i) => PropertyValue::Int(i),
        };
        msg.application_properties.insert(k, v);
    }
    msg
}

async fn peek_all(bus: &dyn Bus, path: &EntityPath) -> Result<Vec<ReceivedMessage>, TestkitError> {
    let receiver = bus
        .receiver(path, ReceiveOptions::peek_lock())
        .await
        .map_err(bus_err("opening a receiver"))?;
    let mut out = Vec::new();
    loop {
        let batch = receiver.peek(None, 256).await.map_err(bus_err("peeking"))?;
        if batch.is_empty() {
            break;
        }
        out.extend(batch);
    }
    let _ = receiver.close().await;
    Ok(out)
}

fn bus_err(what: &str) -> impl FnOnce(fleet_bus::BusError) -> TestkitError + '_ {
    bus(what)
}

fn tempdir() -> Result<tempfile::TempDir, TestkitError> {
    tempfile::tempdir().map_err(|e| {
        TestkitError::new(TestkitErrorKind::Setup, "creating a temporary directory").with_source(e)
    })
}

/// A PostgreSQL store in a fresh randomly named schema, or `None` (printing `SKIPPED`) when
/// [`ENV_TEST_POSTGRES_URL`] is unset. Two calls give isolated stores; pass the same one to two
/// harnesses to share state.
pub async fn postgres_store() -> Result<Option<Arc<dyn Store>>, TestkitError> {
    let Ok(url) = std::env::var(ENV_TEST_POSTGRES_URL) else {
        println!("SKIPPED (set {ENV_TEST_POSTGRES_URL})");
        return Ok(None);
    };
    let schema = format!("rt_{}", uuid::Uuid::new_v4().simple());
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = fleet_store::open(&format!("{url}{sep}schema={schema}"))
        .await
        .map_err(store("opening PostgreSQL"))?;
    Ok(Some(store))
}
