//! The worker's variables.

use std::time::Duration;

use fleet_runtime::{Env, RuntimeError};
use fleet_worker_support::settings::seconds;

/// How long one control-plane configuration change may take before the attempt is retried.
pub const ENV_OPERATION_TIMEOUT_SECS: &str = "FLEET_CONFIG_SYNC_OPERATION_TIMEOUT_SECS";

/// Tunables of the configuration-sync worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Deadline for one `apply_config` operation to finish.
    pub operation_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            operation_timeout: Duration::from_secs(300),
        }
    }
}

impl Settings {
    /// Reads the variables, defaulting what is unset.
    pub fn from_env(env: &dyn Env) -> Result<Settings, RuntimeError> {
        let d = Settings::default();
        Ok(Settings {
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
