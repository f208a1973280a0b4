//! The ports of a worker binary: the sandbox cloud (`fleet-sandbox`) and a bus — Service Bus
//! over AMQP (`fleet-servicebus`) when a connection string or namespace is configured, else an
//! in-process emulator engine.
//!
//! The Azure cloud adapters (ARM, Kubernetes, Key Vault, Monitor) come later; until then
//! `FLEET_CLOUD=azure` is refused with a clear error instead of silently falling back.

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

use fleet_servicebus::{ENV_CONNECTION, ENV_NAMESPACE, ServiceBusBus, ServiceBusConfig};

use crate::settings::text;

/// Which cloud the ports talk to: `sandbox` (the default, a local simulated cloud).
pub const ENV_CLOUD: &str = "FLEET_CLOUD";
/// Data directory of the sandbox cloud; unset keeps its state in memory.
pub const ENV_SANDBOX_DIR: &str = "FLEET_SANDBOX_DIR";
/// Factor applied to the sandbox cloud's simulated operation durations (`Timings::scaled`):
/// `0.01` lands a 15 s configuration change in 150 ms, `0` at once. Unset keeps the defaults.
pub const ENV_SANDBOX_TIME_SCALE: &str = "FLEET_SANDBOX_TIME_SCALE";
/// Largest [`ENV_SANDBOX_TIME_SCALE`] accepted.
const MAX_TIME_SCALE: f64 = 1000.0;
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
        let config = sandbox_config(env)?;
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

/// The sandbox settings of the environment: [`ENV_SANDBOX_DIR`] and [`ENV_SANDBOX_TIME_SCALE`].
pub fn sandbox_config(env: &dyn Env) -> Result<SandboxConfig, RuntimeError> {
    let defaults = SandboxConfig::default();
    let timings = match text(env, ENV_SANDBOX_TIME_SCALE) {
        None => defaults.timings,
        Some(raw) => match raw.parse::<f64>() {
            Ok(factor) if (0.0..=MAX_TIME_SCALE).contains(&factor) => {
                defaults.timings.scaled(factor)
            }
            _ => {
                return Err(RuntimeError::config(
                    ENV_SANDBOX_TIME_SCALE,
                    &raw,
                    &format!("a number from 0 to {MAX_TIME_SCALE}"),
                ));
            }
        },
    };
    Ok(SandboxConfig {
        data_dir: text(env, ENV_SANDBOX_DIR).map(PathBuf::from),
        timings,
        ..defaults
    })
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

/// Which bus a worker binary talks to, decided from the environment by [`bus_choice`].
#[derive(Debug, Clone)]
pub enum BusChoice {
    /// Service Bus (or a standalone emulator) over AMQP through the production adapter.
    ServiceBus(Box<ServiceBusConfig>),
    /// An emulator engine inside this process (local runs and tests).
    InProcess,
}

/// Reads `fleet_servicebus` settings from the worker's environment.
struct BusEnv<'a>(&'a dyn Env);

impl fleet_servicebus::Env for BusEnv<'_> {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name)
    }
}

/// Picks the bus: [`ENV_CONNECTION`] (a connection string; `UseDevelopmentEmulator=true` for
/// plain AMQP to a local emulator) wins, then [`ENV_NAMESPACE`] with an Entra ID credential
/// (built only with the `azure-identity` feature), else the in-process emulator.
///
/// A bad value is a configuration error naming the variable; the connection string itself is
/// never shown, only which part of it is wrong.
pub fn bus_choice(env: &dyn Env) -> Result<BusChoice, RuntimeError> {
    let bus_env = BusEnv(env);
    if text(env, ENV_CONNECTION).is_some() {
        return ServiceBusConfig::from_env(&bus_env)
            .map(|c| BusChoice::ServiceBus(Box::new(c)))
            .map_err(|e| {
                RuntimeError::config(
                    ENV_CONNECTION,
                    "<redacted>",
                    &format!(
                        "a Service Bus connection string \
                         (Endpoint=sb://HOST/;SharedAccessKeyName=…;SharedAccessKey=…): {}",
                        e.message()
                    ),
                )
            });
    }
    if let Some(namespace) = text(env, ENV_NAMESPACE) {
        return ServiceBusConfig::from_env(&bus_env)
            .map(|c| BusChoice::ServiceBus(Box::new(c)))
            .map_err(|e| {
                RuntimeError::config(
                    ENV_NAMESPACE,
                    &namespace,
                    &format!(
                        "a namespace with a usable Entra ID credential: {}",
                        e.message()
                    ),
                )
            });
    }
    Ok(BusChoice::InProcess)
}

/// The worker's bus, as chosen by [`bus_choice`]: Service Bus over AMQP, or an in-process
/// emulator engine (see [`open_in_process_bus`]).
pub async fn open_bus(
    env: &dyn Env,
    config: &RuntimeConfig,
    subscribed: &[EventType],
) -> Result<Arc<dyn Bus>, RuntimeError> {
    match bus_choice(env)? {
        // No I/O here: the adapter connects on first use and reconnects on its own.
        BusChoice::ServiceBus(sb) => Ok(Arc::new(ServiceBusBus::new(*sb))),
        BusChoice::InProcess => open_in_process_bus(env, config, subscribed).await,
    }
}

