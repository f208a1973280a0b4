//! `fleet-worker-runtime-health`: liveness, readiness and dependency probes of every running
//! service, once per 30-second window.
//!
//! Start at [`definition`]. The timer walks every configured environment as its owning tenant,
//! asks the compute control planes for each service's probe endpoints, probes them all over
//! HTTP with bounded concurrency ([`probe`]; 3 tries per probe), and turns each service's probes
//! into a verdict ([`verdict`]): a window whose liveness or readiness probe failed counts
//! towards `consecutiveFailedWindows`; the service is `degraded` after a threshold of failed
//! windows (or when only a dependency fails) and `unhealthy` after a second threshold. The
//! `HealthCheckResult` record (one per service) keeps the latest window only — an older window
//! never overwrites a newer one — and each evaluation emits `HealthCheckCompleted`. The
//! idempotency key is `serviceId + window`. Deployment and inventory events evaluate the
//! service they name in the current window (a no-op when the window was already evaluated).

mod handlers;
pub mod probe;
mod settings;
pub mod verdict;

use fleet_cloud::{ComputeSet, HealthProber};
use fleet_envelope::EventType;
use fleet_runtime::{RetryPolicy, RuntimeError, WorkerDefinition};
use fleet_worker_support::Environments;
use fleet_worker_support::local::LocalCloud;

pub use handlers::{on_event, on_timer};
pub use settings::{
    ENV_DEGRADED_AFTER, ENV_PERIOD_SECS, ENV_PROBE_CONCURRENCY, ENV_PROBE_TIMEOUT_MS,
    ENV_UNHEALTHY_AFTER, Settings,
};

/// The worker's name (subscription, inbox scope, `source` of emitted events).
pub const NAME: &str = "runtime-health";

/// The dependency events: a service that was just deployed or whose inventory changed is
/// evaluated without waiting for the next window.
pub const SUBSCRIBED: &[EventType] = &[
    EventType::RuntimeDeploymentCompleted,
    EventType::RuntimeInventoryUpdated,
];

/// The timer's name.
pub const TIMER: &str = "probe";

/// Message retries (probe retries are separate: 3 tries per probe inside one evaluation).
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::attempts(3)
}

/// What the handlers act through.
#[derive(Clone)]
pub struct Ports {
    /// The compute control planes, which report each service's probe endpoints.
    pub computes: ComputeSet,
    /// The HTTP prober (timeout and tries per probe).
    pub prober: HealthProber,
    /// The environments the timer visits.
    pub environments: Environments,
    /// Thresholds, window and concurrency.
    pub settings: Settings,
    /// Keeps a local sandbox (and its endpoint server) alive when the binary runs on one.
    pub local: Option<LocalCloud>,
}

impl Ports {
    /// Ports over given control planes; the prober is built from `settings`.
    pub fn new(
        computes: ComputeSet,
        environments: Environments,
        settings: Settings,
    ) -> Result<Self, RuntimeError> {
        let prober = HealthProber::new(settings.probe_config()).map_err(|e| {
            RuntimeError::new(
                fleet_runtime::RuntimeErrorKind::Definition,
                "building the prober",
            )
            .with_source(e)
        })?;
        Ok(Ports {
            computes,
            prober,
            environments,
            settings,
            local: None,
        })
    }

    /// Ports over the local sandbox cloud.
    pub fn local(
        settings: Settings,
        environments: Environments,
        cloud: LocalCloud,
    ) -> Result<Self, RuntimeError> {
        let mut ports = Ports::new(cloud.computes(), environments, settings)?;
        ports.local = Some(cloud);
        Ok(ports)
    }
}

/// The worker: the probe timer plus dependency events.
pub fn definition(settings: &Settings) -> Result<WorkerDefinition<Ports>, RuntimeError> {
    WorkerDefinition::builder(NAME)
        .retry(retry_policy())
        .ordering_key(handlers::ordering_key)
        .timer(TIMER, settings.period, |tick, ctx| {
            Box::pin(on_timer(tick, ctx))
        })
        .on(EventType::RuntimeDeploymentCompleted, |env, ctx| {
            Box::pin(on_event(env, ctx))
        })
        .on(EventType::RuntimeInventoryUpdated, |env, ctx| {
            Box::pin(on_event(env, ctx))
        })
        .build()
}
