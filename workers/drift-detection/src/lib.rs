//! `fleet-worker-drift-detection`: compares what runs with what Git manifests or a Pulumi stack
//! export say should run, and keeps one finding per difference.
//!
//! Start at [`definition`]. A timer (every 5 minutes) walks every configured environment as its
//! owning tenant; `RuntimeDeploymentCompleted`, `HealthCheckCompleted` and
//! `RuntimeInventoryUpdated` re-check the environment they name, at most once per minute per
//! environment (health events arrive every 30 s per service). A pass ([`pass`]) reads the
//! desired state, lists the live services of every platform, diffs them
//! (`fleet_cloud::drift::diff`) and merges the differences into `RuntimeDriftFinding` records
//! keyed by finding hash: a new difference opens a finding and emits `RuntimeDriftDetected`; the
//! same difference seen again is merged (count, first/last seen) without an event; a finding no
//! longer seen is resolved (and announced as resolved); a resolved finding seen again reopens.
//! Retries: 3 attempts on transient reads.

mod pass;
mod settings;

use std::sync::Arc;

use fleet_cloud::{ComputeSet, DesiredState};
use fleet_envelope::EventType;
use fleet_runtime::{RetryPolicy, RuntimeError, WorkerDefinition};
use fleet_worker_support::Environments;
use fleet_worker_support::local::LocalCloud;

pub use pass::{CONFIG_ROLLOUT_GRACE, on_event, on_timer, run_pass};
pub use settings::{
    ENV_DESIRED_SOURCE, ENV_EVENT_INTERVAL_SECS, ENV_MANIFEST_DIR, ENV_PERIOD_SECS,
    ENV_PULUMI_ENVIRONMENT, ENV_PULUMI_EXPORT, Settings, desired_state_from_env,
};

/// The worker's name (subscription, inbox scope, `source` of emitted events).
pub const NAME: &str = "drift-detection";

/// The event types the worker's subscription receives.
pub const SUBSCRIBED: &[EventType] = &[
    EventType::RuntimeDeploymentCompleted,
    EventType::HealthCheckCompleted,
    EventType::RuntimeInventoryUpdated,
];

/// The timer's name.
pub const TIMER: &str = "detect";

/// §5: three attempts on transient reads.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::attempts(3)
}

/// What the handlers act through.
#[derive(Clone)]
pub struct Ports {
    /// The compute control planes (live state).
    pub computes: ComputeSet,
    /// Where desired state comes from (Git manifests or a Pulumi export).
    pub desired: Arc<dyn DesiredState>,
    /// The environments the timer visits.
    pub environments: Environments,
    /// Period and event debounce.
    pub settings: Settings,
    /// Keeps a local sandbox (and its endpoint server) alive when the binary runs on one.
    pub local: Option<LocalCloud>,
}

impl Ports {
    /// Ports over given control planes and desired state.
    pub fn new(
        computes: ComputeSet,
        desired: Arc<dyn DesiredState>,
        environments: Environments,
        settings: Settings,
    ) -> Self {
        Ports {
            computes,
            desired,
            environments,
            settings,
            local: None,
        }
    }

    /// Ports over the local sandbox cloud.
    pub fn local(
        settings: Settings,
        environments: Environments,
        desired: Arc<dyn DesiredState>,
        cloud: LocalCloud,
    ) -> Self {
        let mut ports = Ports::new(cloud.computes(), desired, environments, settings);
        ports.local = Some(cloud);
        ports
    }
}

/// The worker: the detection timer plus three re-check events.
pub fn definition(settings: &Settings) -> Result<WorkerDefinition<Ports>, RuntimeError> {
    let mut b = WorkerDefinition::builder(NAME)
        .retry(retry_policy())
        .ordering_key(pass::ordering_key)
        .timer(TIMER, settings.period, |tick, ctx| {
            Box::pin(on_timer(tick, ctx))
        });
    for t in SUBSCRIBED {
        b = b.on(*t, |env, ctx| Box::pin(on_event(env, ctx)));
    }
    b.build()
}
