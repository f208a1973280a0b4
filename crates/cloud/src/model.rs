//! The types the ports speak: scope, platform kinds, desired specs, observed state, operations.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::CloudError;

/// Who is asking and where: every port call carries one, and adapters refuse to reach outside it.
///
/// A resource of another tenant is reported as [`NotFound`](crate::CloudErrorKind::NotFound),
/// never as forbidden, so a caller cannot probe for other tenants' resource names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// The tenant that owns the environment (the envelope's `tenantId`).
    pub tenant_id: String,
    /// The environment acted on (the envelope's `environmentId`).
    pub environment_id: String,
}

impl Scope {
    /// A scope for `tenant_id` / `environment_id`.
    pub fn new(tenant_id: impl Into<String>, environment_id: impl Into<String>) -> Self {
        Scope {
            tenant_id: tenant_id.into(),
            environment_id: environment_id.into(),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant_id, self.environment_id)
    }
}

/// The Azure compute a service runs on; each kind has its own [`Compute`](crate::Compute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlatformKind {
    /// Azure Kubernetes Service (a Deployment, changed by server-side apply).
    Aks,
    /// Azure Container Apps (`Microsoft.App/containerApps`).
    #[serde(alias = "containerApps")]
    ContainerApps,
    /// Azure Functions (`Microsoft.Web/sites`, kind `functionapp`).
    Functions,
    /// Azure App Service (`Microsoft.Web/sites`, kind `app`).
    #[serde(alias = "appService")]
    AppService,
}

impl PlatformKind {
    /// Every platform kind, in a stable order.
    pub const ALL: [PlatformKind; 4] = [
        PlatformKind::Aks,
        PlatformKind::ContainerApps,
        PlatformKind::Functions,
        PlatformKind::AppService,
    ];

    /// The wire name (`aks`, `containerapps`, `functions`, `appservice`).
    pub fn as_str(&self) -> &'static str {
        match self {
            PlatformKind::Aks => "aks",
            PlatformKind::ContainerApps => "containerapps",
            PlatformKind::Functions => "functions",
            PlatformKind::AppService => "appservice",
        }
    }
}

impl fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PlatformKind {
    type Err = CloudError;

    /// Accepts the wire names case-insensitively, with or without `-`/`_` (`container-apps`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        match norm.as_str() {
            "aks" | "kubernetes" => Ok(PlatformKind::Aks),
            "containerapps" | "containerapp" | "aca" => Ok(PlatformKind::ContainerApps),
            "functions" | "functionapp" => Ok(PlatformKind::Functions),
            "appservice" | "webapp" => Ok(PlatformKind::AppService),
            _ => Err(CloudError::invalid(format!(
                "unknown platform {s:?} (expected aks, containerapps, functions or appservice)"
            ))),
        }
    }
}

/// The desired shape of one service: what a deployment applies and what drift compares against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service id, unique within the environment (e.g. `orders-api`).
    pub id: String,
    /// The environment the service belongs to.
    pub environment_id: String,
    /// Where it runs.
    pub platform: PlatformKind,
    /// Container image reference (`registry/repo:tag` or `@sha256:…`).
    pub image: String,
    /// Desired replica count; 0 parks the service.
    pub replicas: u32,
    /// The runtime configuration the service carries, when it carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_id: Option<String>,
    /// The configuration version it should run with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_version: Option<u64>,
    /// Secret bindings: binding id → Key Vault secret name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_bindings: BTreeMap<String, String>,
    /// Free-form labels (owner, tier…); not compared for drift.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl ServiceSpec {
    /// A spec with no configuration, secrets or labels.
    pub fn new(
        id: impl Into<String>,
        environment_id: impl Into<String>,
        platform: PlatformKind,
        image: impl Into<String>,
        replicas: u32,
    ) -> Self {
        ServiceSpec {
            id: id.into(),
            environment_id: environment_id.into(),
            platform,
            image: image.into(),
            replicas,
            configuration_id: None,
            config_version: None,
            secret_bindings: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }
}

/// Where to reach a service's probes (absolute `http(s)://` URLs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceEndpoints {
    /// Liveness probe URL.
    pub liveness: Option<String>,
    /// Readiness probe URL.
    pub readiness: Option<String>,
    /// Dependency probe URLs, by dependency name.
    pub dependencies: BTreeMap<String, String>,
}

