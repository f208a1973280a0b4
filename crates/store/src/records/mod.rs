//! The platform records the workers keep, as typed documents. Every struct serializes in
//! camelCase; optional fields default when absent so older documents keep decoding after a
//! field is added (schema evolution happens here, in serde, not in SQL).

mod configuration;
mod deployment;
mod drift;
mod health;
mod scaling;
mod secret;
mod service;

pub use configuration::{AppliedConfiguration, RuntimeConfiguration};
pub use deployment::{
    DeploymentSpec, DeploymentState, DeploymentStep, RuntimeDeployment, StepStatus,
};
pub use drift::{FindingStatus, RuntimeDriftFinding};
pub use health::{DependencyResult, HealthCheckResult, HealthStatus, ProbeResult};
pub use scaling::{ScalingAction, ScalingPolicy};
pub use secret::SecretBinding;
pub use service::{ObservedState, PlatformKind, RuntimeService, ServiceEndpoints, ServiceStatus};

/// Implements [`crate::Record`] for a struct with `id`, `tenant_id` and `environment_id`
/// fields.
macro_rules! impl_record {
    ($ty:ty, $kind:ident) => {
        impl $crate::Record for $ty {
            const KIND: $crate::RecordKind = $crate::RecordKind::$kind;
            fn id(&self) -> &str {
                &self.id
            }
            fn tenant_id(&self) -> &str {
                &self.tenant_id
            }
            fn environment_id(&self) -> &str {
                &self.environment_id
            }
        }
    };
}
pub(crate) use impl_record;

#[cfg(test)]
mod tests;
