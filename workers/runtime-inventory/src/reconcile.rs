//! The pure part of the loop: records + observations in, the changes to write out.
//!
//! O(records + observed): observations are indexed by id once. Records whose observed fields
//! already match produce nothing, which is what makes the loop convergent.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fleet_cloud::{ObservedService, ProvisioningState, Scope};
use fleet_envelope::payload::{InventoryChange, ObservedRuntime, RuntimeInventoryUpdated};
use fleet_runtime::Expect;
use fleet_store::Versioned;
use fleet_store::records::{ObservedState, RuntimeService, ServiceEndpoints, ServiceStatus};
use fleet_worker_support::convert::{to_cloud, to_stored, to_wire};

/// One record to write and the event announcing it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The record as it should be.
    pub record: RuntimeService,
    /// The version the write is conditional on (`Absent` for a new record).
    pub expect: Expect,
    /// The `RuntimeInventoryUpdated` payload.
    pub event: RuntimeInventoryUpdated,
}

/// The changes that make `records` match `observed` in `scope` at `now`.
///
/// A service the control plane reports but the records lack is `added` (its desired image and
/// replicas start as observed); a record whose observed fields differ is `updated`; a record the
/// control plane no longer reports becomes `Missing` and is `removed` (the record stays: it is
/// still desired until someone deletes it).
pub fn reconcile(
    scope: &Scope,
    records: &[Versioned<RuntimeService>],
    observed: &[ObservedService],
    now: DateTime<Utc>,
) -> Vec<Change> {
    let mut live: HashMap<&str, &ObservedService> = HashMap::with_capacity(observed.len());
    for o in observed {
        if o.environment_id == scope.environment_id {
            live.insert(o.id.as_str(), o);
        }
    }
    let mut changes = Vec::new();
    for v in records {
        let r = &v.record;
        match live.remove(r.id.as_str()) {
            Some(o) => {
                if let Some(c) = update(v, o, now) {
                    changes.push(c);
                }
            }
            None => {
                if r.observed.is_some() || r.status != ServiceStatus::Missing {
                    changes.push(removed(v, now));
                }
            }
        }
    }
    let mut added: Vec<&ObservedService> = live.into_values().collect();
    added.sort_by(|a, b| a.id.cmp(&b.id));
    for o in added {
        changes.push(add(scope, o, now));
    }
    changes
}

fn status(o: &ObservedService) -> ServiceStatus {
    match o.provisioning_state {
        ProvisioningState::Failed => ServiceStatus::Failed,
        _ if o.replicas == 0 => ServiceStatus::Stopped,
        ProvisioningState::Creating | ProvisioningState::Updating => ServiceStatus::Pending,
        ProvisioningState::Deleting => ServiceStatus::Stopped,
        ProvisioningState::Succeeded if o.ready_replicas >= o.replicas => ServiceStatus::Running,
        ProvisioningState::Succeeded => ServiceStatus::Degraded,
    }
}

fn provisioning(o: &ObservedService) -> String {
    match o.provisioning_state {
        ProvisioningState::Creating => "Creating",
        ProvisioningState::Updating => "Updating",
        ProvisioningState::Succeeded => "Succeeded",
        ProvisioningState::Failed => "Failed",
        ProvisioningState::Deleting => "Deleting",
    }
    .to_owned()
}

fn observed_state(o: &ObservedService, now: DateTime<Utc>) -> ObservedState {
    ObservedState {
        image: o.image.clone(),
        replicas: o.replicas,
        ready_replicas: o.ready_replicas,
        config_version: o.config_version,
        revision: Some(o.generation.to_string()),
        provisioning_state: Some(provisioning(o)),
        observed_at: now,
    }
}

fn endpoints(o: &ObservedService) -> ServiceEndpoints {
    ServiceEndpoints {
        url: None,
        liveness: o.endpoints.liveness.clone(),
        readiness: o.endpoints.readiness.clone(),
        dependencies: o.endpoints.dependencies.clone(),
    }
}

fn event(
    r: &RuntimeService,
    change: InventoryChange,
    fields: Vec<String>,
) -> RuntimeInventoryUpdated {
    RuntimeInventoryUpdated {
        service_id: r.id.clone(),
        platform: to_wire(to_cloud(r.platform)),
        resource_id: r
            .resource_id
            .clone()
            .unwrap_or_else(|| format!("{}/{}", r.environment_id, r.id)),
        change,
        changed_fields: fields,
        observed: r.observed.as_ref().map(|o| ObservedRuntime {
            image: Some(o.image.clone()),
            replicas: Some(o.replicas),
            revision: o.revision.clone(),
            provisioning_state: o.provisioning_state.clone(),
        }),
    }
}

