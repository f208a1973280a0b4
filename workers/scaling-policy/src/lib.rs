//! `fleet-worker-scaling-policy`: evaluates each service's `ScalingPolicy` against live metrics
//! and applies replica changes.
//!
//! Start at [`definition`]. A timer (every 60 s) walks every configured environment as its
//! owning tenant; `HealthCheckCompleted` evaluates the policies of the service it names. For
//! each enabled policy ([`decide`]): hold while a rollout of the service is in flight (a
//! `RuntimeDeployment` in `Applying` or `Verifying`), hold inside the cooldown after the last
//! action, read the metric (Azure Monitor, average over the last intervals), compute the
//! desired count the way Kubernetes' HPA does (`ceil(current × value / target)`, within a 10 %
//! tolerance, clamped to the bounds), and do nothing when already at target. A change scales the
//! service, records the action on the policy and emits `ScalingPolicyApplied`. The idempotency
//! key is `serviceId + desired replicas` (scoped to the policy's last action). Retries: 4.

mod decide;
mod handlers;
mod settings;

use std::sync::Arc;

use fleet_cloud::{ComputeSet, Metrics};
use fleet_envelope::EventType;
use fleet_runtime::{RetryPolicy, RuntimeError, WorkerDefinition};
use fleet_worker_support::Environments;
use fleet_worker_support::local::LocalCloud;

pub use decide::{azure_metric, decide, desired_replicas};
pub use handlers::{on_health_check, on_timer};
pub use settings::{ENV_PERIOD_SECS, ENV_TOLERANCE_PERCENT, Settings};

/// The worker's name (subscription, inbox scope, `source` of emitted events).
pub const NAME: &str = "scaling-policy";

/// The event types the worker's subscription receives.
pub const SUBSCRIBED: &[EventType] = &[EventType::HealthCheckCompleted];

/// The timer's name.
pub const TIMER: &str = "evaluate";

/// §5: four attempts.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::attempts(4)
}

/// What the handlers act through.
#[derive(Clone)]
pub struct Ports {
    /// The compute control planes (current replicas, scale).
    pub computes: ComputeSet,
    /// Azure Monitor metrics.
    pub metrics: Arc<dyn Metrics>,
    /// The environments the timer visits.
    pub environments: Environments,
    /// Period and tolerance.
    pub settings: Settings,
    /// Keeps a local sandbox (and its endpoint server) alive when the binary runs on one.
    pub local: Option<LocalCloud>,
}

impl Ports {
    /// Ports over given control planes and metrics.
    pub fn new(
        computes: ComputeSet,
        metrics: Arc<dyn Metrics>,
        environments: Environments,
        settings: Settings,
    ) -> Self {
        Ports {
            computes,
            metrics,
            environments,
            settings,
            local: None,
        }
    }

    /// Ports over the local sandbox cloud.
    pub fn local(settings: Settings, environments: Environments, cloud: LocalCloud) -> Self {
        let mut ports = Ports::new(cloud.computes(), cloud.metrics(), environments, settings);
        ports.local = Some(cloud);
        ports
    }
}

/// The worker: the evaluation timer plus `HealthCheckCompleted`.
pub fn definition(settings: &Settings) -> Result<WorkerDefinition<Ports>, RuntimeError> {
    WorkerDefinition::builder(NAME)
        .retry(retry_policy())
        .ordering_key(handlers::ordering_key)
        .timer(TIMER, settings.period, |tick, ctx| {
            Box::pin(on_timer(tick, ctx))
        })
        .on(EventType::HealthCheckCompleted, |env, ctx| {
            Box::pin(on_health_check(env, ctx))
        })
        .build()
}
