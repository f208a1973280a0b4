//! `RuntimeService`: one generated workload and what the control plane reports about it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::impl_record;

/// Where a service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformKind {
    /// Azure Kubernetes Service.
    Aks,
    /// Azure Container Apps.
    ContainerApps,
    /// Azure Functions.
    Functions,
    /// Azure App Service.
    AppService,
}

/// The service's status as the inventory last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceStatus {
    /// Declared, not yet observed running.
    #[default]
    Pending,
    /// Running as desired.
    Running,
    /// Running, but health checks fail.
    Degraded,
    /// Scaled to zero or stopped on purpose.
    Stopped,
    /// The platform reports a failure.
    Failed,
    /// Not found on the platform.
    Missing,
}

/// Where to reach a service and its probes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceEndpoints {
    /// The public (or internal) base URL.
    pub url: Option<String>,
    /// Liveness probe URL.
    pub liveness: Option<String>,
    /// Readiness probe URL.
    pub readiness: Option<String>,
    /// Dependencies to probe, by name.
    pub dependencies: BTreeMap<String, String>,
}

/// What the control plane reported on the last inventory pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedState {
    /// Image actually running.
    pub image: String,
    /// Replicas the platform runs.
    pub replicas: u32,
    /// Replicas reporting ready.
    #[serde(default)]
    pub ready_replicas: u32,
    /// Configuration version the workload runs with, when known.
    #[serde(default)]
    pub config_version: Option<u64>,
    /// Platform revision / generation, when it has one.
    #[serde(default)]
    pub revision: Option<String>,
    /// The platform's provisioning state (e.g. `Succeeded`).
    #[serde(default)]
    pub provisioning_state: Option<String>,
    /// When it was observed.
    pub observed_at: DateTime<Utc>,
}

/// One workload of an environment: its desired shape and its observed state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeService {
    /// Service id (e.g. `svc-42`).
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Environment it runs in.
    pub environment_id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Target platform.
    pub platform: PlatformKind,
    /// Platform resource id (ARM id, or `namespace/name` on AKS).
    #[serde(default)]
    pub resource_id: Option<String>,
    /// Desired image.
    pub image: String,
    /// Desired replicas.
    pub replicas: u32,
    /// Desired configuration version.
    #[serde(default)]
    pub config_version: Option<u64>,
    /// Current status.
    #[serde(default)]
    pub status: ServiceStatus,
    /// Endpoints and probes.
    #[serde(default)]
    pub endpoints: ServiceEndpoints,
    /// Last observed state, absent until the first inventory pass.
    #[serde(default)]
    pub observed: Option<ObservedState>,
    /// Free-form labels (owner, tier...).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Last change to this document.
    pub updated_at: DateTime<Utc>,
}

impl_record!(RuntimeService, Service);
