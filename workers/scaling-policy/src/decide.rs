//! One policy's decision: hold, already at target, or scale from one count to another.

use chrono::{DateTime, Utc};
use fleet_cloud::{Aggregation, CloudError, MetricQuery, PlatformKind, Scope, metric_names};
use fleet_store::records::ScalingPolicy;

use crate::Ports;

/// What a policy evaluation concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No action now, and why (rollout in flight, cooldown, no data...).
    Hold(String),
    /// The service already runs the desired count.
    AtTarget,
    /// Scale `from` → `to` because the metric read `value`.
    Scale {
        /// Replicas now.
        from: u32,
        /// Replicas wanted.
        to: u32,
        /// The metric reading.
        value: f64,
    },
}

/// The Azure Monitor name of a policy's metric; policies may use the short names
/// `cpuPercent` and `requestsPerSecond`.
pub fn azure_metric(name: &str) -> String {
    match name {
        "cpu" | "cpuPercent" | "cpuPercentage" => metric_names::CPU_PERCENTAGE.to_owned(),
        "rps" | "requestsPerSecond" | "requestsPerReplica" => {
            metric_names::REQUESTS_PER_REPLICA.to_owned()
        }
        other => other.to_owned(),
    }
}

/// The replica count that brings `value` to `target` (Kubernetes HPA's rule):
/// `ceil(current × value / target)`, unchanged within `tolerance`, clamped to `[min, max]`.
/// A service at zero replicas is started at `max(min, 1)`: there is no per-replica signal.
pub fn desired_replicas(
    current: u32,
    value: f64,
    target: f64,
    min: u32,
    max: u32,
    tolerance: f64,
) -> u32 {
    let (lo, hi) = (min.min(max), max.max(min));
    if current == 0 {
        return lo.max(1).min(hi.max(1));
    }
    if target.is_nan() || target <= 0.0 || !value.is_finite() {
        return current.clamp(lo, hi);
    }
    let ratio = value / target;
    if (ratio - 1.0).abs() <= tolerance {
        return current.clamp(lo, hi);
    }
    let wanted = (f64::from(current) * ratio).ceil();
    let wanted = if wanted >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        wanted.max(0.0) as u32
    };
    wanted.clamp(lo, hi)
}

/// Evaluates `policy` for a service on `platform` now.
pub async fn decide(
    ports: &Ports,
    scope: &Scope,
    policy: &ScalingPolicy,
    platform: PlatformKind,
    in_rollout: bool,
    now: DateTime<Utc>,
) -> Result<Decision, CloudError> {
    if in_rollout {
        return Ok(Decision::Hold(
            "a rollout of the service is in flight".into(),
        ));
    }
    if let Some(last) = &policy.last_action {
        let until = last.at
            + chrono::Duration::seconds(
                i64::try_from(policy.cooldown_seconds).unwrap_or(i64::MAX / 2),
            );
        if now < until {
            return Ok(Decision::Hold(format!("cooling down until {until}")));
        }
    }
    let compute = ports.computes.get(platform)?;
    let current = compute.get(scope, &policy.service_id).await?.replicas;
    let s = &ports.settings;
    let span = s.metric_interval * s.metric_buckets.max(1);
    let query = MetricQuery {
        service_id: policy.service_id.clone(),
        metric: azure_metric(&policy.metric),
        aggregation: Aggregation::Average,
        start: now - chrono::Duration::from_std(span).unwrap_or(chrono::Duration::minutes(2)),
        end: now,
        interval: s.metric_interval,
    };
    let points = ports.metrics.query(scope, &query).await?;
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    let Some(value) = Aggregation::Average.apply(&values) else {
        return Ok(Decision::Hold(format!("no {} data", query.metric)));
    };
    let to = desired_replicas(
        current,
        value,
        policy.target,
        policy.min_replicas,
        policy.max_replicas,
        s.tolerance,
    );
    if to == current {
        return Ok(Decision::AtTarget);
    }
    Ok(Decision::Scale {
        from: current,
        to,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_follows_the_hpa_rule_within_bounds_and_tolerance() {
        assert_eq!(desired_replicas(2, 50.0, 25.0, 1, 10, 0.1), 4);
        assert_eq!(desired_replicas(4, 10.0, 25.0, 1, 10, 0.1), 2);
        assert_eq!(
            desired_replicas(2, 26.0, 25.0, 1, 10, 0.1),
            2,
            "inside tolerance"
        );
        assert_eq!(
            desired_replicas(2, 500.0, 25.0, 1, 10, 0.1),
            10,
            "capped at max"
        );
        assert_eq!(
            desired_replicas(5, 0.0, 25.0, 2, 10, 0.1),
            2,
            "floored at min"
        );
        assert_eq!(desired_replicas(0, 0.0, 25.0, 0, 10, 0.1), 1);
        assert_eq!(
            desired_replicas(3, 50.0, 0.0, 1, 10, 0.1),
            3,
            "a zero target never scales"
        );
    }

    #[test]
    fn short_metric_names_map_to_monitor_names() {
        assert_eq!(azure_metric("cpuPercent"), "CpuPercentage");
        assert_eq!(azure_metric("requestsPerSecond"), "RequestsPerReplica");
        assert_eq!(azure_metric("HttpResponseTime"), "HttpResponseTime");
    }
}
