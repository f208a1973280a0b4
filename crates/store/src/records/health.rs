//! `HealthCheckResult`: the latest health evaluation of a service.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::impl_record;

/// Overall health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// All probes pass.
    Healthy,
    /// Failing, but under the unhealthy threshold, or a dependency is failing.
    Degraded,
    /// Failed for at least the threshold of consecutive windows.
    Unhealthy,
}

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeResult {
    /// Whether the probe passed.
    pub ok: bool,
    /// HTTP status, when a response arrived.
    #[serde(default)]
    pub status_code: Option<u16>,
    /// Latency of the last try.
    #[serde(default)]
    pub latency_ms: u64,
    /// Tries made (per-probe retries).
    #[serde(default)]
    pub attempts: u32,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// A dependency probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyResult {
    /// Dependency name.
    pub name: String,
    /// Its probe result.
    pub result: ProbeResult,
}

/// The latest health evaluation of a service (id = service id: latest result wins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckResult {
    /// Record id; the service id.
    pub id: String,
    /// Owning tenant.
    pub tenant_id: String,
    /// Environment.
    pub environment_id: String,
    /// The service evaluated.
    pub service_id: String,
    /// Start of the evaluation window.
    pub window_start: DateTime<Utc>,
    /// Window length in seconds.
    pub window_seconds: u32,
    /// Liveness probe.
    pub liveness: ProbeResult,
    /// Readiness probe.
    pub readiness: ProbeResult,
    /// Dependency probes.
    #[serde(default)]
    pub dependencies: Vec<DependencyResult>,
    /// Overall status.
    pub status: HealthStatus,
    /// Consecutive windows with a failed probe (0 when healthy).
    #[serde(default)]
    pub consecutive_failed_windows: u32,
    /// When the evaluation finished.
    pub checked_at: DateTime<Utc>,
}

impl_record!(HealthCheckResult, HealthCheck);