/// A bus over an in-process emulator engine stored in [`ENV_EMULATOR_DIR`] (default
/// `.fleet/emulator`), with the topology of [`ENV_EMULATOR_CONFIG`] or [`topology`].
pub async fn open_in_process_bus(
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

#[cfg(test)]
mod tests {
    use fleet_runtime::{MapEnv, RuntimeErrorKind};

    use super::*;

    const KEY: &str = "c2VjcmV0LWtleQ==";

    fn emulator_cs() -> String {
        format!(
            "Endpoint=sb://127.0.0.1/;SharedAccessKeyName=k;SharedAccessKey={KEY};UseDevelopmentEmulator=true"
        )
    }

    #[test]
    fn the_sandbox_time_scale_scales_every_operation_duration() {
        let defaults = fleet_sandbox::Timings::default();
        let unset = sandbox_config(&MapEnv::default()).unwrap();
        assert_eq!(unset.timings, defaults);
        assert_eq!(unset.data_dir, None);

        let env = MapEnv::from_pairs([
            (ENV_SANDBOX_TIME_SCALE, "0.01"),
            (ENV_SANDBOX_DIR, "/var/lib/fleet/sandbox"),
        ]);
        let fast = sandbox_config(&env).unwrap();
        assert_eq!(fast.timings, defaults.scaled(0.01));
        assert_eq!(
            fast.timings.configure,
            std::time::Duration::from_millis(150)
        );
        assert_eq!(
            fast.data_dir.as_deref(),
            Some(std::path::Path::new("/var/lib/fleet/sandbox"))
        );

        let env = MapEnv::from_pairs([(ENV_SANDBOX_TIME_SCALE, "0")]);
        let instant = sandbox_config(&env).unwrap().timings;
        assert_eq!(instant.create, std::time::Duration::ZERO);
    }

    #[test]
    fn a_bad_sandbox_time_scale_is_a_config_error_naming_it() {
        for bad in ["fast", "-1", "NaN", "inf", "1001"] {
            let env = MapEnv::from_pairs([(ENV_SANDBOX_TIME_SCALE, bad)]);
            let err = sandbox_config(&env).err().expect(bad);
            assert_eq!(err.kind(), RuntimeErrorKind::Config, "{bad}");
            let text = err.to_string();
            assert!(text.contains(ENV_SANDBOX_TIME_SCALE), "{text}");
            assert!(text.contains("0 to 1000"), "{text}");
        }
    }

    #[test]
    fn nothing_set_keeps_the_in_process_emulator() {
        let choice = bus_choice(&MapEnv::default()).unwrap();
        assert!(matches!(choice, BusChoice::InProcess), "{choice:?}");
    }

    #[test]
    fn a_connection_string_selects_service_bus_over_plain_amqp_for_the_emulator() {
        let env = MapEnv::from_pairs([(ENV_CONNECTION, emulator_cs().as_str())]);
        let BusChoice::ServiceBus(config) = bus_choice(&env).unwrap() else {
            panic!("a connection string selects Service Bus");
        };
        assert!(
            config.emulator,
            "UseDevelopmentEmulator=true means plain AMQP"
        );
        assert_eq!(config.namespace(), "127.0.0.1");
    }

    #[test]
    fn the_connection_string_wins_over_a_namespace() {
        let env = MapEnv::from_pairs([
            (ENV_CONNECTION, emulator_cs().as_str()),
            (ENV_NAMESPACE, "fleet.servicebus.windows.net"),
        ]);
        let BusChoice::ServiceBus(config) = bus_choice(&env).unwrap() else {
            panic!("a connection string selects Service Bus");
        };
        assert_eq!(config.namespace(), "127.0.0.1");
    }

    #[test]
    fn a_blank_connection_string_counts_as_unset() {
        let env = MapEnv::from_pairs([(ENV_CONNECTION, "  ")]);
        assert!(matches!(bus_choice(&env).unwrap(), BusChoice::InProcess));
    }

    #[test]
    fn a_bad_connection_string_is_a_config_error_that_never_shows_the_key() {
        let bad = format!("Endpoint=http://x/;SharedAccessKeyName=k;SharedAccessKey={KEY}");
        let env = MapEnv::from_pairs([(ENV_CONNECTION, bad.as_str())]);
        let err = bus_choice(&env).unwrap_err();
        assert_eq!(err.kind(), RuntimeErrorKind::Config);
        let text = format!("{err} {err:?}");
        assert!(text.contains(ENV_CONNECTION), "{text}");
        assert!(text.contains("sb://"), "says what is expected: {text}");
        assert!(!text.contains(KEY), "the key leaked: {text}");
    }

    #[test]
    fn a_connection_string_without_a_key_is_refused() {
        let env = MapEnv::from_pairs([(ENV_CONNECTION, "Endpoint=sb://ns/")]);
        let err = bus_choice(&env).unwrap_err();
        assert_eq!(err.kind(), RuntimeErrorKind::Config);
        assert!(err.to_string().contains("SharedAccessKey"), "{err}");
    }

    #[cfg(not(feature = "azure-identity"))]
    #[test]
    fn a_namespace_without_credential_support_is_a_config_error_naming_it() {
        let env = MapEnv::from_pairs([(ENV_NAMESPACE, "fleet.servicebus.windows.net")]);
        let err = bus_choice(&env).unwrap_err();
        assert_eq!(err.kind(), RuntimeErrorKind::Config);
        let text = err.to_string();
        assert!(text.contains(ENV_NAMESPACE), "{text}");
        assert!(text.contains("azure-identity"), "{text}");
    }

    #[test]
    fn an_unknown_credential_kind_is_a_config_error_naming_it() {
        let env = MapEnv::from_pairs([
            (ENV_NAMESPACE, "fleet.servicebus.windows.net"),
            ("FLEET_SERVICEBUS_CREDENTIAL", "password"),
        ]);
        let err = bus_choice(&env).unwrap_err();
        assert_eq!(err.kind(), RuntimeErrorKind::Config);
        assert!(err.to_string().contains("password"), "{err}");
    }
}
