//! The ports of a worker binary when no Azure adapter is configured: the sandbox cloud
//! (`fleet-sandbox`) and a bus over an in-process emulator engine.
//!
//! The Azure adapters (ARM, Kubernetes, Key Vault, Monitor, Service Bus over AMQP) come later;
//! until then `FLEET_CLOUD=azure` is refused with a clear error instead of silently falling back.

use std::path::PathBuf;
use std::sync::Arc;

use fleet_bus::{Bus, PropertyValue};
use fleet_cloud::{ComputeSet, Metrics, Vault};
use fleet_emulator::{
    CorrelationFilter, Emulator, EmulatorOptions, Filter, InProcessBus, Rule, SubscriptionConfig,
    TopicConfig, Topology,
};
use fleet_envelope::EventType;
use fleet_runtime::{Env, PROP_RETRY_FOR, RuntimeConfig, RuntimeError, RuntimeErrorKind};
use fleet_sandbox::{Sandbox, SandboxConfig};

use crate::settings::text;

/// Which cloud the ports talk to: `sandbox` (the default, a local simulated cloud).
pub const ENV_CLOUD: &str = "FLEET_CLOUD";
/// Data directory of the sandbox cloud; unset keeps its state in memory.
pub const ENV_SANDBOX_DIR: &str = "FLEET_SANDBOX_DIR";
/// Data directory of the in-process emulator engine the bus runs on.
pub const ENV_EMULATOR_DIR: &str = "FLEET_EMULATOR_DIR";
/// Optional Service Bus emulator `Config.json` describing the topology (else one topic with this
/// worker's subscription is created).
pub const ENV_EMULATOR_CONFIG: &str = "FLEET_EMULATOR_CONFIG";

/// The local cloud a binary runs against. Clones share one sandbox, whose health endpoint server
/// stays up as long as a clone lives — workers keep one in their ports for that reason.
#[derive(Clone)]
pub struct LocalCloud {
    sandbox: Arc<Sandbox>,
}

impl std::fmt::Debug for LocalCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCloud")
            .field("base_url", &self.sandbox.base_url())
            .finish()
    }
}

impl LocalCloud {
    /// Starts the sandbox described by the environment ([`ENV_CLOUD`], [`ENV_SANDBOX_DIR`]).
    pub async fn open(env: &dyn Env) -> Result<LocalCloud, RuntimeError> {
        match text(env, ENV_CLOUD).as_deref() {
            None | Some("sandbox") => {}
            Some(other) => {
                return Err(RuntimeError::config(
                    ENV_CLOUD,
                    other,
                    "sandbox (the Azure adapters are not available in this build)",
                ));
            }
        }
        let config = SandboxConfig {
            data_dir: text(env, ENV_SANDBOX_DIR).map(PathBuf::from),
            ..SandboxConfig::default()
        };
        let sandbox = Sandbox::start(config).await.map_err(|e| {
            RuntimeError::new(RuntimeErrorKind::Definition, "starting the sandbox cloud")
                .with_source(e)
        })?;
        Ok(LocalCloud::from_sandbox(Arc::new(sandbox)))
    }

    /// Wraps a running sandbox (e.g. one shared by a whole local fleet).
    pub fn from_sandbox(sandbox: Arc<Sandbox>) -> Self {
        LocalCloud { sandbox }
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// The four compute control planes.
    pub fn computes(&self) -> ComputeSet {
        self.sandbox.computes()
    }

    /// The metrics API.
    pub fn metrics(&self) -> Arc<dyn Metrics> {
        self.sandbox.metrics()
    }

    /// The vault.
    pub fn vault(&self) -> Arc<dyn Vault> {
        self.sandbox.vault()
    }
}

/// The topology of a single worker: topic `config.topic` with the worker's subscription (one
/// `Subject` rule per handled event type plus the runtime's delayed-retry rule).
pub fn topology(config: &RuntimeConfig, subscribed: &[EventType]) -> Topology {
    let mut sub = SubscriptionConfig::new(&config.subscription);
    for t in subscribed {
        sub.rules.push(Rule {
            name: t.as_str().to_owned(),
            filter: Filter::Correlation(CorrelationFilter {
                subject: Some(t.as_str().to_owned()),
                ..CorrelationFilter::default()
            }),
        });
    }
    let mut retry = CorrelationFilter::default();
    retry.properties.insert(
        PROP_RETRY_FOR.to_owned(),
        PropertyValue::String(config.worker_name.clone()),
    );
    sub.rules.push(Rule {
        name: "fleet-retry".into(),
        filter: Filter::Correlation(retry),
    });
    let mut topic = TopicConfig::new(&config.topic);
    topic.subscriptions.push(sub);
    Topology::default().with_topic(topic)
}

/// A bus over an in-process emulator engine stored in [`ENV_EMULATOR_DIR`] (default
/// `.fleet/emulator`), with the topology of [`ENV_EMULATOR_CONFIG`] or [`topology`].
pub async fn open_bus(
    env: &dyn Env,
    config: &RuntimeConfig,
    subscribed: &[EventType],
) -> Result<Arc<dyn Bus>, RuntimeError> {
    let topology = match text(env, ENV_EMULATOR_CONFIG) {
        Some(path) => Topology::from_file(PathBuf::from(&path).as_path()).map_err(|e| {
            RuntimeError::config(
                ENV_EMULATOR_CONFIG,
                &path,
                "a readable emulator Config.json",
            )
            .with_source(e)
        })?,
        None => topology(config, subscribed),
    };
    let dir = text(env, ENV_EMULATOR_DIR).unwrap_or_else(|| ".fleet/emulator".to_owned());
    let emulator = Emulator::open(
        topology,
        PathBuf::from(&dir),
        Arc::new(fleet_emulator::SystemClock),
        EmulatorOptions::default(),
    )
    .await
    .map_err(|e| {
        RuntimeError::new(
            RuntimeErrorKind::Bus,
            format!("opening the emulator engine in {dir}"),
        )
        .with_source(e)
    })?;
    Ok(Arc::new(InProcessBus::new(emulator)))
}
