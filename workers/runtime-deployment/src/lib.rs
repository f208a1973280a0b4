//! `fleet-worker-runtime-deployment`: rolls services out to their compute platform through the
//! deployment state machine.
//!
//! Start at [`definition`]. `RuntimeDeploymentRequested` starts a rollout of the requested spec;
//! `ConfigurationSynced` (a new configuration that needs a new revision), `SecretRotated` and
//! `RuntimeDriftDetected` (remediation) start a redeploy of the affected service under a
//! deterministic deployment id ([`triggers`]). Every rollout runs the same machine
//! ([`machine`]): `Requested → Applying(apply) → Verifying (readiness gate) → Succeeded`, or
//! `Failed → RolledBack` when a step or the gate fails and a previous revision exists. Each step
//! is checkpointed with the idempotency key `deploymentId/step`, so a retried delivery skips the
//! steps already done; a finished deployment requested again is a no-op. Every rollout ends
//! with one `RuntimeDeploymentCompleted`. Retries: 5 attempts, then dead-letter.

pub mod machine;
mod settings;
pub mod spec;
pub mod triggers;

use fleet_cloud::ComputeSet;
use fleet_envelope::EventType;
use fleet_runtime::{RetryPolicy, RuntimeError, WorkerDefinition};
use fleet_worker_support::local::LocalCloud;

pub use settings::{ENV_OPERATION_TIMEOUT_SECS, ENV_READINESS_TIMEOUT_SECS, Settings};

/// The worker's name (subscription, inbox scope, `source` of emitted events).
pub const NAME: &str = "runtime-deployment";

/// The event types the worker's subscription receives.
pub const SUBSCRIBED: &[EventType] = &[
    EventType::RuntimeDeploymentRequested,
    EventType::ConfigurationSynced,
    EventType::SecretRotated,
    EventType::RuntimeDriftDetected,
];

/// §5: five attempts, then the dead-letter queue.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::attempts(5)
}

/// What the handlers act through.
#[derive(Clone)]
pub struct Ports {
    /// The compute control planes, one per platform kind.
    pub computes: ComputeSet,
    /// Timeouts of the steps and the readiness gate.
    pub settings: Settings,
    /// Keeps a local sandbox (and its endpoint server) alive when the binary runs on one.
    pub local: Option<LocalCloud>,
}

impl Ports {
    /// Ports over given control planes.
    pub fn new(computes: ComputeSet, settings: Settings) -> Self {
        Ports {
            computes,
            settings,
            local: None,
        }
    }

    /// Ports over the local sandbox cloud.
    pub fn local(settings: Settings, cloud: LocalCloud) -> Self {
        Ports {
            computes: cloud.computes(),
            settings,
            local: Some(cloud),
        }
    }
}

/// The worker: four triggers, one state machine. Work is serialized per service (the ordering
/// key is `tenant/environment/serviceId` where the trigger names one service), so two rollouts
/// of one service never interleave in a replica.
pub fn definition() -> Result<WorkerDefinition<Ports>, RuntimeError> {
    WorkerDefinition::builder(NAME)
        .retry(retry_policy())
        .ordering_key(triggers::ordering_key)
        .on(EventType::RuntimeDeploymentRequested, |env, ctx| {
            Box::pin(triggers::on_requested(env, ctx))
        })
        .on(EventType::ConfigurationSynced, |env, ctx| {
            Box::pin(triggers::on_configuration_synced(env, ctx))
        })
        .on(EventType::SecretRotated, |env, ctx| {
            Box::pin(triggers::on_secret_rotated(env, ctx))
        })
        .on(EventType::RuntimeDriftDetected, |env, ctx| {
            Box::pin(triggers::on_drift_detected(env, ctx))
        })
        .build()
}
