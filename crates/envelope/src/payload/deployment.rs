//! Payloads of the deployment events.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Azure compute a service runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Azure Kubernetes Service.
    Aks,
    /// Azure Container Apps.
    Containerapps,
    /// Azure Functions.
    Functions,
    /// Azure App Service.
    Appservice,
}

/// Why a rollout was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeploymentReason {
    /// Someone asked (a deploy command, `fleetctl deploy`).
    Manual,
    /// A new configuration version reached the service.
    ConfigurationSynced,
    /// A secret the service binds was rotated.
    SecretRotated,
    /// Drift was found and the desired state is being re-applied.
    DriftRemediation,
    /// Going back to an earlier deployment.
    Rollback,
}

/// `RuntimeDeploymentRequested` v1: roll `image` out to `serviceId` on `platform`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDeploymentRequested {
    /// The deployment's id; with the step name it is the worker's idempotency key.
    #[schemars(length(min = 1))]
    pub deployment_id: String,
    /// The service being deployed.
    #[schemars(length(min = 1))]
    pub service_id: String,
    /// Where the service runs.
    pub platform: Platform,
    /// The container image reference (registry/repository:tag or @digest).
    #[schemars(length(min = 1))]
    pub image: String,
    /// Desired replica count; 0 parks the service.
    pub replicas: u32,
    /// The configuration the rollout carries, when it carries one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub configuration_id: Option<String>,
    /// The configuration version to apply (with `configurationId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub configuration_version: Option<u64>,
    /// Ids of the secret bindings the workload mounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1)))]
    pub secret_bindings: Vec<String>,
    /// Why the rollout was asked for.
    pub reason: DeploymentReason,
    /// Who or what asked, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub requested_by: Option<String>,
}

/// How a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeploymentOutcome {
    /// The new revision is live and passed its readiness gate.
    Succeeded,
    /// A step failed and nothing was rolled back (there was nothing to go back to).
    Failed,
    /// A step or the readiness gate failed and the previous revision was restored.
    RolledBack,
}

/// `RuntimeDeploymentCompleted` v1: the end of one rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDeploymentCompleted {
    /// The deployment this ends.
    #[schemars(length(min = 1))]
    pub deployment_id: String,
    /// The service deployed.
    #[schemars(length(min = 1))]
    pub service_id: String,
    /// Where it runs.
    pub platform: Platform,
    /// The image that was rolled out.
    #[schemars(length(min = 1))]
    pub image: String,
    /// The replica count asked for.
    pub replicas: u32,
    /// How it ended.
    pub outcome: DeploymentOutcome,
    /// The platform's name for the revision now serving (absent when none is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub revision: Option<String>,
    /// The step that failed (`outcome` failed or rolledBack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub failed_step: Option<String>,
    /// A short reason for the failure; never a secret value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the worker started the rollout.
    #[serde(serialize_with = "crate::envelope::serialize_time")]
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(serialize_with = "crate::envelope::serialize_time")]
    pub completed_at: DateTime<Utc>,
}
