//! What a rollout applies: conversions between the port's `ServiceSpec`, what the control plane
//! observes, and the record's `DeploymentSpec`; deterministic deployment ids for redeploys.

use std::collections::BTreeMap;

use fleet_cloud::{ObservedService, ServiceSpec};
use fleet_envelope::FLEET_NAMESPACE;
use fleet_store::records::{DeploymentSpec, RuntimeService};
use fleet_worker_support::convert::{to_cloud, to_stored};
use uuid::Uuid;

/// The label a redeploy sets (to its deployment id) so the platform starts a new revision even
/// when nothing else changed — the `kubectl rollout restart` idea. Labels are not drift.
pub const RESTART_LABEL: &str = "fleet.restartedBy";

/// A deterministic deployment id: the same trigger always names the same deployment, so a
/// redelivered or re-emitted trigger finds the rollout it already started.
pub fn deployment_id(kind: &str, parts: &[&str]) -> String {
    let name = parts.join("\u{0}");
    let id = Uuid::new_v5(&FLEET_NAMESPACE, format!("{kind}\u{0}{name}").as_bytes());
    format!("{kind}-{}", id.simple())
}

/// The spec that reproduces what the control plane runs now.
pub fn observed_spec(o: &ObservedService) -> ServiceSpec {
    ServiceSpec {
        id: o.id.clone(),
        environment_id: o.environment_id.clone(),
        platform: o.platform,
        image: o.image.clone(),
        replicas: o.replicas,
        configuration_id: o.configuration_id.clone(),
        config_version: o.config_version,
        secret_bindings: o
            .secret_versions
            .iter()
            .map(|(binding, r)| (binding.clone(), r.secret_name.clone()))
            .collect(),
        labels: o.labels.clone(),
    }
}

/// The spec an inventory record asks for (no configuration id or secrets: records do not keep
/// them).
pub fn record_spec(r: &RuntimeService) -> ServiceSpec {
    let mut s = ServiceSpec::new(
        &r.id,
        &r.environment_id,
        to_cloud(r.platform),
        &r.image,
        r.replicas,
    );
    s.config_version = r.config_version;
    s
}

/// The record form of a spec (versions only, never values).
pub fn to_record(s: &ServiceSpec, secret_versions: BTreeMap<String, String>) -> DeploymentSpec {
    DeploymentSpec {
        platform: to_stored(s.platform),
        image: s.image.clone(),
        replicas: s.replicas,
        config_version: s.config_version,
        secret_versions,
        env: BTreeMap::new(),
    }
}

/// The record form of what runs now, kept as the rollback target.
pub fn observed_record(o: &ObservedService) -> DeploymentSpec {
    let versions = o
        .secret_versions
        .iter()
        .map(|(binding, r)| (binding.clone(), r.version.clone()))
        .collect();
    to_record(&observed_spec(o), versions)
}

/// The spec that restores `previous`. Configuration id, secret names and labels come from the
/// spec being rolled back (the record keeps versions only), which names the same service.
pub fn rollback_spec(previous: &DeploymentSpec, rolled_back: &ServiceSpec) -> ServiceSpec {
    let mut s = rolled_back.clone();
    s.platform = to_cloud(previous.platform);
    s.image = previous.image.clone();
    s.replicas = previous.replicas;
    s.config_version = previous.config_version;
    if previous.config_version.is_none() {
        s.configuration_id = None;
    }
    s.labels.remove(RESTART_LABEL);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_ids_are_deterministic_and_distinct() {
        let a = deployment_id("config", &["t1", "env-1", "svc", "cfg", "3"]);
        assert_eq!(
            a,
            deployment_id("config", &["t1", "env-1", "svc", "cfg", "3"])
        );
        assert_ne!(
            a,
            deployment_id("config", &["t1", "env-1", "svc", "cfg", "4"])
        );
        assert_ne!(
            a,
            deployment_id("config", &["t1", "env-1", "svccfg", "", "3"])
        );
        assert!(a.starts_with("config-"));
    }
}
