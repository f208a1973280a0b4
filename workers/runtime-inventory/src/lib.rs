//! `fleet-worker-runtime-inventory`: keeps the `RuntimeService` records equal to what the
//! compute control planes report.
//!
//! Start at [`definition`]. A timer (every 2 minutes) walks every configured environment
//! ([`fleet_worker_support::Environments`]) as its owning tenant, lists the services of every
//! platform and converges the records ([`reconcile::reconcile`], a pure function over records and
//! observations); `RuntimeDeploymentCompleted` and `ScalingPolicyApplied` converge the one
//! service they name. The loop is convergent: unchanged state writes nothing and emits nothing;
//! each changed service gets one `RuntimeInventoryUpdated` (`added`, `updated` with the changed
//! fields, or `removed`). Writes are conditional on the record version, so two passes over one
//! service cannot both win. Retries: 3 attempts, waiting at least the control plane's
//! `Retry-After` when throttled.

mod handlers;
pub mod reconcile;
mod settings;

use fleet_cloud::ComputeSet;
use fleet_envelope::EventType;
use fleet_runtime::{RetryPolicy, RuntimeError, WorkerDefinition};
use fleet_worker_support::Environments;
use fleet_worker_support::local::LocalCloud;

pub use handlers::{on_event, on_timer};
pub use settings::{ENV_PERIOD_SECS, Settings};

/// The worker's name (subscription, inbox scope, `source` of emitted events).
pub const NAME: &str = "runtime-inventory";

/// The event types the worker's subscription receives (deployment and scale events).
pub const SUBSCRIBED: &[EventType] = &[
    EventType::RuntimeDeploymentCompleted,
    EventType::ScalingPolicyApplied,
];

/// The timer's name.
pub const TIMER: &str = "reconcile";

/// §5: three attempts; throttled attempts wait at least `Retry-After`.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::attempts(3)
}

/// What the handlers act through.
#[derive(Clone)]
pub struct Ports {
    /// The compute control planes, one per platform kind.
    pub computes: ComputeSet,
    /// The environments the timer visits.
    pub environments: Environments,
    /// The loop period.
    pub settings: Settings,
    /// Keeps a local sandbox (and its endpoint server) alive when the binary runs on one.
    pub local: Option<LocalCloud>,
}

impl Ports {
    /// Ports over given control planes.
    pub fn new(computes: ComputeSet, environments: Environments, settings: Settings) -> Self {
        Ports {
            computes,
            environments,
            settings,
            local: None,
        }
    }

    /// Ports over the local sandbox cloud.
    pub fn local(settings: Settings, environments: Environments, cloud: LocalCloud) -> Self {
        Ports {
            computes: cloud.computes(),
            environments,
            settings,
            local: Some(cloud),
        }
    }
}

/// The worker: a reconcile timer plus deployment and scale events.
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
        .on(EventType::ScalingPolicyApplied, |env, ctx| {
            Box::pin(on_event(env, ctx))
        })
        .build()
}