/// The secret version a binding currently resolves to on the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBindingRef {
    /// Key Vault secret name.
    pub secret_name: String,
    /// Key Vault secret version the workload reads.
    pub version: String,
}

/// The control plane's provisioning state of a resource (ARM's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum ProvisioningState {
    /// First creation in progress.
    Creating,
    /// A change is rolling out.
    Updating,
    /// The last change finished.
    Succeeded,
    /// The last change failed.
    Failed,
    /// Deletion in progress.
    Deleting,
}

/// What the control plane reports about one service right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedService {
    /// Service id.
    pub id: String,
    /// Environment it runs in.
    pub environment_id: String,
    /// Where it runs.
    pub platform: PlatformKind,
    /// The platform's id of the resource (an ARM id, or `namespace/deployments/name` on AKS).
    pub resource_id: String,
    /// Image actually running.
    pub image: String,
    /// Replicas the platform runs (the spec's count once a change converged).
    pub replicas: u32,
    /// Replicas that pass readiness.
    pub ready_replicas: u32,
    /// Configuration applied to the workload, when any.
    pub configuration_id: Option<String>,
    /// Configuration version applied to the workload, when any.
    pub config_version: Option<u64>,
    /// Secret versions the workload's bindings resolve to, by binding id.
    pub secret_versions: BTreeMap<String, SecretBindingRef>,
    /// Probe URLs.
    pub endpoints: ServiceEndpoints,
    /// The provisioning state of the last change.
    pub provisioning_state: ProvisioningState,
    /// Bumped by every change that altered the resource (kube's `metadata.generation`).
    pub generation: u64,
    /// Labels as the platform stores them.
    pub labels: BTreeMap<String, String>,
}

/// The state of a long-running operation (ARM's `Azure-AsyncOperation` status values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum OperationStatus {
    /// Still running: poll again after `poll_after`.
    InProgress,
    /// Finished and the change is live.
    Succeeded,
    /// Finished and the change did not take (see `error`).
    Failed,
    /// Superseded by a later change before it finished.
    Canceled,
}

impl OperationStatus {
    /// True once the operation will not change any more.
    pub fn is_terminal(&self) -> bool {
        !matches!(self, OperationStatus::InProgress)
    }
}

/// What a long-running operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OperationKind {
    /// Create or update from a spec.
    Apply,
    /// Change the replica count.
    Scale,
    /// Apply a configuration version.
    Configure,
    /// Point a secret binding at a new version.
    RefreshSecret,
    /// Remove the service.
    Delete,
}

/// A long-running operation handle, returned by every mutating [`Compute`](crate::Compute) call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Opaque id the control plane knows the operation by (poll with it).
    pub id: String,
    /// What the operation does.
    pub kind: OperationKind,
    /// The service it acts on.
    pub service_id: String,
    /// Where it stands.
    pub status: OperationStatus,
    /// False when the request matched the current state, so nothing was changed (and the
    /// operation is already `Succeeded`).
    pub changed: bool,
    /// The resource generation the operation produces.
    pub generation: u64,
    /// When the control plane accepted it.
    pub started_at: DateTime<Utc>,
    /// The control plane's hint for the next poll (ARM's `Retry-After` on the status URL).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_millis")]
    pub poll_after: Option<Duration>,
    /// Why it failed (never a secret value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Operation {
    /// True once the operation finished successfully.
    pub fn succeeded(&self) -> bool {
        self.status == OperationStatus::Succeeded
    }
}

mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_parses_its_aliases_and_rejects_unknown_names() {
        assert_eq!(
            "container-apps".parse::<PlatformKind>().ok(),
            Some(PlatformKind::ContainerApps)
        );
        assert_eq!(
            "AppService".parse::<PlatformKind>().ok(),
            Some(PlatformKind::AppService)
        );
        let err = "lambda"
            .parse::<PlatformKind>()
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("\"lambda\"")));
        for p in PlatformKind::ALL {
            assert_eq!(p.as_str().parse::<PlatformKind>().ok(), Some(p));
        }
    }
}
