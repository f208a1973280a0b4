//! Drift comparison: desired specs against observed services, joined on (environment, id).
//!
//! The join is a hash map over the observed side, so a pass is O(desired + observed); 100,000
//! services compare in well under a second (see `benches/drift.rs`).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{ObservedService, ServiceSpec};

/// What differs between desired and observed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DriftKind {
    /// A desired service does not exist.
    Missing,
    /// The service runs on another platform than desired.
    Platform,
    /// A different image is running.
    Image,
    /// A different replica count is running.
    Replicas,
    /// A different configuration (id or version) is applied.
    Configuration,
    /// A live service is in no desired state.
    Extra,
}

impl DriftKind {
    /// The stable name used in finding hashes (never change these).
    pub fn as_str(&self) -> &'static str {
        match self {
            DriftKind::Missing => "missing",
            DriftKind::Platform => "platform",
            DriftKind::Image => "image",
            DriftKind::Replicas => "replicas",
            DriftKind::Configuration => "configuration",
            DriftKind::Extra => "extra",
        }
    }
}

/// One difference, with a hash that identifies it across passes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftItem {
    /// The environment of the service.
    pub environment_id: String,
    /// The service that drifted.
    pub service_id: String,
    /// What differs.
    pub kind: DriftKind,
    /// The desired value (`null` for an extra service).
    pub desired: Value,
    /// The observed value (`null` for a missing service).
    pub actual: Value,
    /// SHA-256 (lowercase hex) of environment, service, kind, desired and actual: the same drift
    /// seen on two passes has the same hash, so findings merge instead of repeating.
    pub finding_hash: String,
}

impl DriftItem {
    fn new(
        environment_id: &str,
        service_id: &str,
        kind: DriftKind,
        desired: Value,
        actual: Value,
    ) -> Self {
        let finding_hash = finding_hash(environment_id, service_id, kind, &desired, &actual);
        DriftItem {
            environment_id: environment_id.to_owned(),
            service_id: service_id.to_owned(),
            kind,
            desired,
            actual,
            finding_hash,
        }
    }
}

/// The hash of a finding. Fields are separated by a NUL byte, which no id or JSON text holds
/// unescaped, so two different findings cannot concatenate to the same input.
pub fn finding_hash(
    environment_id: &str,
    service_id: &str,
    kind: DriftKind,
    desired: &Value,
    actual: &Value,
) -> String {
    let mut h = Sha256::new();
    for part in [
        environment_id.as_bytes(),
        service_id.as_bytes(),
        kind.as_str().as_bytes(),
    ] {
        h.update(part);
        h.update([0u8]);
    }
    h.update(desired.to_string().as_bytes());
    h.update([0u8]);
    h.update(actual.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// How replica counts are compared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReplicaCheck {
    /// Any difference is drift (services without autoscaling).
    #[default]
    Exact,
    /// Only fewer replicas than desired is drift: the desired count is the floor an autoscaler
    /// (the scaling-policy worker) builds on.
    AtLeast,
    /// Replicas are not compared.
    Ignore,
}

/// What [`diff_with`] compares.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// How replica counts are compared.
    pub replicas: ReplicaCheck,
}

/// Every difference between `desired` and `observed`, ordered by (environment, service, kind),
/// with exact replica comparison. See [`diff_with`].
pub fn diff(desired: &[ServiceSpec], observed: &[ObservedService]) -> Vec<DriftItem> {
    diff_with(desired, observed, DiffOptions::default())
}

/// Every difference between `desired` and `observed`, ordered by (environment, service, kind).
///
/// A service present on both sides is compared on platform, image, replicas (per `options`) and
/// — when the spec names one — configuration id and version. Labels and secret versions are not
/// drift: labels are informational and secrets rotate on their own schedule.
pub fn diff_with(
    desired: &[ServiceSpec],
    observed: &[ObservedService],
    options: DiffOptions,
) -> Vec<DriftItem> {
    let mut live: HashMap<(&str, &str), &ObservedService> = HashMap::with_capacity(observed.len());
    for o in observed {
        live.insert((o.environment_id.as_str(), o.id.as_str()), o);
    }
    let mut items = Vec::new();
    for d in desired {
        let env = d.environment_id.as_str();
        let Some(o) = live.remove(&(env, d.id.as_str())) else {
            items.push(DriftItem::new(
                env,
                &d.id,
                DriftKind::Missing,
                spec_summary(d),
                Value::Null,
            ));
            continue;
        };
        if o.platform != d.platform {
            items.push(DriftItem::new(
                env,
                &d.id,
                DriftKind::Platform,
                json!(d.platform),
                json!(o.platform),
            ));
        }
        if o.image != d.image {
            items.push(DriftItem::new(
                env,
                &d.id,
                DriftKind::Image,
                json!(d.image),
                json!(o.image),
            ));
        }
        let replicas_drift = match options.replicas {
            ReplicaCheck::Exact => o.replicas != d.replicas,
            ReplicaCheck::AtLeast => o.replicas < d.replicas,
            ReplicaCheck::Ignore => false,
        };
        if replicas_drift {
            items.push(DriftItem::new(
                env,
                &d.id,
                DriftKind::Replicas,
                json!(d.replicas),
                json!(o.replicas),
            ));
        }
        let config_differs = (d.configuration_id.is_some()
            && d.configuration_id != o.configuration_id)
            || (d.config_version.is_some() && d.config_version != o.config_version);
        if config_differs {
            items.push(DriftItem::new(
                env,
                &d.id,
                DriftKind::Configuration,
                json!({"configurationId": d.configuration_id, "version": d.config_version}),
                json!({"configurationId": o.configuration_id, "version": o.config_version}),
            ));
        }
    }
    for o in observed {
        if live.contains_key(&(o.environment_id.as_str(), o.id.as_str())) {
            items.push(DriftItem::new(
                &o.environment_id,
                &o.id,
                DriftKind::Extra,
                Value::Null,
                json!({"platform": o.platform, "image": o.image, "replicas": o.replicas}),
            ));
        }
    }
    items.sort_by(|a, b| {
        (a.environment_id.as_str(), a.service_id.as_str(), a.kind).cmp(&(
            b.environment_id.as_str(),
            b.service_id.as_str(),
            b.kind,
        ))
    });
    items
}

