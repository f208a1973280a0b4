//! `fleet-worker-secret-rotation`: rotates Key Vault secrets on their schedule or on request.
//!
//! Start at [`definition`]. A rotation ([`rotate`]) writes a new version of the secret to the
//! vault, points every bound service's secret reference at it through its compute control plane,
//! and records the new version on the `SecretBinding`; the previous version stays enabled for a
//! grace period and is disabled by a later pass of the schedule timer (immediately for a
//! `compromised` rotation). Each rotation emits `SecretRotated`. The idempotency key is
//! `secretBindingId + Key Vault version`, and a rotation interrupted after creating its version
//! reuses that version instead of creating another. Failures are counted on the binding; after
//! `alert_after` failures in a row the worker emits the `SecretRotationFailed` alert (and the
//! requesting message completes: the schedule keeps retrying). Retries: 5 attempts.

mod handlers;
pub mod rotate;
mod settings;

use std::sync::Arc;

use fleet_cloud::{ComputeSet, Vault};
use fleet_envelope::EventType;
use fleet_runtime::{RetryPolicy, RuntimeError, WorkerDefinition};
use fleet_worker_support::Environments;
use fleet_worker_support::local::LocalCloud;

pub use handlers::{on_requested, on_timer};
pub use settings::{
    ENV_ALERT_AFTER, ENV_CHECK_PERIOD_SECS, ENV_GRACE_SECS, ENV_OPERATION_TIMEOUT_SECS, Settings,
};

/// The worker's name (subscription, inbox scope, `source` of emitted events).
pub const NAME: &str = "secret-rotation";

/// The event types the worker's subscription receives.
pub const SUBSCRIBED: &[EventType] = &[EventType::SecretRotationRequested];

/// The schedule timer's name.
pub const TIMER: &str = "rotation-schedule";

/// §5: five attempts.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::attempts(5)
}

/// What the handlers act through.
#[derive(Clone)]
pub struct Ports {
    /// The compute control planes (secret references of workloads).
    pub computes: ComputeSet,
    /// Key Vault.
    pub vault: Arc<dyn Vault>,
    /// The environments the schedule visits.
    pub environments: Environments,
    /// Period, grace and alert threshold.
    pub settings: Settings,
    /// Keeps a local sandbox (and its endpoint server) alive when the binary runs on one.
    pub local: Option<LocalCloud>,
}

impl Ports {
    /// Ports over given control planes and vault.
    pub fn new(
        computes: ComputeSet,
        vault: Arc<dyn Vault>,
        environments: Environments,
        settings: Settings,
    ) -> Self {
        Ports {
            computes,
            vault,
            environments,
            settings,
            local: None,
        }
    }

    /// Ports over the local sandbox cloud.
    pub fn local(settings: Settings, environments: Environments, cloud: LocalCloud) -> Self {
        let mut ports = Ports::new(cloud.computes(), cloud.vault(), environments, settings);
        ports.local = Some(cloud);
        ports
    }
}

/// The worker: the rotation schedule plus `SecretRotationRequested`.
pub fn definition(settings: &Settings) -> Result<WorkerDefinition<Ports>, RuntimeError> {
    WorkerDefinition::builder(NAME)
        .retry(retry_policy())
        .ordering_key(handlers::ordering_key)
        .timer(TIMER, settings.check_period, |tick, ctx| {
            Box::pin(on_timer(tick, ctx))
        })
        .on(EventType::SecretRotationRequested, |env, ctx| {
            Box::pin(on_requested(env, ctx))
        })
        .build()
}
