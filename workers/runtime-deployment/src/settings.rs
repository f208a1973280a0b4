//! The worker's variables.

use std::time::Duration;

use fleet_runtime::{Env, RuntimeError};
use fleet_worker_support::settings::seconds;

/// How long the readiness gate waits for the new revision to be fully ready.
pub const ENV_READINESS_TIMEOUT_SECS: &str = "FLEET_DEPLOY_READINESS_TIMEOUT_SECS";
/// How long one control-plane operation (apply, rollback) may run before the attempt is retried.
pub const ENV_OPERATION_TIMEOUT_SECS: &str = "FLEET_DEPLOY_OPERATION_TIMEOUT_SECS";

/// Tunables of the deployment worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Deadline of the readiness gate, from the end of the apply step.
    pub readiness_timeout: Duration,
    /// How often the gate re-reads the service.
    pub readiness_poll: Duration,
    /// Deadline of one operation.
    pub operation_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            readiness_timeout: Duration::from_secs(300),
            readiness_poll: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(600),
        }
    }
}

impl Settings {
    /// Reads the variables, defaulting what is unset.
    pub fn from_env(env: &dyn Env) -> Result<Settings, RuntimeError> {
        let d = Settings::default();
        Ok(Settings {
            readiness_timeout: seconds(
                env,
                ENV_READINESS_TIMEOUT_SECS,
                d.readiness_timeout,
                1,
                3600,
            )?,
            readiness_poll: d.readiness_poll,
            operation_timeout: seconds(
                env,
                ENV_OPERATION_TIMEOUT_SECS,
                d.operation_timeout,
                1,
                7200,
            )?,
        })
    }
}
