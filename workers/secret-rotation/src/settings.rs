//! The worker's variables.

use std::time::Duration;

use fleet_runtime::{Env, RuntimeError};
use fleet_worker_support::settings::{bounded, seconds};

/// How often the schedule looks for due rotations and expired grace periods (default 60).
pub const ENV_CHECK_PERIOD_SECS: &str = "FLEET_SECRET_CHECK_PERIOD_SECS";
/// How long a replaced version stays enabled, in seconds (default 3600).
pub const ENV_GRACE_SECS: &str = "FLEET_SECRET_GRACE_SECS";
/// Failed rotations in a row before the `SecretRotationFailed` alert (default 3).
pub const ENV_ALERT_AFTER: &str = "FLEET_SECRET_ALERT_AFTER";
/// Deadline of one binding refresh operation, in seconds (default 300).
pub const ENV_OPERATION_TIMEOUT_SECS: &str = "FLEET_SECRET_OPERATION_TIMEOUT_SECS";

/// Tunables of the secret-rotation worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Period of the schedule timer.
    pub check_period: Duration,
    /// Default grace before the previous version is disabled.
    pub grace: Duration,
    /// Consecutive failures that raise the alert.
    pub alert_after: u32,
    /// Deadline of one refresh operation.
    pub operation_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            check_period: Duration::from_secs(60),
            grace: Duration::from_secs(3600),
            alert_after: 3,
            operation_timeout: Duration::from_secs(300),
        }
    }
}

impl Settings {
    /// Reads the variables, defaulting what is unset.
    pub fn from_env(env: &dyn Env) -> Result<Settings, RuntimeError> {
        let d = Settings::default();
        Ok(Settings {
            check_period: seconds(env, ENV_CHECK_PERIOD_SECS, d.check_period, 5, 86_400)?,
            grace: seconds(env, ENV_GRACE_SECS, d.grace, 0, 30 * 86_400)?,
            alert_after: bounded(env, ENV_ALERT_AFTER, d.alert_after, 1, 100)?,
            operation_timeout: seconds(
                env,
                ENV_OPERATION_TIMEOUT_SECS,
                d.operation_timeout,
                1,
                3600,
            )?,
        })
    }
}
