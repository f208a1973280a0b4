//! Synthetic load: request rate over time from a profile, and the metrics it produces given the
//! replica count at that moment.

use chrono::{DateTime, Utc};
use fleet_cloud::metric_names as names;
use serde::{Deserialize, Serialize};

/// How a service's incoming request rate (requests per second, all replicas) moves over time,
/// measured from when the profile was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "shape")]
pub enum LoadProfile {
    /// A steady rate.
    Constant {
        /// Requests per second.
        rps: f64,
    },
    /// A linear change from `from_rps` to `to_rps` over `over_secs`, then steady.
    Ramp {
        /// Rate at the start.
        from_rps: f64,
        /// Rate at the end.
        to_rps: f64,
        /// Length of the ramp, in seconds.
        over_secs: u64,
    },
    /// A steady base with a burst to `peak_rps` from `after_secs` for `for_secs`.
    Spike {
        /// Rate outside the spike.
        base_rps: f64,
        /// Rate during the spike.
        peak_rps: f64,
        /// When the spike starts, in seconds after the profile was set.
        after_secs: u64,
        /// How long the spike lasts, in seconds.
        for_secs: u64,
    },
}

impl Default for LoadProfile {
    fn default() -> Self {
        LoadProfile::Constant { rps: 20.0 }
    }
}

impl LoadProfile {
    /// The request rate `elapsed_secs` after the profile was set (never negative).
    pub fn rps_at(&self, elapsed_secs: f64) -> f64 {
        let t = elapsed_secs.max(0.0);
        let rps = match self {
            LoadProfile::Constant { rps } => *rps,
            LoadProfile::Ramp {
                from_rps,
                to_rps,
                over_secs,
            } => {
                let f = if *over_secs == 0 {
                    1.0
                } else {
                    (t / *over_secs as f64).min(1.0)
                };
                from_rps + (to_rps - from_rps) * f
            }
            LoadProfile::Spike {
                base_rps,
                peak_rps,
                after_secs,
                for_secs,
            } => {
                let start = *after_secs as f64;
                if t >= start && t < start + *for_secs as f64 {
                    *peak_rps
                } else {
                    *base_rps
                }
            }
        };
        rps.max(0.0)
    }
}

/// CPU percent one replica spends per request per second it serves.
const CPU_PER_RPS: f64 = 1.5;
/// CPU percent of an idle replica.
const CPU_IDLE: f64 = 4.0;
/// Response time of an unloaded replica, in milliseconds.
const BASE_RESPONSE_MS: f64 = 40.0;

/// The metric names the sandbox synthesises.
pub const METRICS: [&str; 5] = [
    names::CPU_PERCENTAGE,
    names::REQUESTS,
    names::REQUESTS_PER_REPLICA,
    names::REPLICAS,
    names::RESPONSE_TIME_MS,
];

/// One sample of `metric` for a service taking `rps` on `replicas`, over `period_secs`.
///
/// `jitter` (−1..1) is a deterministic per-sample wobble so series look alive but repeat
/// exactly across runs. Returns `None` for an unknown metric name.
pub fn sample(metric: &str, rps: f64, replicas: u32, period_secs: f64, jitter: f64) -> Option<f64> {
    let per_replica = if replicas == 0 {
        0.0
    } else {
        rps / replicas as f64
    };
    let cpu = if replicas == 0 {
        0.0
    } else {
        (CPU_IDLE + per_replica * CPU_PER_RPS + jitter * 2.0).clamp(0.0, 100.0)
    };
    Some(match metric {
        names::CPU_PERCENTAGE => cpu,
        names::REQUESTS => (rps * period_secs).round(),
        names::REQUESTS_PER_REPLICA => per_replica,
        names::REPLICAS => replicas as f64,
        // Queueing: response time grows steeply as a replica nears saturation.
        names::RESPONSE_TIME_MS => {
            if replicas == 0 {
                0.0
            } else {
                let load = (cpu / 100.0).min(0.99);
                BASE_RESPONSE_MS / (1.0 - load) + jitter * 3.0
            }
        }
        _ => return None,
    })
}

/// A deterministic value in −1..1 for (service, sample time).
pub fn jitter(service_key: &str, at: DateTime<Utc>) -> f64 {
    // FNV-1a: tiny, stable across platforms and releases (unlike the std hasher).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in service_key.bytes().chain(at.timestamp().to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % 2001) as f64 / 1000.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_follow_their_shape() {
        let ramp = LoadProfile::Ramp {
            from_rps: 10.0,
            to_rps: 110.0,
            over_secs: 100,
        };
        assert_eq!(ramp.rps_at(0.0), 10.0);
        assert_eq!(ramp.rps_at(50.0), 60.0);
        assert_eq!(ramp.rps_at(500.0), 110.0);
        let spike = LoadProfile::Spike {
            base_rps: 5.0,
            peak_rps: 50.0,
            after_secs: 60,
            for_secs: 30,
        };
        assert_eq!(spike.rps_at(59.0), 5.0);
        assert_eq!(spike.rps_at(60.0), 50.0);
        assert_eq!(spike.rps_at(90.0), 5.0);
    }

    #[test]
    fn cpu_per_replica_falls_when_replicas_rise() {
        let cpu = |replicas| sample(names::CPU_PERCENTAGE, 40.0, replicas, 10.0, 0.0).unwrap();
        assert!(
            cpu(1) > cpu(2) && cpu(2) > cpu(4),
            "{} {} {}",
            cpu(1),
            cpu(2),
            cpu(4)
        );
        assert_eq!(
            sample(names::REQUESTS_PER_REPLICA, 40.0, 4, 10.0, 0.0),
            Some(10.0)
        );
        assert_eq!(sample("NoSuchMetric", 1.0, 1, 1.0, 0.0), None);
    }
}
