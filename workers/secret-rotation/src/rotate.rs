//! One rotation: a new vault version (or the one an interrupted rotation already created), the
//! bound services' references refreshed, and the binding updated. Values never leave the vault
//! port except to be written; only names and versions are logged or recorded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_cloud::{OperationStatus, Scope, SecretValue};
use fleet_runtime::{HandlerContext, HandlerError};
use fleet_store::records::{RuntimeService, SecretBinding};
use fleet_worker_support::convert::to_cloud;
use fleet_worker_support::{await_operation, cloud_error, is_not_found, later};

use crate::Ports;

/// What a rotation produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The Key Vault version the binding now uses.
    pub new_version: String,
    /// The services whose references were refreshed.
    pub service_ids: Vec<String>,
}

/// The vault's name from its URI (`https://kv-prod.vault.azure.net` → `kv-prod`).
pub fn vault_name(uri: &str) -> String {
    let host = uri
        .split("://")
        .nth(1)
        .unwrap_or(uri)
        .split(['/', ':'])
        .next()
        .unwrap_or(uri);
    host.split('.').next().unwrap_or(host).to_owned()
}

/// A fresh secret value: 32 random bytes, hex-encoded.
fn generate() -> SecretValue {
    SecretValue::new(hex::encode(rand::random::<[u8; 32]>()))
}

/// Writes a new version (or adopts the newest one if an interrupted rotation left it behind) and
/// points every bound service at it.
pub async fn rotate(
    ctx: &HandlerContext<Ports>,
    scope: &Scope,
    binding: &SecretBinding,
) -> Result<Rotated, HandlerError> {
    let ports = ctx.ports();
    let name = &binding.secret_name;
    let versions = match ports.vault.list_versions(scope, name).await {
        Ok(v) => v,
        Err(e) if is_not_found(&e) => Vec::new(),
        Err(e) => return Err(cloud_error(&format!("listing versions of {name}"), e)),
    };
    let known = |v: &str| {
        binding.current_version.as_deref() == Some(v)
            || binding.previous_version.as_deref() == Some(v)
    };
    // Idempotent on the version: a newer enabled version the binding does not know yet was
    // written by an attempt that failed later, so it is adopted rather than written again.
    let adopt = versions
        .last()
        .filter(|v| v.enabled && !known(&v.version))
        .map(|v| v.version.clone());
    let new_version = match adopt {
        Some(v) => v,
        None => ports
            .vault
            .set_secret(scope, name, generate())
            .await
            .map_err(|e| cloud_error(&format!("writing a new version of {name}"), e))?,
    };
    let mut refreshed = Vec::new();
    for service_id in &binding.service_ids {
        let Some(service) = ctx
            .get_for::<RuntimeService>(&scope.tenant_id, service_id)
            .await?
        else {
            tracing::warn!(service_id, binding = %binding.id, "bound service is not in the inventory");
            continue;
        };
        let compute = ports
            .computes
            .get(to_cloud(service.record.platform))
            .map_err(|e| cloud_error(&format!("service {service_id}"), e))?;
        let what = format!("refreshing binding {} of {service_id}", binding.id);
        let op = compute
            .refresh_secret_binding(scope, service_id, &binding.id, name, &new_version)
            .await
            .map_err(|e| cloud_error(&what, e))?;
        let deadline = later(ctx.clock().now(), ports.settings.operation_timeout);
        let op =
            await_operation(ctx.clock().as_ref(), compute.as_ref(), scope, op, deadline).await?;
        if op.status != OperationStatus::Succeeded {
            return Err(HandlerError::transient(format!(
                "{what}: {}",
                op.error
                    .unwrap_or_else(|| format!("operation ended {:?}", op.status))
            )));
        }
        refreshed.push(service_id.clone());
    }
    Ok(Rotated {
        new_version,
        service_ids: refreshed,
    })
}

/// Records a successful rotation on the binding; returns when the previous version will be (or,
/// with a zero grace, must now be) disabled.
pub fn record_rotation(
    binding: &mut SecretBinding,
    new_version: &str,
    grace: Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let previous = binding.current_version.replace(new_version.to_owned());
    let disable_at = previous.as_ref().map(|_| later(now, grace));
    binding.previous_version = previous;
    binding.disable_previous_after = disable_at;
    binding.last_rotated_at = Some(now);
    binding.next_rotation_at = Some(later(
        now,
        Duration::from_secs(binding.rotation_interval_seconds),
    ));
    binding.consecutive_failures = 0;
    binding.last_failure = None;
    disable_at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_come_from_the_host() {
        assert_eq!(vault_name("https://kv-prod.vault.azure.net"), "kv-prod");
        assert_eq!(vault_name("https://kv.vault.azure.net/"), "kv");
        assert_eq!(vault_name("kv-local"), "kv-local");
    }

    #[test]
    fn generated_values_are_random_and_never_printed() {
        let (a, b) = (generate(), generate());
        assert_ne!(a.expose(), b.expose());
        assert_eq!(a.len(), 64);
        assert!(!format!("{a:?} {a}").contains(a.expose()));
    }
}
