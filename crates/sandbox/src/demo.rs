//! A demo environment: two services on every platform kind, with dependencies, load, a
//! configuration and a vault secret — and the desired-state manifests that match it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fleet_cloud::{CloudError, PlatformKind, Scope, SecretBindingRef, ServiceSpec};

use crate::load::LoadProfile;
use crate::state::{StoredVersion, key};
use crate::validate::check_scope;
use crate::world::{Sandbox, new_record};

struct DemoService {
    id: &'static str,
    platform: PlatformKind,
    tag: &'static str,
    replicas: u32,
    config: Option<(&'static str, u64)>,
    secret: Option<(&'static str, &'static str)>,
    dependencies: &'static [&'static str],
    load: LoadProfile,
}

fn catalog() -> Vec<DemoService> {
    let steady = |rps| LoadProfile::Constant { rps };
    vec![
        DemoService {
            id: "catalog",
            platform: PlatformKind::Aks,
            tag: "7.2.0",
            replicas: 3,
            config: None,
            secret: None,
            dependencies: &["db", "cache"],
            load: steady(60.0),
        },
        DemoService {
            id: "search",
            platform: PlatformKind::Aks,
            tag: "3.9.1",
            replicas: 2,
            config: None,
            secret: None,
            dependencies: &["index"],
            load: steady(25.0),
        },
        DemoService {
            id: "orders-api",
            platform: PlatformKind::ContainerApps,
            tag: "2.1.0",
            replicas: 2,
            config: Some(("orders-config", 1)),
            secret: Some(("db", "orders-db-password")),
            dependencies: &["db", "payments"],
            load: LoadProfile::Ramp {
                from_rps: 20.0,
                to_rps: 120.0,
                over_secs: 1800,
            },
        },
        DemoService {
            id: "cart",
            platform: PlatformKind::ContainerApps,
            tag: "1.4.2",
            replicas: 2,
            config: None,
            secret: None,
            dependencies: &["cache"],
            load: steady(30.0),
        },
        DemoService {
            id: "billing-fn",
            platform: PlatformKind::Functions,
            tag: "1.0.3",
            replicas: 1,
            config: Some(("billing-config", 1)),
            secret: None,
            dependencies: &["db"],
            load: steady(5.0),
        },
        DemoService {
            id: "notify-fn",
            platform: PlatformKind::Functions,
            tag: "0.8.0",
            replicas: 1,
            config: None,
            secret: None,
            dependencies: &[],
            load: steady(2.0),
        },
        DemoService {
            id: "storefront",
            platform: PlatformKind::AppService,
            tag: "5.0.0",
            replicas: 2,
            config: None,
            secret: None,
            dependencies: &["cdn"],
            load: LoadProfile::Spike {
                base_rps: 40.0,
                peak_rps: 160.0,
                after_secs: 600,
                for_secs: 300,
            },
        },
        DemoService {
            id: "admin-portal",
            platform: PlatformKind::AppService,
            tag: "1.2.0",
            replicas: 1,
            config: None,
            secret: None,
            dependencies: &[],
            load: steady(1.0),
        },
    ]
}

impl Sandbox {
    /// Creates the demo services of `environment` for `tenant`, already running and ready, and
    /// returns their specs (ordered by id). Services that already exist are left as they are.
    pub fn seed_demo(
        &self,
        tenant: &str,
        environment: &str,
    ) -> Result<Vec<ServiceSpec>, CloudError> {
        let scope = Scope::new(tenant, environment);
        check_scope(&scope)?;
        let inner = self.inner();
        let now = inner.now();
        let mut state = inner.lock()?;
        state.prune_deleted(now);
        let mut specs = Vec::new();
        for d in catalog() {
            let mut spec = ServiceSpec::new(
                d.id,
                environment,
                d.platform,
                format!("fleetdemo.azurecr.io/{}:{}", d.id, d.tag),
                d.replicas,
            );
            if let Some((cfg, version)) = d.config {
                spec.configuration_id = Some(cfg.to_owned());
                spec.config_version = Some(version);
            }
            spec.labels.insert("app".into(), d.id.into());
            let mut binding_version = None;
            if let Some((binding, secret)) = d.secret {
                spec.secret_bindings.insert(binding.into(), secret.into());
                let versions = state
                    .secrets
                    .entry(key(tenant, environment, secret))
                    .or_default();
                if versions.is_empty() {
                    versions.push(StoredVersion {
                        version: uuid::Uuid::new_v4().simple().to_string(),
                        value: uuid::Uuid::new_v4().to_string(),
                        enabled: true,
                        created: now,
                    });
                }
                binding_version = versions
                    .last()
                    .map(|v| (binding, secret, v.version.clone()));
            }
            let k = key(tenant, environment, d.id);
            if let std::collections::btree_map::Entry::Vacant(slot) = state.services.entry(k) {
                let mut record = new_record(&scope, &spec, now);
                if let Some((binding, secret, version)) = binding_version {
                    record.secret_bindings = BTreeMap::from([(
                        binding.to_owned(),
                        SecretBindingRef {
                            secret_name: secret.to_owned(),
                            version,
                        },
                    )]);
                }
                if d.config.is_some() {
                    record.config_values =
                        BTreeMap::from([("LOG_LEVEL".to_owned(), "info".to_owned())]);
                }
                record.dependencies = d.dependencies.iter().map(|s| (*s).to_owned()).collect();
                record.load = d.load;
                slot.insert(record);
            }
            specs.push(spec);
        }
        inner.persist(&state)?;
        specs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(specs)
    }
}

/// Writes one manifest per spec to `dir/<environment>/<service>.yaml` (the format of
/// `docs/desired-state.md`) and returns the paths written.
pub fn write_desired_state(dir: &Path, specs: &[ServiceSpec]) -> Result<Vec<PathBuf>, CloudError> {
    let mut written = Vec::with_capacity(specs.len());
    for spec in specs {
        let env_dir = dir.join(&spec.environment_id);
        std::fs::create_dir_all(&env_dir).map_err(|e| {
            CloudError::permanent(format!("{}: cannot create directory", env_dir.display()))
                .with_source(e)
        })?;
        let path = env_dir.join(format!("{}.yaml", spec.id));
        std::fs::write(&path, fleet_cloud::desired::manifest::to_yaml(spec)).map_err(|e| {
            CloudError::permanent(format!("{}: cannot write", path.display())).with_source(e)
        })?;
        written.push(path);
    }
    Ok(written)
}
