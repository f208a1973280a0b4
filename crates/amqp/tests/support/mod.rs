//! Test harness: the real emulator engine behind `fleet_amqp::serve` on a loopback address,
//! plus helpers for the Rust client and a raw AMQP peer.

#![allow(dead_code, clippy::large_futures)]

pub mod raw;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use azservicebus::{ServiceBusClient, ServiceBusClientOptions, ServiceBusRetryOptions};
use fleet_amqp::{ListenerOptions, serve};
use fleet_emulator::{
    Emulator, EmulatorOptions, InProcessBus, QueueConfig, SubscriptionConfig, SystemClock,
    TopicConfig, Topology,
};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound of any single test step.
pub const STEP: Duration = Duration::from_secs(20);

/// A running listener over a fresh emulator.
pub struct Harness {
    pub addr: SocketAddr,
    pub bus: Arc<InProcessBus>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), fleet_amqp::AmqpError>>>,
    _dir: tempfile::TempDir,
}

/// The topology every test uses: queues q1..q3, topic t1 with subscription s1.
pub fn topology() -> Topology {
    let mut topic = TopicConfig::new("t1");
    topic.subscriptions.push(SubscriptionConfig::new("s1"));
    Topology::default()
        .with_queue(QueueConfig::new("q1"))
        .with_queue(QueueConfig::new("q2"))
        .with_queue(QueueConfig::new("q3"))
        .with_topic(topic)
}

impl Harness {
    /// Starts on `ip`:5672 (the Rust client ignores ports, so each test has its own address).
    pub async fn start(ip: &str, options: ListenerOptions) -> Harness {
        Self::start_with(ip, options, |bus| bus).await
    }

    /// Like [`start`](Self::start), with the listener serving `backend(engine)` — a wrapper
    /// that observes or alters what the listener asks of the engine. `bus` stays the engine.
    pub async fn start_with(
        ip: &str,
        options: ListenerOptions,
        backend: impl FnOnce(Arc<dyn fleet_bus::Bus>) -> Arc<dyn fleet_bus::Bus>,
    ) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        let emulator = Emulator::open(
            topology(),
            dir.path(),
            Arc::new(SystemClock),
            EmulatorOptions::default(),
        )
        .await
        .expect("emulator opens");
        let bus = Arc::new(InProcessBus::new(emulator));
        let listener = TcpListener::bind((ip, 5672))
            .await
            .expect("bind the listener");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let backend = backend(bus.clone());
        let task = tokio::spawn(serve(listener, backend, options, async {
            let _ = stopped.await;
        }));
        Harness {
            addr,
            bus,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// The connection string the clients use.
    pub fn connection_string(&self) -> String {
        format!(
            "Endpoint=sb://{}/;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
            self.addr.ip()
        )
    }

    /// A Rust client over plain TCP with quick retries (tests want errors, not patience).
    pub async fn rust_client(&self) -> ServiceBusClient<azservicebus::core::BasicRetryPolicy> {
        self.rust_client_with(&self.connection_string()).await
    }

    pub async fn rust_client_with(
        &self,
        connection_string: &str,
    ) -> ServiceBusClient<azservicebus::core::BasicRetryPolicy> {
        let options = ServiceBusClientOptions {
            retry_options: ServiceBusRetryOptions {
                max_retries: 0,
                try_timeout: Duration::from_secs(10),
                ..Default::default()
            },
            ..Default::default()
        };
        tokio::time::timeout(
            STEP,
            ServiceBusClient::unsecured().new_from_connection_string(connection_string, options),
        )
        .await
        .expect("client connects in time")
        .expect("client connects")
    }

    /// Stops the listener and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(STEP, task)
                .await
                .expect("listener stops in time");
            result
                .expect("listener task")
                .expect("listener ends cleanly");
        }
    }
}

/// Runs a future under the step timeout, naming the step when it hangs.
pub async fn step<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP, fut).await {
        Ok(out) => out,
        Err(_) => panic!("step \"{what}\" did not finish within {STEP:?}"),
    }
}
