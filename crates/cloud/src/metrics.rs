//! The `Metrics` port, in Azure Monitor's terms (metric name, aggregation, timespan, interval).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{CloudError, Scope};

/// Metric names the sandbox produces and the scaling policies read (Azure Monitor names).
pub mod names {
    /// Average CPU use of one replica, in percent.
    pub const CPU_PERCENTAGE: &str = "CpuPercentage";
    /// HTTP requests served (per interval, all replicas).
    pub const REQUESTS: &str = "Requests";
    /// Requests per replica per second, the usual scaling signal.
    pub const REQUESTS_PER_REPLICA: &str = "RequestsPerReplica";
    /// Running replicas.
    pub const REPLICAS: &str = "Replicas";
    /// Average response time, in milliseconds.
    pub const RESPONSE_TIME_MS: &str = "HttpResponseTime";
}

/// How the samples inside one interval are combined (Monitor's `aggregation` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub enum Aggregation {
    /// Mean of the samples.
    Average,
    /// Largest sample.
    Maximum,
    /// Smallest sample.
    Minimum,
    /// Sum of the samples.
    Total,
    /// Number of samples.
    Count,
}

impl Aggregation {
    /// Combines `samples`; `None` when there are none (except `Count`, which is 0).
    pub fn apply(&self, samples: &[f64]) -> Option<f64> {
        if samples.is_empty() {
            return matches!(self, Aggregation::Count).then_some(0.0);
        }
        Some(match self {
            Aggregation::Average => samples.iter().sum::<f64>() / samples.len() as f64,
            Aggregation::Maximum => samples.iter().copied().fold(f64::MIN, f64::max),
            Aggregation::Minimum => samples.iter().copied().fold(f64::MAX, f64::min),
            Aggregation::Total => samples.iter().sum(),
            Aggregation::Count => samples.len() as f64,
        })
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Aggregation::Average => "Average",
            Aggregation::Maximum => "Maximum",
            Aggregation::Minimum => "Minimum",
            Aggregation::Total => "Total",
            Aggregation::Count => "Count",
        })
    }
}

/// One metrics query: Monitor's `metricnames`, `aggregation`, `timespan` and `interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricQuery {
    /// The service (resource) whose metric is read.
    pub service_id: String,
    /// Metric name, e.g. [`names::CPU_PERCENTAGE`].
    pub metric: String,
    /// How samples inside one interval combine.
    pub aggregation: Aggregation,
    /// Start of the timespan (inclusive).
    pub start: DateTime<Utc>,
    /// End of the timespan (exclusive).
    pub end: DateTime<Utc>,
    /// Bucket width (Monitor's `interval`, e.g. PT1M).
    pub interval: Duration,
}

/// One bucket of a metric time series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricPoint {
    /// Start of the bucket.
    pub timestamp: DateTime<Utc>,
    /// The aggregated value.
    pub value: f64,
}

/// Reads platform metrics for services of a scope.
#[async_trait]
pub trait Metrics: Send + Sync {
    /// The time series for `query`, one point per interval that has data, oldest first.
    ///
    /// An unknown service (or one of another tenant) is
    /// [`NotFound`](crate::CloudErrorKind::NotFound); an unknown metric name or an empty
    /// timespan is [`Invalid`](crate::CloudErrorKind::Invalid).
    async fn query(
        &self,
        scope: &Scope,
        query: &MetricQuery,
    ) -> Result<Vec<MetricPoint>, CloudError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregations_combine_samples_like_monitor() {
        let s = [1.0, 4.0, 7.0];
        assert_eq!(Aggregation::Average.apply(&s), Some(4.0));
        assert_eq!(Aggregation::Maximum.apply(&s), Some(7.0));
        assert_eq!(Aggregation::Minimum.apply(&s), Some(1.0));
        assert_eq!(Aggregation::Total.apply(&s), Some(12.0));
        assert_eq!(Aggregation::Count.apply(&s), Some(3.0));
        assert_eq!(Aggregation::Average.apply(&[]), None);
        assert_eq!(Aggregation::Count.apply(&[]), Some(0.0));
    }
}
