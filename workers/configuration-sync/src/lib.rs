//! `fleet-worker-configuration-sync`: propagates versioned runtime configuration to the
//! workloads that use it.
//!
//! Start at [`definition`]: one handler for `ConfigurationPublished` ([`handler`]). For every
//! target service it applies the version through the service's compute control plane, records
//! the version in the `RuntimeConfiguration` record and emits `ConfigurationSynced`. The
//! idempotency key is `configurationId + serviceId + version`: a version already applied to a
//! service is a no-op (no control-plane call, no event), and an older version never rolls a
//! service back. Retries: 5 attempts, then dead-letter. [`Ports`] holds the compute control
//! planes; [`Settings`] the worker's variables.

pub mod handler;
mod settings;

use fleet_cloud::ComputeSet;
use fleet_envelope::EventType;
use fleet_runtime::{RetryPolicy, RuntimeError, WorkerDefinition};
use fleet_worker_support::local::LocalCloud;

pub use settings::{ENV_OPERATION_TIMEOUT_SECS, Settings};

/// The worker's name (subscription, inbox scope, `source` of emitted events).
pub const NAME: &str = "configuration-sync";

/// The event types the worker's subscription receives.
pub const SUBSCRIBED: &[EventType] = &[EventType::ConfigurationPublished];

/// §5: five attempts, then the dead-letter queue.
pub fn retry_policy() -> RetryPolicy {
    RetryPolicy::attempts(5)
}

/// What the handler acts through.
#[derive(Clone)]
pub struct Ports {
    /// The compute control planes, one per platform kind.
    pub computes: ComputeSet,
    /// Timeouts and limits.
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

/// The worker: `ConfigurationPublished` → apply per service → `ConfigurationSynced`.
pub fn definition() -> Result<WorkerDefinition<Ports>, RuntimeError> {
    WorkerDefinition::builder(NAME)
        .retry(retry_policy())
        .on(EventType::ConfigurationPublished, |env, ctx| {
            Box::pin(handler::on_published(env, ctx))
        })
        .build()
}
