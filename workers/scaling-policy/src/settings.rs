//! The worker's variables.

use std::time::Duration;

use fleet_runtime::{Env, RuntimeError};
use fleet_worker_support::settings::{bounded, seconds};

/// Period of the evaluation loop, in seconds (default 60).
pub const ENV_PERIOD_SECS: &str = "FLEET_SCALING_PERIOD_SECS";
/// Band around the target, in percent, inside which no action is taken (default 10).
pub const ENV_TOLERANCE_PERCENT: &str = "FLEET_SCALING_TOLERANCE_PERCENT";

/// Tunables of the scaling worker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// How often every environment is evaluated.
    pub period: Duration,
    /// `|value / target - 1|` at or under this is "at target".
    pub tolerance: f64,
    /// Width of one metric bucket.
    pub metric_interval: Duration,
    /// Buckets averaged per decision.
    pub metric_buckets: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            period: Duration::from_secs(60),
            tolerance: 0.1,
            metric_interval: Duration::from_secs(60),
            metric_buckets: 2,
        }
    }
}

impl Settings {
    /// Reads the variables, defaulting what is unset.
    pub fn from_env(env: &dyn Env) -> Result<Settings, RuntimeError> {
        let d = Settings::default();
        let percent = bounded::<u32>(env, ENV_TOLERANCE_PERCENT, 10, 0, 90)?;
        Ok(Settings {
            period: seconds(env, ENV_PERIOD_SECS, d.period, 5, 3600)?,
            tolerance: f64::from(percent) / 100.0,
            ..d
        })
    }
}
