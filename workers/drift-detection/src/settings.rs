//! The worker's variables, including where desired state comes from.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fleet_cloud::{DesiredState, ManifestDir, PulumiExport};
use fleet_runtime::{Env, RuntimeError};
use fleet_worker_support::settings::{seconds, text};

/// Period of the detection loop, in seconds (default 300).
pub const ENV_PERIOD_SECS: &str = "FLEET_DRIFT_PERIOD_SECS";
/// Shortest time between two event-triggered passes of one environment (default 60).
pub const ENV_EVENT_INTERVAL_SECS: &str = "FLEET_DRIFT_EVENT_INTERVAL_SECS";
/// `git` (a manifest directory, the default) or `pulumi` (a stack export).
pub const ENV_DESIRED_SOURCE: &str = "FLEET_DRIFT_DESIRED_SOURCE";
/// The checked-out manifest directory (`git`); default `desired-state`.
pub const ENV_MANIFEST_DIR: &str = "FLEET_DRIFT_MANIFEST_DIR";
/// The Pulumi stack export file (`pulumi`).
pub const ENV_PULUMI_EXPORT: &str = "FLEET_DRIFT_PULUMI_EXPORT";
/// The environment of export resources without a `fleet-environment` tag (`pulumi`).
pub const ENV_PULUMI_ENVIRONMENT: &str = "FLEET_DRIFT_PULUMI_ENVIRONMENT";

/// Tunables of the drift worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// How often every environment is checked.
    pub period: Duration,
    /// At most one event-triggered pass per environment within this interval.
    pub event_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            period: Duration::from_secs(300),
            event_interval: Duration::from_secs(60),
        }
    }
}

impl Settings {
    /// Reads the variables, defaulting what is unset.
    pub fn from_env(env: &dyn Env) -> Result<Settings, RuntimeError> {
        let d = Settings::default();
        Ok(Settings {
            period: seconds(env, ENV_PERIOD_SECS, d.period, 10, 86_400)?,
            event_interval: seconds(env, ENV_EVENT_INTERVAL_SECS, d.event_interval, 1, 3600)?,
        })
    }
}

/// The desired-state reader the variables describe.
pub fn desired_state_from_env(env: &dyn Env) -> Result<Arc<dyn DesiredState>, RuntimeError> {
    match text(env, ENV_DESIRED_SOURCE).as_deref() {
        None | Some("git") => {
            let dir = text(env, ENV_MANIFEST_DIR).unwrap_or_else(|| "desired-state".to_owned());
            Ok(Arc::new(ManifestDir::new(PathBuf::from(dir))))
        }
        Some("pulumi") => {
            let Some(path) = text(env, ENV_PULUMI_EXPORT) else {
                return Err(RuntimeError::config(
                    ENV_PULUMI_EXPORT,
                    "",
                    "the path of a Pulumi stack export (required when the source is pulumi)",
                ));
            };
            Ok(Arc::new(PulumiExport::new(
                PathBuf::from(path),
                text(env, ENV_PULUMI_ENVIRONMENT),
            )))
        }
        Some(other) => Err(RuntimeError::config(
            ENV_DESIRED_SOURCE,
            other,
            "git or pulumi",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_cloud::DesiredSource;
    use fleet_runtime::MapEnv;

    #[test]
    fn the_desired_source_is_chosen_by_variable_and_bad_values_are_named() {
        let git = desired_state_from_env(&MapEnv::default()).map(|d| d.source());
        assert_eq!(git.ok(), Some(DesiredSource::Git));
        let env = MapEnv::from_pairs([
            (ENV_DESIRED_SOURCE, "pulumi"),
            (ENV_PULUMI_EXPORT, "x.json"),
        ]);
        assert_eq!(
            desired_state_from_env(&env).map(|d| d.source()).ok(),
            Some(DesiredSource::Pulumi)
        );
        let env = MapEnv::from_pairs([(ENV_DESIRED_SOURCE, "svn")]);
        let err = desired_state_from_env(&env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(ENV_DESIRED_SOURCE) && err.contains("svn"),
            "{err}"
        );
    }
}
