//! Payloads of the secret rotation events. None of them ever carries a secret value.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a rotation was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RotationReason {
    /// The rotation schedule came due.
    Scheduled,
    /// The current version expires soon.
    Expiring,
    /// Someone asked.
    Manual,
    /// The value is believed leaked: rotate now, disable the old version without a grace.
    Compromised,
}

/// `SecretRotationRequested` v1: rotate one secret binding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotationRequested {
    /// The binding to rotate.
    #[schemars(length(min = 1))]
    pub secret_binding_id: String,
    /// Why.
    pub reason: RotationReason,
    /// Who or what asked, for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub requested_by: Option<String>,
    /// How long the previous version stays enabled; absent means the worker's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u32>,
}

/// `SecretRotated` v1: a new Key Vault version exists and the bindings were refreshed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotated {
    /// The binding rotated.
    #[schemars(length(min = 1))]
    pub secret_binding_id: String,
    /// The Key Vault holding the secret.
    #[schemars(length(min = 1))]
    pub vault_name: String,
    /// The secret's name in the vault.
    #[schemars(length(min = 1))]
    pub vault_secret_name: String,
    /// The new Key Vault version id; with `secretBindingId` it is the worker's idempotency key.
    #[schemars(length(min = 1))]
    pub new_version: String,
    /// The version replaced (absent on a first rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub previous_version: Option<String>,
    /// The services whose bindings were refreshed.
    #[serde(default)]
    #[schemars(inner(length(min = 1)))]
    pub service_ids: Vec<String>,
    /// When the previous version will be disabled.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::envelope::serialize_opt_time"
    )]
    pub previous_version_disabled_at: Option<DateTime<Utc>>,
}

/// `SecretRotationFailed` v1, the alert: rotation failed `attempts` times in a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotationFailed {
    /// The binding that could not be rotated.
    #[schemars(length(min = 1))]
    pub secret_binding_id: String,
    /// The secret's name in the vault, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub vault_secret_name: Option<String>,
    /// Tries so far.
    #[schemars(range(min = 1))]
    pub attempts: u32,
    /// The last error, redacted (never a secret value).
    #[schemars(length(min = 1))]
    pub last_error: String,
    /// When the first try of this run failed.
    #[serde(serialize_with = "crate::envelope::serialize_time")]
    pub first_failure_at: DateTime<Utc>,
    /// When the last try failed.
    #[serde(serialize_with = "crate::envelope::serialize_time")]
    pub last_failure_at: DateTime<Utc>,
}
