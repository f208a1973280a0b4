//! Payloads of the health and scaling events.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A service's health, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum HealthStatus {
    /// Every probe passed.
    Healthy,
    /// Probes have failed for fewer windows than the threshold, or only dependencies fail.
    Degraded,
    /// Liveness or readiness failed for at least the threshold of windows.
    Unhealthy,
}

/// The half-open time range `[start, end)` one evaluation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Window {
    /// Inclusive start; with `serviceId` it is the worker's idempotency key.
    #[serde(serialize_with = "crate::envelope::serialize_time")]
    pub start: DateTime<Utc>,
    /// Exclusive end.
    #[serde(serialize_with = "crate::envelope::serialize_time")]
    pub end: DateTime<Utc>,
}

/// What a probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProbeKind {
    /// The process is alive.
    Liveness,
    /// The service accepts traffic.
    Readiness,
    /// Something the service needs answers.
    Dependency,
}

/// The result of one probe within the window (after its retries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    /// What the probe checks.
    pub kind: ProbeKind,
    /// The endpoint probed (an HTTP URL or a dependency name).
    #[schemars(length(min = 1))]
    pub target: String,
    /// Whether it passed.
    pub passed: bool,
    /// Tries used, 1 to the worker's per-probe maximum.
    #[schemars(range(min = 1))]
    pub attempts: u32,
    /// The last try's latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// The last try's HTTP status, when it got one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why the last try failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `HealthCheckCompleted` v1: one evaluation window of one service. The latest window wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckCompleted {
    /// The service evaluated.
    #[schemars(length(min = 1))]
    pub service_id: String,
    /// The window evaluated.
    pub window: Window,
    /// The verdict for the window.
    pub status: HealthStatus,
    /// The verdict of the window before, when there was one (lets consumers act on changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_status: Option<HealthStatus>,
    /// How many windows in a row had a failed liveness or readiness probe.
    #[serde(default)]
    pub consecutive_failed_windows: u32,
    /// Every probe's result.
    pub probes: Vec<ProbeResult>,
}

/// The metric reading that drove a scaling decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricReading {
    /// The Azure Monitor metric name, e.g. `CpuPercentage`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// The observed value (aggregated over the policy's window).
    pub value: f64,
    /// The policy's threshold that was crossed.
    pub threshold: f64,
}

/// `ScalingPolicyApplied` v1: a policy moved a service from one replica count to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicyApplied {
    /// The service scaled.
    #[schemars(length(min = 1))]
    pub service_id: String,
    /// The policy that decided.
    #[schemars(length(min = 1))]
    pub policy_id: String,
    /// Replicas before.
    pub from_replicas: u32,
    /// Replicas after; with `serviceId` it is the worker's idempotency key.
    pub to_replicas: u32,
    /// Why, in words (e.g. `cpu above 75% for 5m`).
    #[schemars(length(min = 1))]
    pub reason: String,
    /// The reading that drove the decision, when a metric did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricReading>,
    /// No further action on this service before this instant.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::envelope::serialize_opt_time"
    )]
    pub cooldown_until: Option<DateTime<Utc>>,
}
