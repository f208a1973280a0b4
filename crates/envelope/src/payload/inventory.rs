//! Payload of the inventory event.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::deployment::Platform;

/// How the service's record changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum InventoryChange {
    /// The control plane reports a service the records did not have.
    Added,
    /// Some observed fields changed (named in `changedFields`).
    Updated,
    /// The control plane no longer reports it.
    Removed,
}

/// What the control plane reports for a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservedRuntime {
    /// The running image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub image: Option<String>,
    /// Running replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// The platform's revision name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub revision: Option<String>,
    /// The platform's provisioning state, verbatim (e.g. `Succeeded`, `Provisioning`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub provisioning_state: Option<String>,
}

/// `RuntimeInventoryUpdated` v1: the record of one service converged to what its control plane
/// reports. One event per changed service keeps each event small at any fleet size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeInventoryUpdated {
    /// The service; it is also the worker's idempotency key.
    #[schemars(length(min = 1))]
    pub service_id: String,
    /// Where it runs.
    pub platform: Platform,
    /// The control plane's id for it (an ARM id or `namespace/kind/name`).
    #[schemars(length(min = 1))]
    pub resource_id: String,
    /// How the record changed.
    pub change: InventoryChange,
    /// The camelCase names of the observed fields that changed (for `updated`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(length(min = 1)))]
    pub changed_fields: Vec<String>,
    /// What is observed now; absent when `removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedRuntime>,
}
