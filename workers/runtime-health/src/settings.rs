//! The worker's variables.

use std::time::Duration;

use fleet_cloud::ProbeConfig;
use fleet_runtime::{Env, RuntimeError};
use fleet_worker_support::settings::{bounded, seconds};

/// Length of an evaluation window, in seconds (default 30).
pub const ENV_PERIOD_SECS: &str = "FLEET_HEALTH_PERIOD_SECS";
/// Probes in flight at once across all services (default 64).
pub const ENV_PROBE_CONCURRENCY: &str = "FLEET_HEALTH_PROBE_CONCURRENCY";
/// Budget of one probe try, in milliseconds (default 5000).
pub const ENV_PROBE_TIMEOUT_MS: &str = "FLEET_HEALTH_PROBE_TIMEOUT_MS";
/// Consecutive failed windows before a service is `degraded` (default 2).
pub const ENV_DEGRADED_AFTER: &str = "FLEET_HEALTH_DEGRADED_AFTER";
/// Consecutive failed windows before a service is `unhealthy` (default 5).
pub const ENV_UNHEALTHY_AFTER: &str = "FLEET_HEALTH_UNHEALTHY_AFTER";

/// Tunables of the health worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// The evaluation window (and timer period).
    pub period: Duration,
    /// Probes in flight at once.
    pub probe_concurrency: usize,
    /// Budget of one probe try.
    pub probe_timeout: Duration,
    /// Tries per probe (§5: 3).
    pub probe_attempts: u32,
    /// Pause between tries of one probe.
    pub probe_retry_delay: Duration,
    /// Failed windows in a row before `degraded`.
    pub degraded_after: u32,
    /// Failed windows in a row before `unhealthy`.
    pub unhealthy_after: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            period: Duration::from_secs(30),
            probe_concurrency: 64,
            probe_timeout: Duration::from_secs(5),
            probe_attempts: 3,
            probe_retry_delay: Duration::from_millis(200),
            degraded_after: 2,
            unhealthy_after: 5,
        }
    }
}

impl Settings {
    /// Reads the variables, defaulting what is unset.
    pub fn from_env(env: &dyn Env) -> Result<Settings, RuntimeError> {
        let d = Settings::default();
        let degraded_after = bounded(env, ENV_DEGRADED_AFTER, d.degraded_after, 1, 100)?;
        let unhealthy_after = bounded(env, ENV_UNHEALTHY_AFTER, d.unhealthy_after, 1, 100)?;
        if unhealthy_after < degraded_after {
            return Err(RuntimeError::config(
                ENV_UNHEALTHY_AFTER,
                &unhealthy_after.to_string(),
                &format!("at least {ENV_DEGRADED_AFTER} ({degraded_after})"),
            ));
        }
        let timeout_ms = bounded(env, ENV_PROBE_TIMEOUT_MS, 5000u64, 10, 60_000)?;
        Ok(Settings {
            period: seconds(env, ENV_PERIOD_SECS, d.period, 5, 3600)?,
            probe_concurrency: bounded(env, ENV_PROBE_CONCURRENCY, d.probe_concurrency, 1, 4096)?,
            probe_timeout: Duration::from_millis(timeout_ms),
            degraded_after,
            unhealthy_after,
            ..d
        })
    }

    /// The prober's configuration.
    pub fn probe_config(&self) -> ProbeConfig {
        ProbeConfig {
            timeout: self.probe_timeout,
            attempts: self.probe_attempts,
            retry_delay: self.probe_retry_delay,
        }
    }
}
