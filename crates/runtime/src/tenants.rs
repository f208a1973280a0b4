//! A short-lived cache of tenant bindings for the tenant guard (rule 3).
//!
//! Every message needs its environment's binding; without a cache that is one store round trip
//! per message. Bindings change rarely (an environment moving to another tenant is an
//! administrative act), so a found binding is reused for [`TTL`]; a missing one is never cached,
//! so a newly bound environment is accepted at once. The staleness bound is documented in
//! `docs/runtime.md`.

use foldhash::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_store::{Store, StoreError};
use parking_lot::Mutex;

/// How long a found binding is trusted without asking the store again.
pub const TTL: Duration = Duration::from_secs(30);
// Bounds memory when a worker sees very many environments.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub(crate) struct TenantCache {
    entries: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
}

impl TenantCache {
    /// The owning tenant of `environment_id`, if bound.
    pub(crate) async fn owner(
        &self,
        store: &dyn Store,
        environment_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        if let Some((tenant, expires)) = self.entries.lock().get(environment_id)
            && *expires > now
        {
            return Ok(Some(tenant.clone()));
        }
        let binding = store.tenant_binding(environment_id).await?;
        if let Some(b) = &binding {
            let mut entries = self.entries.lock();
            if entries.len() >= MAX_ENTRIES {
                entries.retain(|_, (_, expires)| *expires > now);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(
                environment_id.to_owned(),
                (b.tenant_id.clone(), crate::clock::add(now, TTL)),
            );
        }
        Ok(binding.map(|b| b.tenant_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_store::TenantBinding;
    use std::sync::Arc;

    async fn store_with(env: &str, tenant: &str) -> Arc<dyn Store> {
        let store = fleet_store::open("sqlite::memory:").await.unwrap();
        let binding = TenantBinding {
            environment_id: env.into(),
            tenant_id: tenant.into(),
            targets: serde_json::json!({}),
        };
        store.put_tenant_binding(&binding).await.unwrap();
        store
    }

    #[tokio::test]
    async fn a_found_binding_is_reused_until_it_expires() {
        let store = store_with("env-1", "tenant-a").await;
        let cache = TenantCache::default();
        let t0 = Utc::now();
        assert_eq!(
            cache
                .owner(store.as_ref(), "env-1", t0)
                .await
                .unwrap()
                .as_deref(),
            Some("tenant-a")
        );
        let moved = TenantBinding {
            environment_id: "env-1".into(),
            tenant_id: "tenant-b".into(),
            targets: serde_json::json!({}),
        };
        store.put_tenant_binding(&moved).await.unwrap();
        let within = t0 + chrono::Duration::seconds(10);
        assert_eq!(
            cache
                .owner(store.as_ref(), "env-1", within)
                .await
                .unwrap()
                .as_deref(),
            Some("tenant-a")
        );
        let after = t0 + chrono::Duration::seconds(31);
        assert_eq!(
            cache
                .owner(store.as_ref(), "env-1", after)
                .await
                .unwrap()
                .as_deref(),
            Some("tenant-b")
        );
    }

    #[tokio::test]
    async fn a_missing_binding_is_not_cached() {
        let store = store_with("env-1", "tenant-a").await;
        let cache = TenantCache::default();
        let now = Utc::now();
        assert_eq!(
            cache.owner(store.as_ref(), "env-2", now).await.unwrap(),
            None
        );
        let bound = TenantBinding {
            environment_id: "env-2".into(),
            tenant_id: "tenant-c".into(),
            targets: serde_json::json!({}),
        };
        store.put_tenant_binding(&bound).await.unwrap();
        assert_eq!(
            cache
                .owner(store.as_ref(), "env-2", now)
                .await
                .unwrap()
                .as_deref(),
            Some("tenant-c")
        );
    }
}