fn update(
    v: &Versioned<RuntimeService>,
    o: &ObservedService,
    now: DateTime<Utc>,
) -> Option<Change> {
    let r = &v.record;
    let fresh = observed_state(o, now);
    let mut fields = Vec::new();
    match &r.observed {
        None => fields.push("observed".to_owned()),
        Some(old) => {
            let pairs = [
                ("image", old.image != fresh.image),
                ("replicas", old.replicas != fresh.replicas),
                ("readyReplicas", old.ready_replicas != fresh.ready_replicas),
                ("configVersion", old.config_version != fresh.config_version),
                ("revision", old.revision != fresh.revision),
                (
                    "provisioningState",
                    old.provisioning_state != fresh.provisioning_state,
                ),
            ];
            fields.extend(
                pairs
                    .iter()
                    .filter(|(_, d)| *d)
                    .map(|(n, _)| (*n).to_owned()),
            );
        }
    }
    let new_status = status(o);
    if r.status != new_status {
        fields.push("status".to_owned());
    }
    let new_endpoints = endpoints(o);
    if r.endpoints != new_endpoints {
        fields.push("endpoints".to_owned());
    }
    if r.resource_id.as_deref() != Some(o.resource_id.as_str()) {
        fields.push("resourceId".to_owned());
    }
    let platform = to_stored(o.platform);
    if r.platform != platform {
        fields.push("platform".to_owned());
    }
    if fields.is_empty() {
        return None;
    }
    let mut record = r.clone();
    record.observed = Some(fresh);
    record.status = new_status;
    record.endpoints = new_endpoints;
    record.resource_id = Some(o.resource_id.clone());
    record.platform = platform;
    record.updated_at = now;
    let event = event(&record, InventoryChange::Updated, fields);
    Some(Change {
        record,
        expect: Expect::Version(v.version),
        event,
    })
}

fn removed(v: &Versioned<RuntimeService>, now: DateTime<Utc>) -> Change {
    let mut record = v.record.clone();
    record.observed = None;
    record.status = ServiceStatus::Missing;
    record.updated_at = now;
    let event = event(&record, InventoryChange::Removed, Vec::new());
    Change {
        record,
        expect: Expect::Version(v.version),
        event,
    }
}

fn add(scope: &Scope, o: &ObservedService, now: DateTime<Utc>) -> Change {
    let record = RuntimeService {
        id: o.id.clone(),
        tenant_id: scope.tenant_id.clone(),
        environment_id: scope.environment_id.clone(),
        name: o.id.clone(),
        platform: to_stored(o.platform),
        resource_id: Some(o.resource_id.clone()),
        image: o.image.clone(),
        replicas: o.replicas,
        config_version: o.config_version,
        status: status(o),
        endpoints: endpoints(o),
        observed: Some(observed_state(o, now)),
        labels: o.labels.clone(),
        updated_at: now,
    };
    let event = event(&record, InventoryChange::Added, Vec::new());
    Change {
        record,
        expect: Expect::Absent,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_cloud::{PlatformKind, ServiceEndpoints as Endpoints};
    use std::collections::BTreeMap;

    fn obs(id: &str, replicas: u32) -> ObservedService {
        ObservedService {
            id: id.into(),
            environment_id: "e".into(),
            platform: PlatformKind::Aks,
            resource_id: format!("e/apps/v1/deployments/{id}"),
            image: "img:1".into(),
            replicas,
            ready_replicas: replicas,
            configuration_id: None,
            config_version: None,
            secret_versions: BTreeMap::new(),
            endpoints: Endpoints::default(),
            provisioning_state: ProvisioningState::Succeeded,
            generation: 1,
            labels: BTreeMap::new(),
        }
    }

    fn versioned(changes: Vec<Change>, now: DateTime<Utc>) -> Vec<Versioned<RuntimeService>> {
        changes
            .into_iter()
            .map(|c| Versioned {
                version: 1,
                updated_at: now,
                record: c.record,
            })
            .collect()
    }

    #[test]
    fn a_second_pass_over_unchanged_state_changes_nothing() {
        let scope = Scope::new("t", "e");
        let now = Utc::now();
        let observed = vec![obs("a", 2), obs("b", 1)];
        let first = reconcile(&scope, &[], &observed, now);
        assert_eq!(first.len(), 2);
        assert!(
            first
                .iter()
                .all(|c| c.event.change == InventoryChange::Added)
        );
        let records = versioned(first, now);
        let later = now + chrono::Duration::minutes(2);
        assert!(reconcile(&scope, &records, &observed, later).is_empty());
    }

    #[test]
    fn changed_and_vanished_services_are_updated_and_removed_once() {
        let scope = Scope::new("t", "e");
        let now = Utc::now();
        let records = versioned(
            reconcile(&scope, &[], &[obs("a", 2), obs("b", 1)], now),
            now,
        );
        let changes = reconcile(&scope, &records, &[obs("a", 5)], now);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].event.change, InventoryChange::Updated);
        assert_eq!(
            changes[0].event.changed_fields,
            vec!["replicas", "readyReplicas"]
        );
        assert_eq!(changes[0].expect, Expect::Version(1));
        assert_eq!(changes[1].event.change, InventoryChange::Removed);
        let records = versioned(changes, now);
        assert_eq!(
            reconcile(&scope, &records, &[obs("a", 5)], now)
                .iter()
                .map(|c| c.event.change)
                .collect::<Vec<_>>(),
            Vec::<InventoryChange>::new(),
            "a missing service is reported removed once"
        );
    }
}
