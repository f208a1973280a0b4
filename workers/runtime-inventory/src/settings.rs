//! The worker's variables.

use std::time::Duration;

use fleet_runtime::{Env, RuntimeError};
use fleet_worker_support::settings::seconds;

/// Period of the reconcile loop, in seconds (default 120).
pub const ENV_PERIOD_SECS: &str = "FLEET_INVENTORY_PERIOD_SECS";

/// Tunables of the inventory worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How often every environment is reconciled.
    pub period: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            period: Duration::from_secs(120),
        }
    }
}

impl Settings {
    /// Reads the variables, defaulting what is unset.
    pub fn from_env(env: &dyn Env) -> Result<Settings, RuntimeError> {
        let d = Settings::default();
        Ok(Settings {
            period: seconds(env, ENV_PERIOD_SECS, d.period, 10, 86_400)?,
        })
    }
}