fn spec_summary(d: &ServiceSpec) -> Value {
    json!({"platform": d.platform, "image": d.image, "replicas": d.replicas})
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{PlatformKind, ProvisioningState, ServiceEndpoints};

    fn spec(id: &str, image: &str, replicas: u32) -> ServiceSpec {
        ServiceSpec::new(id, "env-1", PlatformKind::ContainerApps, image, replicas)
    }

    fn live(s: &ServiceSpec) -> ObservedService {
        ObservedService {
            id: s.id.clone(),
            environment_id: s.environment_id.clone(),
            platform: s.platform,
            resource_id: format!("/apps/{}", s.id),
            image: s.image.clone(),
            replicas: s.replicas,
            ready_replicas: s.replicas,
            configuration_id: s.configuration_id.clone(),
            config_version: s.config_version,
            secret_versions: BTreeMap::new(),
            endpoints: ServiceEndpoints::default(),
            provisioning_state: ProvisioningState::Succeeded,
            generation: 1,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn matching_state_has_no_drift() {
        let d = vec![spec("a", "img:1", 2), spec("b", "img:2", 1)];
        let o: Vec<_> = d.iter().map(live).collect();
        assert!(diff(&d, &o).is_empty());
    }

    #[test]
    fn reports_image_replicas_config_missing_and_extra() {
        let mut a = spec("a", "img:1", 2);
        a.configuration_id = Some("cfg".into());
        a.config_version = Some(3);
        let b = spec("b", "img:2", 1);
        let mut live_a = live(&a);
        live_a.image = "img:hotfix".into();
        live_a.replicas = 5;
        live_a.config_version = Some(2);
        let extra = live(&spec("z", "img:9", 1));
        let items = diff(&[a, b], &[live_a, extra]);
        let kinds: Vec<_> = items
            .iter()
            .map(|i| (i.service_id.as_str(), i.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("a", DriftKind::Image),
                ("a", DriftKind::Replicas),
                ("a", DriftKind::Configuration),
                ("b", DriftKind::Missing),
                ("z", DriftKind::Extra),
            ]
        );
        assert_eq!(items[0].desired, json!("img:1"));
        assert_eq!(items[0].actual, json!("img:hotfix"));
    }

    #[test]
    fn replica_checks_follow_the_options() {
        let d = vec![spec("a", "img:1", 3)];
        let kinds = |running: u32, replicas: ReplicaCheck| {
            let mut o = live(&d[0]);
            o.replicas = running;
            diff_with(&d, &[o], DiffOptions { replicas })
                .into_iter()
                .map(|i| i.kind)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(5, ReplicaCheck::Exact), [DriftKind::Replicas]);
        assert!(kinds(5, ReplicaCheck::AtLeast).is_empty());
        assert_eq!(kinds(2, ReplicaCheck::AtLeast), [DriftKind::Replicas]);
        assert!(kinds(0, ReplicaCheck::Ignore).is_empty());
    }

    #[test]
    fn finding_hash_is_stable_and_distinguishes_values() {
        let d = vec![spec("a", "img:1", 2)];
        let mut o = live(&d[0]);
        o.image = "img:2".into();
        let first = diff(&d, std::slice::from_ref(&o));
        let again = diff(&d, std::slice::from_ref(&o));
        assert_eq!(first[0].finding_hash, again[0].finding_hash);
        assert_eq!(first[0].finding_hash.len(), 64);
        o.image = "img:3".into();
        let other = diff(&d, &[o]);
        assert_ne!(first[0].finding_hash, other[0].finding_hash);
    }

    #[test]
    fn services_join_per_environment() {
        let d = vec![spec("a", "img:1", 1)];
        let mut o = live(&d[0]);
        o.environment_id = "env-2".into();
        let kinds: Vec<_> = diff(&d, &[o])
            .into_iter()
            .map(|i| (i.environment_id, i.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("env-1".to_string(), DriftKind::Missing),
                ("env-2".to_string(), DriftKind::Extra)
            ]
        );
    }
}
