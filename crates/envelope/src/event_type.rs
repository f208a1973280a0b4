//! The event catalog's names.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One name of the event catalog (DESIGN §3). The wire form is the variant name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum EventType {
    /// A command to roll a service out (from outside, or from a worker reacting to a change).
    RuntimeDeploymentRequested,
    /// A rollout finished: succeeded, failed or rolled back.
    RuntimeDeploymentCompleted,
    /// One health evaluation window of one service.
    HealthCheckCompleted,
    /// A scaling policy changed a service's replica count.
    ScalingPolicyApplied,
    /// Live state differs from desired state (Git manifests or a Pulumi stack).
    RuntimeDriftDetected,
    /// A new runtime configuration version is available.
    ConfigurationPublished,
    /// A configuration version reached (or failed to reach) one service.
    ConfigurationSynced,
    /// A command to rotate one secret binding.
    SecretRotationRequested,
    /// A secret got a new Key Vault version and its bindings were refreshed.
    SecretRotated,
    /// The alert: rotating a secret failed repeatedly.
    SecretRotationFailed,
    /// The live inventory of one service changed.
    RuntimeInventoryUpdated,
}

impl EventType {
    /// Every event type, in catalog order.
    pub const ALL: [EventType; 11] = [
        EventType::RuntimeDeploymentRequested,
        EventType::RuntimeDeploymentCompleted,
        EventType::HealthCheckCompleted,
        EventType::ScalingPolicyApplied,
        EventType::RuntimeDriftDetected,
        EventType::ConfigurationPublished,
        EventType::ConfigurationSynced,
        EventType::SecretRotationRequested,
        EventType::SecretRotated,
        EventType::SecretRotationFailed,
        EventType::RuntimeInventoryUpdated,
    ];

    /// The wire name, e.g. `"RuntimeDeploymentRequested"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RuntimeDeploymentRequested => "RuntimeDeploymentRequested",
            EventType::RuntimeDeploymentCompleted => "RuntimeDeploymentCompleted",
            EventType::HealthCheckCompleted => "HealthCheckCompleted",
            EventType::ScalingPolicyApplied => "ScalingPolicyApplied",
            EventType::RuntimeDriftDetected => "RuntimeDriftDetected",
            EventType::ConfigurationPublished => "ConfigurationPublished",
            EventType::ConfigurationSynced => "ConfigurationSynced",
            EventType::SecretRotationRequested => "SecretRotationRequested",
            EventType::SecretRotated => "SecretRotated",
            EventType::SecretRotationFailed => "SecretRotationFailed",
            EventType::RuntimeInventoryUpdated => "RuntimeInventoryUpdated",
        }
    }

    /// The payload versions this build can read and write; every type is at version 1 today.
    pub fn supported_versions(self) -> &'static [u32] {
        &[1]
    }

    /// The version new events are written with.
    pub fn current_version(self) -> u32 {
        1
    }

    /// Whether `version` of this type can be decoded.
    pub fn supports_version(self, version: u32) -> bool {
        self.supported_versions().contains(&version)
    }

    /// The catalog names joined by `, `, for error messages.
    pub fn names() -> String {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        names.join(", ")
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a name outside the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown event type {name:?} (expected one of: {})",
    EventType::names()
)]
pub struct UnknownEventType {
    /// The name that was given.
    pub name: String,
}

impl FromStr for EventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_type() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
            assert_eq!(
                serde_json::to_value(t).ok(),
                Some(serde_json::json!(t.as_str()))
            );
        }
    }

    #[test]
    fn unknown_name_error_lists_the_catalog() {
        let err = "Nope"
            .parse::<EventType>()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("\"Nope\""), "{err}");
        assert!(err.contains("SecretRotationFailed"), "{err}");
    }
}
