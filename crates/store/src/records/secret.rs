//! `SecretBinding`: a Key Vault secret bound to services, and its rotation state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::impl_record;

/// A Key Vault secret and the services using it. Holds names and versions only, never values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBinding {
    /// Binding id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Environment.
    pub environment_id: String,
    /// Services refreshed on rotation.
    #[serde(default)]
    pub service_ids: Vec<String>,
    /// Key Vault URI (e.g. `https://kv.vault.azure.net`).
    pub vault_uri: String,
    /// Secret name in the vault.
    pub secret_name: String,
    /// Version services should use now.
    #[serde(default)]
    pub current_version: Option<String>,
    /// Version before it, disabled after the grace period.
    #[serde(default)]
    pub previous_version: Option<String>,
    /// When to disable `previous_version`.
    #[serde(default)]
    pub disable_previous_after: Option<DateTime<Utc>>,
    /// Rotation interval in seconds (the rotation schedule).
    pub rotation_interval_seconds: u64,
    /// When the next rotation is due.
    #[serde(default)]
    pub next_rotation_at: Option<DateTime<Utc>>,
    /// When it was last rotated.
    #[serde(default)]
    pub last_rotated_at: Option<DateTime<Utc>>,
    /// Failed rotations in a row; the alert fires at a threshold.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// Last failure reason (never a secret value).
    #[serde(default)]
    pub last_failure: Option<String>,
}

impl_record!(SecretBinding, SecretBinding);
