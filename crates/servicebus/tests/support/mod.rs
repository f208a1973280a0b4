//! Test harness: the emulator engine behind `fleet_amqp::serve` on a loopback address, and
//! a `ServiceBusBus` pointed at it. The Rust client always dials port 5672, so every test has
//! its own 127.0.0.x address (200 and up: lower ones belong to the listener's own tests).

#![allow(dead_code, clippy::large_futures)]

use std::sync::Arc;
use std::time::Duration;

use fleet_amqp::{ListenerOptions, serve};
use fleet_emulator::{Emulator, EmulatorOptions, InProcessBus, SystemClock, Topology};
use fleet_servicebus::{Backoff, ServiceBusBus, ServiceBusConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound of any single test step.
pub const STEP: Duration = Duration::from_secs(30);

/// A listener over an emulator; the emulator outlives listener restarts.
pub struct Harness {
    pub ip: String,
    pub backend: Arc<InProcessBus>,
    options: ListenerOptions,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), fleet_amqp::AmqpError>>>,
    _dir: tempfile::TempDir,
}

/// The conformance suite's entities as an emulator topology.
pub fn conformance_topology() -> Topology {
    let t = fleet_bus::conformance::Topology::default();
    Topology::from_json(&t.config_json()).expect("the suite's Config.json parses")
}

impl Harness {
    pub async fn start(ip: &str, topology: Topology, options: ListenerOptions) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        let emulator = Emulator::open(
            topology,
            dir.path(),
            Arc::new(SystemClock),
            EmulatorOptions::default(),
        )
        .await
        .expect("emulator opens");
        let backend = Arc::new(InProcessBus::new(emulator));
        let mut harness = Harness {
            ip: ip.to_owned(),
            backend,
            options,
            stop: None,
            task: None,
            _dir: dir,
        };
        harness.listen().await;
        harness
    }

    /// (Re)starts the listener on the same address over the same engine.
    pub async fn listen(&mut self) {
        let listener = TcpListener::bind((self.ip.as_str(), 5672))
            .await
            .expect("bind the listener");
        let (stop, stopped) = oneshot::channel::<()>();
        let backend: Arc<dyn fleet_bus::Bus> = self.backend.clone();
        self.task = Some(tokio::spawn(serve(
            listener,
            backend,
            self.options.clone(),
            async {
                let _ = stopped.await;
            },
        )));
        self.stop = Some(stop);
    }

    /// Stops the listener (closing every connection) and waits for it.
    pub async fn stop_listener(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(STEP, task)
                .await
                .expect("listener stops in time");
        }
    }

    /// An emulator connection string with this key.
    pub fn connection_string_with_key(&self, key: &str) -> String {
        format!(
            "Endpoint=sb://{}/;SharedAccessKeyName=k;SharedAccessKey={key};UseDevelopmentEmulator=true",
            self.ip
        )
    }

    pub fn connection_string(&self) -> String {
        self.connection_string_with_key("v")
    }

    /// The adapter, with quick backoff so tests see reconnects promptly.
    pub fn bus(&self) -> ServiceBusBus {
        self.bus_with(&self.connection_string())
    }

    pub fn bus_with(&self, connection_string: &str) -> ServiceBusBus {
        let mut config =
            ServiceBusConfig::from_connection_string(connection_string).expect("connection string");
        config.operation_timeout = Duration::from_secs(10);
        config.backoff = Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            attempts: 6,
        };
        ServiceBusBus::new(config)
    }
}

/// Runs a future under the step timeout, naming the step when it hangs.
pub async fn step<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP, fut).await {
        Ok(out) => out,
        Err(_) => panic!("step \"{what}\" did not finish within {STEP:?}"),
    }
}
