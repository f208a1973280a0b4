//! Payloads of the configuration events.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `ConfigurationPublished` v1: version `version` of a configuration is ready for `serviceIds`.
///
/// The content travels inline (`values`, small non-secret settings) or by reference (`ref`, e.g.
/// an App Configuration snapshot or a blob URL); exactly one of the two is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationPublished {
    /// The configuration's id.
    #[schemars(length(min = 1))]
    pub configuration_id: String,
    /// Monotonic version, from 1.
    #[schemars(range(min = 1))]
    pub version: u64,
    /// The services that use it.
    #[schemars(length(min = 1), inner(length(min = 1)))]
    pub service_ids: Vec<String>,
    /// Inline settings, name → value. Secret values never go here: use a secret binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, String>>,
    /// Where the content is stored, instead of `values`.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub reference: Option<String>,
}

/// What syncing a configuration version to one service did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SyncOutcome {
    /// The version was written to the workload.
    Applied,
    /// The workload already had this version; nothing was done.
    Unchanged,
    /// Applying failed (after retries).
    Failed,
}

/// `ConfigurationSynced` v1: one configuration version against one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationSynced {
    /// The configuration.
    #[schemars(length(min = 1))]
    pub configuration_id: String,
    /// The version synced.
    #[schemars(range(min = 1))]
    pub version: u64,
    /// The service it was synced to.
    #[schemars(length(min = 1))]
    pub service_id: String,
    /// What happened.
    pub outcome: SyncOutcome,
    /// The version the service had before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<u64>,
    /// Whether the workload needs a new revision to pick the values up (the deployment worker
    /// reacts to that).
    #[serde(default)]
    pub restart_required: bool,
    /// Why it failed (`outcome` failed); never a secret value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
