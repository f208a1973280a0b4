//! The simulated world: services, operations and secrets, persisted as one JSON document.
//!
//! Live state changes only on requests (port calls, injected drift); what time changes —
//! an operation finishing, a rollout becoming ready — is derived from the clock when read, so
//! nothing needs a background task and a manual clock drives everything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use fleet_cloud::{
    CloudError, ObservedService, Operation, OperationKind, OperationStatus, PlatformKind,
    ProvisioningState, Scope, SecretBindingRef, ServiceEndpoints,
};
use serde::{Deserialize, Serialize};

use crate::health::HealthFaults;
use crate::load::LoadProfile;

/// Format version of the data file, checked on load.
const FORMAT: u32 = 1;
/// Finished operations kept for polling; older ones are forgotten (ARM forgets them too).
const MAX_OPERATIONS: usize = 10_000;
/// Largest data file loaded (about a million services): bounds memory before parsing.
const MAX_DATA_FILE_BYTES: u64 = 1 << 30;
/// Replica changes kept per service for metrics history.
const MAX_REPLICA_HISTORY: usize = 64;

/// The image tag that never becomes ready (a crash-looping build).
pub const BROKEN_TAG: &str = ":broken";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct State {
    #[serde(default)]
    pub format: u32,
    pub services: BTreeMap<String, ServiceRecord>,
    pub operations: BTreeMap<String, OperationRecord>,
    pub secrets: BTreeMap<String, Vec<StoredVersion>>,
    pub next_operation: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServiceRecord {
    pub tenant_id: String,
    pub environment_id: String,
    pub id: String,
    pub platform: PlatformKind,
    pub image: String,
    pub replicas: u32,
    pub configuration_id: Option<String>,
    pub config_version: Option<u64>,
    pub config_values: BTreeMap<String, String>,
    pub secret_bindings: BTreeMap<String, SecretBindingRef>,
    pub labels: BTreeMap<String, String>,
    pub generation: u64,
    /// The change in flight, if any; its end is a time, so the clock decides when it lands.
    pub pending: Option<Pending>,
    pub created_at: DateTime<Utc>,
    pub load: LoadProfile,
    pub load_since: DateTime<Utc>,
    /// (from, replicas) pairs, oldest first, so past metrics keep the replica count they had.
    pub replica_history: Vec<(DateTime<Utc>, u32)>,
    pub health: HealthFaults,
    pub dependencies: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Pending {
    pub operation_id: String,
    pub kind: OperationKind,
    pub completes_at: DateTime<Utc>,
    /// Replicas that keep serving while the change converges.
    pub ready_during: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OperationRecord {
    pub id: String,
    pub scope: Scope,
    pub service_id: String,
    pub kind: OperationKind,
    pub generation: u64,
    pub changed: bool,
    pub started_at: DateTime<Utc>,
    pub completes_at: DateTime<Utc>,
    pub canceled: bool,
    /// Set when the change cannot succeed (e.g. a broken image); reported once it completes.
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredVersion {
    pub version: String,
    /// Plain text on disk: the sandbox's data file is as sensitive as a vault export.
    pub value: String,
    pub enabled: bool,
    pub created: DateTime<Utc>,
}

pub(crate) fn key(tenant: &str, environment: &str, id: &str) -> String {
    format!("{tenant}/{environment}/{id}")
}

pub(crate) fn scope_prefix(scope: &Scope) -> String {
    format!("{}/{}/", scope.tenant_id, scope.environment_id)
}

impl ServiceRecord {
    pub fn key(&self) -> String {
        key(&self.tenant_id, &self.environment_id, &self.id)
    }

    pub fn is_broken(&self) -> bool {
        self.image.ends_with(BROKEN_TAG)
    }

    /// The in-flight change, if it has not landed by `now`.
    pub fn converging(&self, now: DateTime<Utc>) -> Option<&Pending> {
        self.pending.as_ref().filter(|p| now < p.completes_at)
    }

    /// True once a delete has landed: the record is gone for every reader.
    pub fn is_deleted(&self, now: DateTime<Utc>) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.kind == OperationKind::Delete && now >= p.completes_at)
    }

    pub fn provisioning_state(&self, now: DateTime<Utc>) -> ProvisioningState {
        match self.converging(now) {
            Some(p) if p.kind == OperationKind::Delete => ProvisioningState::Deleting,
            Some(_) if self.generation <= 1 => ProvisioningState::Creating,
            Some(_) => ProvisioningState::Updating,
            None if self.is_broken() => ProvisioningState::Failed,
            None => ProvisioningState::Succeeded,
        }
    }

    pub fn ready_replicas(&self, now: DateTime<Utc>) -> u32 {
        if self.is_broken() || self.health.liveness_down || self.health.readiness_down {
            return 0;
        }
        match self.converging(now) {
            Some(p) => p.ready_during.min(self.replicas),
            None => self.replicas,
        }
    }

    pub fn replicas_at(&self, at: DateTime<Utc>) -> u32 {
        self.replica_history
            .iter()
            .rev()
            .find(|(from, _)| *from <= at)
            .map_or(self.replicas, |(_, r)| *r)
    }

    pub fn set_replicas(&mut self, replicas: u32, now: DateTime<Utc>) {
        self.replicas = replicas;
        self.replica_history.push((now, replicas));
        if self.replica_history.len() > MAX_REPLICA_HISTORY {
            let excess = self.replica_history.len() - MAX_REPLICA_HISTORY;
            self.replica_history.drain(..excess);
        }
    }

    pub fn observe(&self, now: DateTime<Utc>, base_url: &str) -> ObservedService {
        let svc = format!(
            "{base_url}/svc/{}/{}/{}",
            self.tenant_id, self.environment_id, self.id
        );
        let dependencies = self
            .dependencies
            .iter()
            .map(|d| (d.clone(), format!("{svc}/deps/{d}")))
            .collect();
        ObservedService {
            id: self.id.clone(),
            environment_id: self.environment_id.clone(),
            platform: self.platform,
            resource_id: resource_id(self),
            image: self.image.clone(),
            replicas: self.replicas,
            ready_replicas: self.ready_replicas(now),
            configuration_id: self.configuration_id.clone(),
            config_version: self.config_version,
            secret_versions: self.secret_bindings.clone(),
            endpoints: ServiceEndpoints {
                liveness: Some(format!("{svc}/live")),
                readiness: Some(format!("{svc}/ready")),
                dependencies,
            },
            provisioning_state: self.provisioning_state(now),
            generation: self.generation,
            labels: self.labels.clone(),
        }
    }
}

/// The id the real control plane would give the resource.
fn resource_id(r: &ServiceRecord) -> String {
    let group = format!(
        "/subscriptions/{}/resourceGroups/{}",
        r.tenant_id, r.environment_id
    );
    match r.platform {
        PlatformKind::Aks => format!("{}/apps/v1/deployments/{}", r.environment_id, r.id),
        PlatformKind::ContainerApps => {
            format!("{group}/providers/Microsoft.App/containerApps/{}", r.id)
        }
        PlatformKind::Functions | PlatformKind::AppService => {
            format!("{group}/providers/Microsoft.Web/sites/{}", r.id)
        }
    }
}

impl OperationRecord {
    pub fn status(&self, now: DateTime<Utc>) -> OperationStatus {
        if self.canceled {
            OperationStatus::Canceled
        } else if now < self.completes_at {
            OperationStatus::InProgress
        } else if self.failure.is_some() {
            OperationStatus::Failed
        } else {
            OperationStatus::Succeeded
        }
    }

    pub fn view(&self, now: DateTime<Utc>) -> Operation {
        let status = self.status(now);
        let remaining = (self.completes_at - now).to_std().ok();
        Operation {
            id: self.id.clone(),
            kind: self.kind,
            service_id: self.service_id.clone(),
            status,
            changed: self.changed,
            generation: self.generation,
            started_at: self.started_at,
            poll_after: if status == OperationStatus::InProgress {
                remaining
            } else {
                None
            },
            error: if status == OperationStatus::Failed {
                self.failure.clone()
            } else {
                None
            },
        }
    }
}

impl State {
    pub fn insert_operation(&mut self, record: OperationRecord) {
        self.operations.insert(record.id.clone(), record);
        while self.operations.len() > MAX_OPERATIONS {
            // Ids sort by creation (zero-padded counter), so the first is the oldest.
            let Some(oldest) = self.operations.keys().next().cloned() else {
                break;
            };
            self.operations.remove(&oldest);
        }
    }

    pub fn next_operation_id(&mut self) -> String {
        self.next_operation += 1;
        format!("op-{:012}", self.next_operation)
    }

    /// Drops services whose delete has landed, so a new apply starts from nothing.
    pub fn prune_deleted(&mut self, now: DateTime<Utc>) {
        self.services.retain(|_, s| !s.is_deleted(now));
    }
}

/// Loads the data file, or an empty world when it does not exist yet.
pub(crate) fn load(path: &Path) -> Result<State, CloudError> {
    if let Some(len) = std::fs::metadata(path)
        .ok()
        .map(|m| m.len())
        .filter(|l| *l > MAX_DATA_FILE_BYTES)
    {
        return Err(CloudError::permanent(format!(
            "{}: the sandbox data file is {len} bytes, over the limit of {MAX_DATA_FILE_BYTES}",
            path.display()
        )));
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(State {
                format: FORMAT,
                ..State::default()
            });
        }
        Err(e) => {
            return Err(CloudError::permanent(format!(
                "{}: cannot read the sandbox data file",
                path.display()
            ))
            .with_source(e));
        }
    };
    let state: State = serde_json::from_slice(&bytes).map_err(|e| {
        CloudError::permanent(format!(
            "{}: the sandbox data file is corrupt",
            path.display()
        ))
        .with_source(e)
    })?;
    if state.format != FORMAT {
        return Err(CloudError::permanent(format!(
            "{}: data file format {} is not supported (expected {FORMAT})",
            path.display(),
            state.format
        )));
    }
    Ok(state)
}

/// Writes the data file atomically (temp file + rename), so a crash leaves the old or the new
/// document, never half of one.
pub(crate) fn save(path: &Path, state: &State) -> Result<(), CloudError> {
    let bytes = serde_json::to_vec(state)
        .map_err(|e| CloudError::permanent("cannot serialise the sandbox state").with_source(e))?;
    let tmp: PathBuf = path.with_extension("json.tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            CloudError::transient(format!(
                "{}: cannot write the sandbox data file",
                path.display()
            ))
            .with_source(e)
        })
}

pub(crate) fn new_state() -> State {
    State {
        format: FORMAT,
        ..State::default()
    }
}
