//! [`Worker`]: one running replica — receive loop, timers, relay, janitor, HTTP server — and
//! its shutdown sequence (rule 11).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fleet_bus::{Bus, EntityPath, ReceiveOptions};
use fleet_store::Store;
use fleet_telemetry::Metrics;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::clock::{Clock, SystemClock};
use crate::committer::Committer;
use crate::config::RuntimeConfig;
use crate::definition::WorkerDefinition;
use crate::dispatch::receive_loop;
use crate::error::{RuntimeError, RuntimeErrorKind};
use crate::http::{HttpState, serve};
use crate::keyed::KeyedLocks;
use crate::relay::Relay;
use crate::shared::{Shared, WorkerStats};
use crate::timers::timer_loop;

// After the grace period, abandoning the leftovers must itself be bounded.
const ABANDON_TIMEOUT: Duration = Duration::from_secs(3);
// Flushing the outbox at shutdown gets a bounded slice of the container's remaining time.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

enum Http {
    Disabled,
    Bind(SocketAddr),
    Listener(TcpListener),
}

/// A worker replica, ready to [`run`](Worker::run).
pub struct Worker<P> {
    def: WorkerDefinition<P>,
    config: RuntimeConfig,
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    ports: Arc<P>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    http: Http,
    stats: Arc<WorkerStats>,
}

impl<P> std::fmt::Debug for Worker<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("def", &self.def)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<P: Send + Sync + 'static> Worker<P> {
    /// A replica of `def` with `config`, over `store` and `bus`, with the worker's `ports`.
    /// The configuration's retry policy replaces the definition's.
    pub fn new(
        mut def: WorkerDefinition<P>,
        config: RuntimeConfig,
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        ports: Arc<P>,
    ) -> Self {
        def.set_retry(config.retry);
        let http = Http::Bind(config.http_addr);
        Worker {
            def,
            config,
            store,
            bus,
            ports,
            clock: Arc::new(SystemClock),
            metrics: Metrics::new(),
            http,
            stats: Arc::new(WorkerStats::default()),
        }
    }

    /// Uses `clock` instead of the system clock (tests pass a fake one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Reports into `metrics` (one registry per process).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Serves HTTP on an already bound listener (tests bind `127.0.0.1:0`).
    pub fn with_http_listener(mut self, listener: TcpListener) -> Self {
        self.http = Http::Listener(listener);
        self
    }

    /// Runs without the HTTP server.
    pub fn without_http(mut self) -> Self {
        self.http = Http::Disabled;
        self
    }

    /// Live counters, readable while the worker runs.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` completes, then drains: readiness turns 503, receiving stops,
    /// in-flight work gets the grace period, the rest is abandoned (never dead-lettered), the
    /// outbox is flushed. Returns `Ok` after a clean drain; binaries then exit 0.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), RuntimeError> {
        let Worker {
            def,
            config,
            store,
            bus,
            ports,
            clock,
            metrics,
            http,
            stats,
        } = self;
        let listener = match http {
            Http::Disabled => None,
            Http::Listener(l) => Some(l),
            Http::Bind(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                RuntimeError::new(RuntimeErrorKind::Http, format!("binding {addr} failed"))
                    .with_source(e)
            })?),
        };
        let path = EntityPath::subscription(config.topic.clone(), config.subscription.clone());
        let receiver: Arc<dyn fleet_bus::BusReceiver> = Arc::from(
            bus.receiver(&path, ReceiveOptions::peek_lock())
                .await
                .map_err(|e| {
                    RuntimeError::new(
                        RuntimeErrorKind::Bus,
                        format!("opening a receiver on {path} failed"),
                    )
                    .with_source(e)
                })?,
        );
        let retry_sender = bus.sender(&config.topic).await.map_err(|e| {
            RuntimeError::new(
                RuntimeErrorKind::Bus,
                format!("opening a sender to {} failed", config.topic),
            )
            .with_source(e)
        })?;
        let claimer = format!("{}/{}", def.name, uuid::Uuid::new_v4());
        let relay = Arc::new(Relay::new(
            store.clone(),
            bus.clone(),
            clock.clone(),
            claimer,
            metrics.clone(),
            def.name.clone(),
        ));
        let processed = def
            .routes
            .keys()
            .map(|&(event_type, version)| {
                let series = metrics.processed_series(&def.name, event_type.as_str());
                ((event_type, version), series)
            })
            .collect();
        let shared = Arc::new(Shared {
            in_flight: metrics.in_flight_gauge(&def.name),
            processed,
            committer: Committer::start(store.clone()),
            keys: KeyedLocks::new(),
            tenants: Default::default(),
            relay: relay.clone(),
            retry_sender,
            stats: stats.clone(),
            metrics: metrics.clone(),
            store: store.clone(),
            clock: clock.clone(),
            ports,
            config: config.clone(),
            def,
        });

        let (drain_tx, drain_rx) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let (bg_tx, bg_rx) = watch::channel(false);
        let mut background = JoinSet::new();
        if let Some(listener) = listener {
            let state = HttpState {
                worker: shared.def.name.clone(),
                stats: stats.clone(),
                store: store.clone(),
                metrics,
            };
            let rx = bg_rx.clone();
            background.spawn(async move {
                if let Err(e) = serve(listener, state, rx).await {
                    tracing::error!(error = %e, "HTTP server failed");
                }
            });
        }
        background.spawn(relay.clone().run(config.relay_interval, bg_rx.clone()));
        background.spawn(crate::janitor::run(
            store.clone(),
            clock.clone(),
            config.clone(),
            bg_rx.clone(),
        ));

        let permits = Arc::new(Semaphore::new(config.max_in_flight));
        let mut timers = JoinSet::new();
        for index in 0..shared.def.timers.len() {
            timers.spawn(timer_loop(
                shared.clone(),
                index,
                permits.clone(),
                drain_rx.clone(),
                stop_rx.clone(),
            ));
        }
        stats.bus_healthy.store(true, Ordering::Relaxed);
        stats.running.store(true, Ordering::Relaxed);
        tracing::info!(worker = %shared.def.name, subscription = %path, "worker started");

        let mut tasks = JoinSet::new();
        let drain = async {
            shutdown.await;
            stats.draining.store(true, Ordering::Relaxed);
            let _ = drain_tx.send(true);
            tracing::info!("shutdown requested: draining");
        };
        tokio::join!(
            receive_loop(
                shared.clone(),
                receiver.clone(),
                permits,
                &mut tasks,
                drain_rx,
                stop_rx.clone()
            ),
            drain
        );

        let finished = tokio::time::timeout(config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
            while timers.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                in_flight = stats.in_flight.load(Ordering::Relaxed),
                "grace period over: abandoning in-flight messages"
            );
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(ABANDON_TIMEOUT, async {
                while tasks.join_next().await.is_some() {}
                while timers.join_next().await.is_some() {}
            })
            .await;
            tasks.abort_all();
            timers.abort_all();
        }
        match tokio::time::timeout(FLUSH_TIMEOUT, relay.publish_pending()).await {
            Ok(Ok(n)) => tracing::info!(published = n, "outbox flushed"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "outbox flush failed; the relay of another replica will publish the rows")
            }
            Err(_) => tracing::warn!(
                "outbox flush timed out; the relay of another replica will publish the rows"
            ),
        }
        let _ = bg_tx.send(true);
        while background.join_next().await.is_some() {}
        stats.running.store(false, Ordering::Relaxed);
        if let Err(e) = receiver.close().await {
            tracing::debug!(error = %e, "closing the receiver failed");
        }
        tracing::info!("worker stopped");
        Ok(())
    }
}
