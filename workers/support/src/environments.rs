//! Which environments a control loop visits, and which tenant owns each.

use std::sync::Arc;

use fleet_cloud::Scope;
use fleet_runtime::{Env, HandlerError, RuntimeError};
use fleet_store::Store;

/// Comma-separated environment ids the worker's control loops visit (e.g. `dev,prod-eu`).
pub const ENV_ENVIRONMENTS: &str = "FLEET_ENVIRONMENTS";

/// The environments a worker's timers iterate.
///
/// The store answers "who owns environment X" but offers no listing of bindings, so the set of
/// environments is configuration; ownership still comes from the tenant binding, so a loop never
/// acts for a tenant that does not own the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environments {
    // Kept sorted and unique so passes visit environments in a stable order.
    ids: Vec<String>,
}

impl Environments {
    /// A fixed set of environment ids.
    pub fn new<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut ids: Vec<String> = ids.into_iter().map(Into::into).collect();
        ids.sort();
        ids.dedup();
        Environments { ids }
    }

    /// Reads [`ENV_ENVIRONMENTS`]; unset means none (the loops then idle).
    pub fn from_env(env: &dyn Env) -> Result<Self, RuntimeError> {
        let Some(raw) = env.get(ENV_ENVIRONMENTS) else {
            return Ok(Environments::default());
        };
        let mut ids = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let valid = part.len() <= 128
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !valid {
                return Err(RuntimeError::config(
                    ENV_ENVIRONMENTS,
                    &raw,
                    "comma-separated environment ids (1-128 of A-Z, a-z, 0-9, '-', '_', '.')",
                ));
            }
            ids.push(part.to_owned());
        }
        Ok(Environments::new(ids))
    }

    /// The configured ids, sorted.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The scope (owning tenant + environment) of every configured environment that has a
    /// tenant binding; unbound environments are skipped with a warning.
    pub async fn scopes(&self, store: &Arc<dyn Store>) -> Result<Vec<Scope>, HandlerError> {
        let mut scopes = Vec::with_capacity(self.ids.len());
        for id in &self.ids {
            match store.tenant_binding(id).await? {
                Some(binding) => scopes.push(Scope::new(binding.tenant_id, id.clone())),
                None => tracing::warn!(
                    environment_id = %id,
                    "environment has no tenant binding; the control loop skips it"
                ),
            }
        }
        Ok(scopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_runtime::MapEnv;

    #[test]
    fn environments_parse_sorted_and_unique() {
        let env = MapEnv::from_pairs([(ENV_ENVIRONMENTS, " prod , dev,prod,, ")]);
        let got = Environments::from_env(&env).map(|e| e.ids().to_vec());
        assert_eq!(got.ok(), Some(vec!["dev".to_owned(), "prod".to_owned()]));
    }

    #[test]
    fn a_bad_environment_id_names_the_variable_and_value() {
        let env = MapEnv::from_pairs([(ENV_ENVIRONMENTS, "dev,pr od")]);
        let err = Environments::from_env(&env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(ENV_ENVIRONMENTS) && err.contains("pr od"),
            "{err}"
        );
    }
}
