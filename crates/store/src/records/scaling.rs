//! `ScalingPolicy`: replica bounds, the metric target, and the last action taken.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::impl_record;

/// The last scale action, for cooldown and flapping checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingAction {
    /// When it was applied.
    pub at: DateTime<Utc>,
    /// Replicas before.
    pub from_replicas: u32,
    /// Replicas after.
    pub to_replicas: u32,
    /// Metric value that triggered it.
    #[serde(default)]
    pub metric_value: Option<f64>,
    /// Why (human-readable).
    #[serde(default)]
    pub reason: String,
}

/// A service's scaling policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    /// Policy id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Environment.
    pub environment_id: String,
    /// The service scaled.
    pub service_id: String,
    /// Lower bound.
    pub min_replicas: u32,
    /// Upper bound.
    pub max_replicas: u32,
    /// Metric name (e.g. `cpuPercent`, `requestsPerSecond`).
    pub metric: String,
    /// Target value of the metric per replica.
    pub target: f64,
    /// Minimum seconds between two actions.
    pub cooldown_seconds: u64,
    /// Disabled policies are not evaluated.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// The last action taken.
    #[serde(default)]
    pub last_action: Option<ScalingAction>,
}

fn enabled() -> bool {
    true
}

impl_record!(ScalingPolicy, ScalingPolicy);
