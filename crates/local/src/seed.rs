//! The demo environment: one tenant owning one environment, the sandbox's demo services (two on
//! every platform kind), their desired-state manifests, and the records the workers act on.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleet_cloud::{Scope, ServiceSpec};
use fleet_sandbox::{Sandbox, write_desired_state};
use fleet_store::records::{
    AppliedConfiguration, RuntimeConfiguration, ScalingPolicy, SecretBinding,
};
use fleet_store::{Expect, Store, TenantBinding, UnitOfWork};
use serde_json::json;

use crate::error::{LocalError, LocalErrorKind};

/// The demo's tenant.
pub const TENANT: &str = "contoso";
/// The demo's environment.
pub const ENVIRONMENT: &str = "prod";
/// The secret binding the demo rotates (the sandbox binds `orders-db-password` under this name).
pub const SECRET_BINDING: &str = "db";
/// The configuration the demo publishes a new version of.
pub const CONFIGURATION: &str = "orders-config";

fn seed_err(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> LocalError {
    LocalError::new(
        LocalErrorKind::Component,
        format!("seeding the demo: {what}"),
    )
    .with_source(e)
}

/// Seeds everything and returns the desired specs (written to `desired_dir`).
pub async fn seed_demo(
    store: &Arc<dyn Store>,
    sandbox: &Sandbox,
    desired_dir: &Path,
    now: DateTime<Utc>,
) -> Result<Vec<ServiceSpec>, LocalError> {
    let scope = Scope::new(TENANT, ENVIRONMENT);
    store
        .put_tenant_binding(&TenantBinding {
            environment_id: ENVIRONMENT.to_owned(),
            tenant_id: TENANT.to_owned(),
            targets: json!({"sandbox": sandbox.base_url()}),
        })
        .await
        .map_err(|e| seed_err("tenant binding", e))?;
    let specs = sandbox
        .seed_demo(TENANT, ENVIRONMENT)
        .map_err(|e| seed_err("sandbox services", e))?;
    write_desired_state(desired_dir, &specs).map_err(|e| seed_err("desired state", e))?;

    // The inventory the workers start from is what the inventory worker itself would record.
    let observed = sandbox
        .computes()
        .list_all(&scope)
        .await
        .map_err(|e| seed_err("listing services", e))?;
    let changes = fleet_worker_runtime_inventory::reconcile::reconcile(&scope, &[], &observed, now);
    let mut unit = UnitOfWork::default();
    for c in &changes {
        unit.put(&c.record, Expect::Any)
            .map_err(|e| seed_err("service record", e))?;
    }
    let db_version = observed
        .iter()
        .find_map(|o| o.secret_versions.get(SECRET_BINDING))
        .map(|r| r.version.clone());
    let bound: Vec<String> = observed
        .iter()
        .filter(|o| o.secret_versions.contains_key(SECRET_BINDING))
        .map(|o| o.id.clone())
        .collect();
    unit.put(
        &SecretBinding {
            id: SECRET_BINDING.to_owned(),
            tenant_id: TENANT.to_owned(),
            environment_id: ENVIRONMENT.to_owned(),
            service_ids: bound,
            vault_uri: "https://fleetdemo.vault.azure.net".to_owned(),
            secret_name: "orders-db-password".to_owned(),
            current_version: db_version,
            previous_version: None,
            disable_previous_after: None,
            rotation_interval_seconds: 30 * 24 * 3600,
            next_rotation_at: Some(now + chrono::Duration::days(30)),
            last_rotated_at: None,
            consecutive_failures: 0,
            last_failure: None,
        },
        Expect::Any,
    )
    .map_err(|e| seed_err("secret binding", e))?;
    for spec in specs.iter().filter(|s| s.configuration_id.is_some()) {
        let (Some(id), Some(version)) = (&spec.configuration_id, spec.config_version) else {
            continue;
        };
        let mut values = serde_json::Map::new();
        values.insert("LOG_LEVEL".into(), json!("info"));
        unit.put(
            &RuntimeConfiguration {
                id: id.clone(),
                tenant_id: TENANT.to_owned(),
                environment_id: ENVIRONMENT.to_owned(),
                latest_version: version,
                values,
                service_ids: vec![spec.id.clone()],
                applied: BTreeMap::from([(
                    spec.id.clone(),
                    AppliedConfiguration {
                        version,
                        applied_at: now,
                    },
                )]),
                published_at: now,
            },
            Expect::Any,
        )
        .map_err(|e| seed_err("configuration record", e))?;
    }
    for (service, min, max, metric, target) in [
        ("orders-api", 2, 8, "cpuPercentage", 60.0),
        ("cart", 2, 6, "cpuPercentage", 60.0),
        ("storefront", 2, 6, "HttpResponseTime", 120.0),
    ] {
        unit.put(
            &ScalingPolicy {
                id: format!("{service}-autoscale"),
                tenant_id: TENANT.to_owned(),
                environment_id: ENVIRONMENT.to_owned(),
                service_id: service.to_owned(),
                min_replicas: min,
                max_replicas: max,
                metric: metric.to_owned(),
                target,
                cooldown_seconds: 120,
                enabled: true,
                last_action: None,
            },
            Expect::Any,
        )
        .map_err(|e| seed_err("scaling policy", e))?;
    }
    store
        .commit(unit)
        .await
        .map_err(|e| seed_err("committing records", e))?;
    Ok(specs)
}
