//! `Metrics` over the simulated load: samples every 10 s of simulated time (or every interval,
//! when finer), aggregated per interval like Azure Monitor.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fleet_cloud::{CloudError, MetricPoint, MetricQuery, Metrics, Scope};

use crate::faults::Port;
use crate::load::{METRICS, jitter, sample};
use crate::state::key;
use crate::validate::check_scope;
use crate::world::Inner;

/// The platform's sampling period.
const SAMPLE_PERIOD: Duration = Duration::from_secs(10);
/// Most samples one query may synthesise (bounds the work a query can ask for).
const MAX_SAMPLES: i64 = 200_000;

pub(crate) struct SandboxMetrics {
    inner: Arc<Inner>,
}

impl SandboxMetrics {
    pub fn new(inner: Arc<Inner>) -> Self {
        SandboxMetrics { inner }
    }
}

#[async_trait]
impl Metrics for SandboxMetrics {
    async fn query(&self, scope: &Scope, q: &MetricQuery) -> Result<Vec<MetricPoint>, CloudError> {
        self.inner.gate(Port::Metrics).await?;
        check_scope(scope)?;
        if !METRICS.contains(&q.metric.as_str()) {
            return Err(CloudError::invalid(format!(
                "metric {:?} is not available (available: {})",
                q.metric,
                METRICS.join(", ")
            )));
        }
        if q.end <= q.start {
            return Err(CloudError::invalid(format!(
                "timespan {}/{} is empty",
                q.start, q.end
            )));
        }
        if q.interval < Duration::from_secs(1) {
            return Err(CloudError::invalid(format!(
                "interval {:?} is below one second",
                q.interval
            )));
        }
        let period = q.interval.min(SAMPLE_PERIOD);
        let period_c = chrono::Duration::from_std(period)
            .map_err(|_| CloudError::invalid("interval too large"))?;
        let interval_c = chrono::Duration::from_std(q.interval)
            .map_err(|_| CloudError::invalid("interval too large"))?;
        let samples = (q.end - q.start).num_milliseconds() / period_c.num_milliseconds().max(1);
        if samples > MAX_SAMPLES {
            return Err(CloudError::invalid(format!(
                "timespan {}/{} at {:?} needs {samples} samples, over the limit of {MAX_SAMPLES}",
                q.start, q.end, period
            )));
        }
        let now = self.inner.now();
        let record = {
            let state = self.inner.lock()?;
            state
                .services
                .get(&key(&scope.tenant_id, &scope.environment_id, &q.service_id))
                .filter(|s| !s.is_deleted(now))
                .cloned()
                .ok_or_else(|| {
                    CloudError::not_found(format!(
                        "service {:?} not found in {scope}",
                        q.service_id
                    ))
                })?
        };
        let service_key = record.key();
        let mut points = Vec::new();
        let mut bucket = q.start;
        while bucket < q.end {
            let bucket_end = (bucket + interval_c).min(q.end);
            let mut values = Vec::new();
            let mut t = bucket;
            // No data before the service existed or after now: Monitor has none either.
            while t < bucket_end && t <= now {
                if t >= record.created_at {
                    let elapsed = (t - record.load_since).num_milliseconds() as f64 / 1000.0;
                    let rps = record.load.rps_at(elapsed);
                    let replicas = record.replicas_at(t);
                    if let Some(v) = sample(
                        &q.metric,
                        rps,
                        replicas,
                        period.as_secs_f64(),
                        jitter(&service_key, t),
                    ) {
                        values.push(v);
                    }
                }
                t += period_c;
            }
            if let Some(value) = q.aggregation.apply(&values).filter(|_| !values.is_empty()) {
                points.push(MetricPoint {
                    timestamp: bucket,
                    value,
                });
            }
            bucket = bucket_end;
        }
        Ok(points)
    }
}
