//! From probe results to a verdict: the pure part of an evaluation.

use chrono::{DateTime, Utc};
use fleet_cloud::{ProbeResult, Scope};
use fleet_envelope::payload::{
    HealthCheckCompleted, HealthStatus as WireStatus, ProbeKind, ProbeResult as WireProbe, Window,
};
use fleet_store::records::{
    DependencyResult, HealthCheckResult, HealthStatus, ProbeResult as Stored,
};

use crate::Settings;
use crate::probe::ServiceProbes;

/// The record to keep and the event to emit for one service and window.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The new latest result.
    pub record: HealthCheckResult,
    /// The `HealthCheckCompleted` payload.
    pub event: HealthCheckCompleted,
}

/// The verdict for `probes` in `[window_start, window_end)`, given the previous window's result.
///
/// A window fails when liveness or readiness fails (after the probe's retries). Failed windows in
/// a row make the service `degraded` from `degraded_after` and `unhealthy` from
/// `unhealthy_after`; a failing dependency alone makes it `degraded`; anything else is
/// `healthy` and resets the count.
pub fn evaluate(
    scope: &Scope,
    probes: &ServiceProbes,
    previous: Option<&HealthCheckResult>,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
    settings: &Settings,
) -> Evaluation {
    let live_ok = probes.liveness.as_ref().is_none_or(ProbeResult::is_healthy);
    let ready_ok = probes
        .readiness
        .as_ref()
        .is_none_or(ProbeResult::is_healthy);
    let deps_ok = probes.dependencies.iter().all(|(_, p)| p.is_healthy());
    let failed = !(live_ok && ready_ok);
    let consecutive = if failed {
        previous.map_or(0, |p| p.consecutive_failed_windows) + 1
    } else {
        0
    };
    let status = if consecutive >= settings.unhealthy_after {
        HealthStatus::Unhealthy
    } else if consecutive >= settings.degraded_after || !deps_ok {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    let window_seconds = u32::try_from((window_end - window_start).num_seconds()).unwrap_or(0);
    let record = HealthCheckResult {
        id: probes.service_id.clone(),
        tenant_id: scope.tenant_id.clone(),
        environment_id: scope.environment_id.clone(),
        service_id: probes.service_id.clone(),
        window_start,
        window_seconds,
        liveness: stored(probes.liveness.as_ref()),
        readiness: stored(probes.readiness.as_ref()),
        dependencies: probes
            .dependencies
            .iter()
            .map(|(name, p)| DependencyResult {
                name: name.clone(),
                result: stored(Some(p)),
            })
            .collect(),
        status,
        consecutive_failed_windows: consecutive,
        checked_at: now,
    };
    let mut wire_probes = Vec::new();
    if let Some(p) = &probes.liveness {
        wire_probes.push(wire(ProbeKind::Liveness, p.url.clone(), p));
    }
    if let Some(p) = &probes.readiness {
        wire_probes.push(wire(ProbeKind::Readiness, p.url.clone(), p));
    }
    for (name, p) in &probes.dependencies {
        wire_probes.push(wire(ProbeKind::Dependency, name.clone(), p));
    }
    let event = HealthCheckCompleted {
        service_id: probes.service_id.clone(),
        window: Window {
            start: window_start,
            end: window_end,
        },
        status: to_wire(status),
        previous_status: previous.map(|p| to_wire(p.status)),
        consecutive_failed_windows: consecutive,
        probes: wire_probes,
    };
    Evaluation { record, event }
}

fn to_wire(s: HealthStatus) -> WireStatus {
    match s {
        HealthStatus::Healthy => WireStatus::Healthy,
        HealthStatus::Degraded => WireStatus::Degraded,
        HealthStatus::Unhealthy => WireStatus::Unhealthy,
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn stored(p: Option<&ProbeResult>) -> Stored {
    match p {
        Some(p) => Stored {
            ok: p.is_healthy(),
            status_code: p.http_status,
            latency_ms: millis(p.latency),
            attempts: p.attempts,
            error: p.error.clone(),
        },
        // Not exposed by the service: nothing to fail.
        None => Stored {
            ok: true,
            status_code: None,
            latency_ms: 0,
            attempts: 0,
            error: None,
        },
    }
}

fn wire(kind: ProbeKind, target: String, p: &ProbeResult) -> WireProbe {
    WireProbe {
        kind,
        target,
        passed: p.is_healthy(),
        attempts: p.attempts.max(1),
        latency_ms: Some(millis(p.latency)),
        http_status: p.http_status,
        error: p.error.clone(),
    }
}
