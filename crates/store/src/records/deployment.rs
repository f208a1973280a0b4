//! `RuntimeDeployment`: a rollout and its state machine.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::impl_record;
use super::service::PlatformKind;

/// The deployment state machine:
/// `Requested → Applying → Verifying → Succeeded | Failed → RolledBack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeploymentState {
    /// Accepted, nothing applied yet.
    Requested,
    /// Applying steps (see `current_step`).
    Applying,
    /// Waiting on the readiness gate.
    Verifying,
    /// Done and verified.
    Succeeded,
    /// Gave up; a rollback may follow.
    Failed,
    /// The previous spec was restored.
    RolledBack,
}

impl DeploymentState {
    /// True for states the machine never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::RolledBack)
    }
}

/// The status of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Not started.
    #[default]
    Pending,
    /// In progress.
    Running,
    /// Completed; re-applying it is a no-op.
    Succeeded,
    /// Failed (see `error`).
    Failed,
    /// Not needed for this deployment.
    Skipped,
}

/// One step of a rollout (e.g. `apply-config`, `apply-image`, `verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStep {
    /// Step name, part of the idempotency key `deploymentId + step`.
    pub name: String,
    /// Status.
    #[serde(default)]
    pub status: StepStatus,
    /// Tries so far.
    #[serde(default)]
    pub attempts: u32,
    /// When it started.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
    /// Last error, if it failed (never a secret value).
    #[serde(default)]
    pub error: Option<String>,
}

/// What a deployment applies; the previous one is kept for rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    /// Target platform.
    pub platform: PlatformKind,
    /// Image to run.
    pub image: String,
    /// Replicas to run.
    pub replicas: u32,
    /// Configuration version to run with.
    #[serde(default)]
    pub config_version: Option<u64>,
    /// Key Vault secret versions by binding id (versions, never values).
    #[serde(default)]
    pub secret_versions: BTreeMap<String, String>,
    /// Plain environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// A rollout of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDeployment {
    /// Deployment id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Environment.
    pub environment_id: String,
    /// The service being deployed.
    pub service_id: String,
    /// State machine position.
    pub state: DeploymentState,
    /// Index into `steps` of the step being applied.
    #[serde(default)]
    pub current_step: Option<usize>,
    /// Steps in order.
    #[serde(default)]
    pub steps: Vec<DeploymentStep>,
    /// What to apply.
    pub spec: DeploymentSpec,
    /// What ran before, restored on rollback.
    #[serde(default)]
    pub previous_spec: Option<DeploymentSpec>,
    /// Whole-deployment attempts (retries of the triggering event).
    #[serde(default)]
    pub attempts: u32,
    /// The event that requested it.
    #[serde(default)]
    pub requested_by_event: Option<Uuid>,
    /// Why it failed, if it did.
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// When it was requested.
    pub requested_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// When it reached a final state.
    #[serde(default)]
    pub completed_at: Option<DateTime<Utc>>,
}

impl_record!(RuntimeDeployment, Deployment);
