//! `RuntimeConfiguration`: versioned configuration and where each version is applied.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::impl_record;

/// The version applied to one service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedConfiguration {
    /// Version applied.
    pub version: u64,
    /// When.
    pub applied_at: DateTime<Utc>,
}

/// A configuration (id = configuration id) with its latest version and per-service progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfiguration {
    /// Configuration id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Environment.
    pub environment_id: String,
    /// Latest published version.
    pub latest_version: u64,
    /// The latest version's values (plain settings; secrets are references, never values).
    #[serde(default)]
    pub values: serde_json::Map<String, serde_json::Value>,
    /// Services this configuration targets.
    #[serde(default)]
    pub service_ids: Vec<String>,
    /// Version applied per service id.
    #[serde(default)]
    pub applied: BTreeMap<String, AppliedConfiguration>,
    /// When the latest version was published.
    pub published_at: DateTime<Utc>,
}

impl_record!(RuntimeConfiguration, Configuration);
