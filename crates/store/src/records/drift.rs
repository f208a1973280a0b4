//! `RuntimeDriftFinding`: a difference between desired and actual state.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::impl_record;

/// Whether the drift is still there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingStatus {
    /// Seen on the last pass.
    Open,
    /// No longer seen.
    Resolved,
}

/// A drift finding; duplicates merge into one record (id = finding hash).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDriftFinding {
    /// Record id; the finding hash.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Environment.
    pub environment_id: String,
    /// Stable hash of (resource, kind, path), part of the idempotency key.
    pub finding_hash: String,
    /// The service concerned, if any.
    #[serde(default)]
    pub service_id: Option<String>,
    /// The resource concerned.
    pub resource: String,
    /// Kind of drift (e.g. `missing`, `unmanaged`, `imageChanged`, `replicasChanged`).
    pub kind: String,
    /// Desired value.
    pub desired: serde_json::Value,
    /// Actual value.
    pub actual: serde_json::Value,
    /// Times seen.
    pub count: u64,
    /// First seen.
    pub first_seen: DateTime<Utc>,
    /// Last seen.
    pub last_seen: DateTime<Utc>,
    /// Open or resolved.
    pub status: FindingStatus,
    /// When it was resolved.
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
}

impl_record!(RuntimeDriftFinding, DriftFinding);
