//! Payload of the drift event.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What kind of difference was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DriftKind {
    /// A different image (tag or digest) is running.
    Image,
    /// A different replica count is running.
    Replicas,
    /// A configuration value or version differs.
    Configuration,
    /// Some other resource setting differs.
    Setting,
    /// A desired resource does not exist.
    MissingResource,
    /// A live resource is in no desired-state source.
    UnmanagedResource,
}

/// Where the desired state came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DesiredStateSource {
    /// Manifests in a Git repository.
    Git,
    /// A Pulumi stack export.
    Pulumi,
}

/// Whether the finding still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FindingStatus {
    /// Live state still differs.
    Open,
    /// Live state matches again; the finding is closed.
    Resolved,
}

/// `RuntimeDriftDetected` v1: one finding, new, seen again (merged) or resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeDriftDetected {
    /// The finding record's id.
    #[schemars(length(min = 1))]
    pub finding_id: String,
    /// SHA-256 (lowercase hex) of what identifies the finding; with `environmentId` it is the
    /// worker's idempotency key, so the same drift seen twice is merged.
    #[schemars(pattern(r"^[0-9a-f]{64}$"))]
    pub finding_hash: String,
    /// The service, when the resource belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub service_id: Option<String>,
    /// The drifting resource (an ARM id or `namespace/kind/name`).
    #[schemars(length(min = 1))]
    pub resource_id: String,
    /// What differs.
    pub kind: DriftKind,
    /// The desired value (any JSON; null when the resource should not exist).
    pub desired: serde_json::Value,
    /// The live value (any JSON; null when the resource does not exist).
    pub actual: serde_json::Value,
    /// Where the desired state came from.
    pub desired_source: DesiredStateSource,
    /// Open or resolved.
    pub status: FindingStatus,
    /// How many passes have seen it (duplicates are merged, not re-raised).
    #[schemars(range(min = 1))]
    pub occurrences: u32,
    /// First pass that saw it.
    #[serde(serialize_with = "crate::envelope::serialize_time")]
    pub first_seen_at: DateTime<Utc>,
    /// Latest pass that saw it.
    #[serde(serialize_with = "crate::envelope::serialize_time")]
    pub last_seen_at: DateTime<Utc>,
}
