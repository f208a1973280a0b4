//! `Vault` over the simulated world: versioned secrets per tenant environment.

use std::sync::Arc;

use async_trait::async_trait;
use fleet_cloud::{CloudError, Scope, SecretBundle, SecretValue, SecretVersionInfo, Vault};

use crate::faults::Port;
use crate::state::{StoredVersion, key};
use crate::validate::check_scope;
use crate::world::Inner;

/// Key Vault's rule for secret names: 1–127 of `[0-9a-zA-Z-]`.
fn check_secret_name(name: &str) -> Result<(), CloudError> {
    if name.is_empty()
        || name.len() > 127
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(CloudError::invalid(format!(
            "secret name {name:?} is not valid (1-127 of 0-9, a-z, A-Z, '-')"
        )));
    }
    Ok(())
}

pub(crate) struct SandboxVault {
    inner: Arc<Inner>,
}

impl SandboxVault {
    pub fn new(inner: Arc<Inner>) -> Self {
        SandboxVault { inner }
    }

    fn secret_key(scope: &Scope, name: &str) -> Result<String, CloudError> {
        check_scope(scope)?;
        check_secret_name(name)?;
        Ok(key(&scope.tenant_id, &scope.environment_id, name))
    }
}

fn not_found(scope: &Scope, name: &str, version: Option<&str>) -> CloudError {
    match version {
        Some(v) => CloudError::not_found(format!(
            "secret {name:?} version {v:?} not found in {scope}"
        )),
        None => CloudError::not_found(format!("secret {name:?} not found in {scope}")),
    }
}

#[async_trait]
impl Vault for SandboxVault {
    async fn set_secret(
        &self,
        scope: &Scope,
        name: &str,
        value: SecretValue,
    ) -> Result<String, CloudError> {
        self.inner.gate(Port::Vault).await?;
        let k = Self::secret_key(scope, name)?;
        let version = uuid::Uuid::new_v4().simple().to_string();
        let now = self.inner.now();
        let mut state = self.inner.lock()?;
        state.secrets.entry(k).or_default().push(StoredVersion {
            version: version.clone(),
            value: value.expose().to_owned(),
            enabled: true,
            created: now,
        });
        self.inner.persist(&state)?;
        Ok(version)
    }

    async fn get_secret(
        &self,
        scope: &Scope,
        name: &str,
        version: Option<&str>,
    ) -> Result<SecretBundle, CloudError> {
        self.inner.gate(Port::Vault).await?;
        let k = Self::secret_key(scope, name)?;
        let state = self.inner.lock()?;
        let versions = state
            .secrets
            .get(&k)
            .ok_or_else(|| not_found(scope, name, None))?;
        let found = match version {
            Some(v) => versions.iter().find(|s| s.version == v),
            None => versions.last(),
        }
        .ok_or_else(|| not_found(scope, name, version))?;
        if !found.enabled {
            return Err(CloudError::conflict(format!(
                "secret {name:?} version {:?} is disabled; get is not allowed on a disabled version",
                found.version
            )));
        }
        Ok(SecretBundle {
            name: name.to_owned(),
            value: SecretValue::new(found.value.clone()),
            version: found.version.clone(),
            enabled: found.enabled,
            created: found.created,
        })
    }

    async fn list_versions(
        &self,
        scope: &Scope,
        name: &str,
    ) -> Result<Vec<SecretVersionInfo>, CloudError> {
        self.inner.gate(Port::Vault).await?;
        let k = Self::secret_key(scope, name)?;
        let state = self.inner.lock()?;
        let versions = state
            .secrets
            .get(&k)
            .ok_or_else(|| not_found(scope, name, None))?;
        Ok(versions
            .iter()
            .map(|v| SecretVersionInfo {
                version: v.version.clone(),
                enabled: v.enabled,
                created: v.created,
            })
            .collect())
    }

    async fn disable_version(
        &self,
        scope: &Scope,
        name: &str,
        version: &str,
    ) -> Result<(), CloudError> {
        self.inner.gate(Port::Vault).await?;
        let k = Self::secret_key(scope, name)?;
        let mut state = self.inner.lock()?;
        let stored = state
            .secrets
            .get_mut(&k)
            .and_then(|vs| vs.iter_mut().find(|v| v.version == version))
            .ok_or_else(|| not_found(scope, name, Some(version)))?;
        if !stored.enabled {
            return Ok(());
        }
        stored.enabled = false;
        self.inner.persist(&state)
    }
}
