//! The seven workers, built from their crates' definitions and ports and run over the fleet's
//! shared store, observed bus and clock.

use std::sync::Arc;
use std::time::Duration;

use fleet_bus::Bus;
use fleet_cloud::ManifestDir;
use fleet_runtime::{
    RetryPolicy, RuntimeConfig, RuntimeError, Worker, WorkerDefinition, WorkerStats,
};
use fleet_store::Store;
use fleet_worker_support::Environments;
use fleet_worker_support::local::LocalCloud;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::FleetClock;
use crate::error::LocalError;
use crate::topology::TOPIC;

/// The workers of the catalog, in the order they are started.
pub const WORKERS: &[&str] = &[
    "runtime-deployment",
    "runtime-health",
    "scaling-policy",
    "drift-detection",
    "configuration-sync",
    "secret-rotation",
    "runtime-inventory",
];

/// Hands out a worker's own observed view of the bus, by worker name.
pub type BusFor = Arc<dyn Fn(&str) -> Arc<dyn Bus> + Send + Sync>;

/// What every worker is built over.
pub struct WorkerEnv {
    /// The shared store.
    pub store: Arc<dyn Store>,
    /// Hands each worker its own observed view of the bus.
    pub bus_for: BusFor,
    /// The fleet's clock.
    pub clock: FleetClock,
    /// The sandbox cloud.
    pub cloud: LocalCloud,
    /// The environments the control loops visit.
    pub environments: Environments,
    /// Desired-state manifests for drift detection.
    pub desired_dir: std::path::PathBuf,
    /// Completes when the fleet shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// A worker running in the fleet.
pub struct RunningWorker {
    /// Its name (and subscription).
    pub name: String,
    /// Its live counters.
    pub stats: Arc<WorkerStats>,
    /// Ends when the worker has drained.
    pub handle: JoinHandle<Result<(), RuntimeError>>,
}

fn config(name: &str, retry: RetryPolicy) -> RuntimeConfig {
    let mut c = RuntimeConfig::new(name);
    c.topic = TOPIC.to_owned();
    c.publish_topic = TOPIC.to_owned();
    c.retry = retry;
    // In-flight work is short here; a stuck handler must not hold `fleetctl up` for long.
    c.shutdown_grace = Duration::from_secs(10);
    c.relay_interval = Duration::from_secs(1);
    c
}

fn spawn<P: Send + Sync + 'static>(
    env: &WorkerEnv,
    definition: Result<WorkerDefinition<P>, RuntimeError>,
    ports: P,
) -> Result<RunningWorker, LocalError> {
    let definition =
        definition.map_err(|e| LocalError::component("a worker definition is invalid", e))?;
    let name = definition.name().to_owned();
    let retry = definition.retry();
    let worker = Worker::new(
        definition,
        config(&name, retry),
        env.store.clone(),
        (env.bus_for)(&name),
        Arc::new(ports),
    )
    .with_clock(Arc::new(env.clock.clone()))
    .without_http();
    let stats = worker.stats();
    let mut rx = env.shutdown.clone();
    let handle = tokio::spawn(worker.run(async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }));
    Ok(RunningWorker {
        name,
        stats,
        handle,
    })
}

/// Starts every worker this build has; returns them and the names of catalog workers it lacks.
pub fn start_all(env: &WorkerEnv) -> Result<(Vec<RunningWorker>, Vec<String>), LocalError> {
    use fleet_worker_configuration_sync as config_sync;
    use fleet_worker_drift_detection as drift;
    use fleet_worker_runtime_deployment as deployment;
    use fleet_worker_runtime_health as health;
    use fleet_worker_runtime_inventory as inventory;
    use fleet_worker_scaling_policy as scaling;
    use fleet_worker_secret_rotation as secrets;

    let mut running = vec![
        spawn(
            env,
            deployment::definition(),
            deployment::Ports::local(deployment::Settings::default(), env.cloud.clone()),
        )?,
        spawn(
            env,
            config_sync::definition(),
            config_sync::Ports::local(config_sync::Settings::default(), env.cloud.clone()),
        )?,
        spawn(
            env,
            inventory::definition(&inventory::Settings::default()),
            inventory::Ports::local(
                inventory::Settings::default(),
                env.environments.clone(),
                env.cloud.clone(),
            ),
        )?,
        spawn(
            env,
            health::definition(&health::Settings::default()),
            health::Ports::local(
                health::Settings::default(),
                env.environments.clone(),
                env.cloud.clone(),
            )
            .map_err(|e| LocalError::component("building the runtime-health ports", e))?,
        )?,
        spawn(
            env,
            scaling::definition(&scaling::Settings::default()),
            scaling::Ports::local(
                scaling::Settings::default(),
                env.environments.clone(),
                env.cloud.clone(),
            ),
        )?,
        spawn(
            env,
            drift::definition(&drift::Settings::default()),
            drift::Ports::local(
                drift::Settings::default(),
                env.environments.clone(),
                Arc::new(ManifestDir::new(env.desired_dir.clone())),
                env.cloud.clone(),
            ),
        )?,
        spawn(
            env,
            secrets::definition(&secrets::Settings::default()),
            secrets::Ports::local(
                secrets::Settings::default(),
                env.environments.clone(),
                env.cloud.clone(),
            ),
        )?,
    ];
    running.sort_by_key(|w| WORKERS.iter().position(|n| *n == w.name));
    let missing = WORKERS
        .iter()
        .filter(|n| !running.iter().any(|w| w.name == **n))
        .map(|n| (*n).to_owned())
        .collect();
    Ok((running, missing))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{subscribed_types, subscriptions, topology};
    use fleet_emulator::Filter;
    use fleet_envelope::EventType;

    fn names(types: &[EventType]) -> Vec<String> {
        let mut v: Vec<String> = types.iter().map(|t| t.as_str().to_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn config_json_routes_to_each_worker_exactly_the_types_it_handles() {
        let t = topology().expect("Config.json parses");
        assert_eq!(
            subscriptions(&t),
            WORKERS,
            "one subscription per worker, in catalog order"
        );
        let expected = [
            (
                "runtime-deployment",
                fleet_worker_runtime_deployment::SUBSCRIBED,
            ),
            ("runtime-health", fleet_worker_runtime_health::SUBSCRIBED),
            ("scaling-policy", fleet_worker_scaling_policy::SUBSCRIBED),
            ("drift-detection", fleet_worker_drift_detection::SUBSCRIBED),
            (
                "configuration-sync",
                fleet_worker_configuration_sync::SUBSCRIBED,
            ),
            ("secret-rotation", fleet_worker_secret_rotation::SUBSCRIBED),
            (
                "runtime-inventory",
                fleet_worker_runtime_inventory::SUBSCRIBED,
            ),
        ];
        for (worker, handled) in expected {
            assert_eq!(subscribed_types(&t, worker), names(handled), "{worker}");
        }
    }

    #[test]
    fn every_subscription_takes_back_its_own_delayed_retries() {
        let t = topology().expect("Config.json parses");
        for sub in t.topics.iter().flat_map(|t| t.subscriptions.iter()) {
            let retry = sub.rules.iter().any(|r| match &r.filter {
                Filter::Correlation(c) => {
                    c.properties.get(fleet_runtime::PROP_RETRY_FOR)
                        == Some(&fleet_bus::PropertyValue::String(sub.name.clone()))
                }
                _ => false,
            });
            assert!(retry, "{} lacks its fleet-retry-for rule", sub.name);
        }
    }
}
