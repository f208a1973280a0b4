//! Fleet's control-plane ports.
//!
//! Workers act on Azure through the traits here, held as `Arc<dyn …>`: [`Compute`] (one per
//! [`PlatformKind`], gathered in a [`ComputeSet`]), [`Metrics`] (Azure Monitor), [`Vault`]
//! (Key Vault) and [`DesiredState`] (Git manifests or a Pulumi export). Every call carries a
//! [`Scope`] and every failure is a [`CloudError`] whose [`kind`](CloudError::kind) drives the
//! retry policy. Start with [`Compute`].
//!
//! The crate also holds what workers share on top of the ports: the HTTP health prober
//! ([`probe::HealthProber`]) and the drift comparison ([`drift::diff`]).
//!
//! `fleet-sandbox` implements every port over simulated workloads; the Azure adapters implement
//! them over ARM, the Kubernetes API, Key Vault and Monitor (see `docs/cloud.md`).

mod compute;
pub mod conformance;
pub mod desired;
pub mod drift;
mod error;
mod metrics;
mod model;
pub mod probe;
mod vault;

pub use compute::{Compute, ComputeSet};
pub use desired::{DesiredSource, DesiredState, Limits, ManifestDir, PulumiExport};
pub use drift::{DiffOptions, DriftItem, DriftKind, ReplicaCheck, diff, diff_with};
pub use error::{CloudError, CloudErrorKind};
pub use metrics::{Aggregation, MetricPoint, MetricQuery, Metrics, names as metric_names};
pub use model::{
    ObservedService, Operation, OperationKind, OperationStatus, PlatformKind, ProvisioningState,
    Scope, SecretBindingRef, ServiceEndpoints, ServiceSpec,
};
pub use probe::{HealthProber, ProbeConfig, ProbeResult, ProbeStatus};
pub use vault::{SecretBundle, SecretValue, SecretVersionInfo, Vault};
