//! `Compute` over the simulated world: idempotent apply, long-running operations that land
//! after simulated time, scale, configuration, secret bindings and delete.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fleet_cloud::{
    CloudError, Compute, ObservedService, Operation, OperationKind, PlatformKind,
    ProvisioningState, Scope, SecretBindingRef, ServiceSpec,
};

use crate::faults::Port;
use crate::state::{OperationRecord, Pending, ServiceRecord, State, key, scope_prefix};
use crate::validate::{MAX_REPLICAS, bindings_of, check_name, check_scope, check_spec};
use crate::world::{Inner, new_record};

/// The compute control plane of one platform kind.
pub(crate) struct SandboxCompute {
    inner: Arc<Inner>,
    platform: PlatformKind,
}

struct Change {
    kind: OperationKind,
    duration: Duration,
    ready_during: u32,
}

impl SandboxCompute {
    pub fn new(inner: Arc<Inner>, platform: PlatformKind) -> Self {
        SandboxCompute { inner, platform }
    }

    fn not_found(&self, scope: &Scope, service_id: &str) -> CloudError {
        CloudError::not_found(format!(
            "{} service {service_id:?} not found in {scope}",
            self.platform
        ))
    }

    fn live<'a>(
        &self,
        state: &'a mut State,
        scope: &Scope,
        service_id: &str,
        now: DateTime<Utc>,
    ) -> Result<&'a mut ServiceRecord, CloudError> {
        state
            .services
            .get_mut(&key(&scope.tenant_id, &scope.environment_id, service_id))
            .filter(|s| !s.is_deleted(now) && s.platform == self.platform)
            .ok_or_else(|| self.not_found(scope, service_id))
    }

    /// Answers "nothing to do": the change in flight (when the request matches it) or a
    /// finished no-op operation.
    fn unchanged(
        &self,
        state: &mut State,
        scope: &Scope,
        service_id: &str,
        kind: OperationKind,
        now: DateTime<Utc>,
    ) -> Result<Operation, CloudError> {
        let record = self.live(state, scope, service_id, now)?;
        let generation = record.generation;
        let in_flight = record.converging(now).map(|p| p.operation_id.clone());
        if let Some(op) = in_flight.and_then(|id| state.operations.get(&id)) {
            let mut view = op.view(now);
            view.changed = false;
            return Ok(view);
        }
        let id = state.next_operation_id();
        let op = OperationRecord {
            id,
            scope: scope.clone(),
            service_id: service_id.to_owned(),
            kind,
            generation,
            changed: false,
            started_at: now,
            completes_at: now,
            canceled: false,
            failure: None,
        };
        let view = op.view(now);
        state.insert_operation(op);
        self.inner.persist(state)?;
        Ok(view)
    }

    /// Records a change to `service_id` that lands after `change.duration`, superseding any
    /// change in flight.
    fn start(
        &self,
        state: &mut State,
        scope: &Scope,
        service_id: &str,
        change: Change,
        now: DateTime<Utc>,
    ) -> Result<Operation, CloudError> {
        let operation_id = state.next_operation_id();
        let record = self.live(state, scope, service_id, now)?;
        let superseded = record.converging(now).map(|p| p.operation_id.clone());
        let completes_at =
            now + chrono::Duration::from_std(change.duration).unwrap_or(chrono::Duration::zero());
        record.pending = Some(Pending {
            operation_id: operation_id.clone(),
            kind: change.kind,
            completes_at,
            ready_during: change.ready_during,
        });
        let failure = (record.is_broken() && change.kind != OperationKind::Delete).then(|| {
            format!(
                "revision {} of {service_id} failed: image {} crash-loops and never becomes ready",
                record.generation, record.image
            )
        });
        let op = OperationRecord {
            id: operation_id,
            scope: scope.clone(),
            service_id: service_id.to_owned(),
            kind: change.kind,
            generation: record.generation,
            changed: true,
            started_at: now,
            completes_at,
            canceled: false,
            failure,
        };
        if let Some(old) = superseded.and_then(|id| state.operations.get_mut(&id)) {
            old.canceled = true;
        }
        let view = op.view(now);
        state.insert_operation(op);
        self.inner.persist(state)?;
        Ok(view)
    }
}

#[async_trait]
impl Compute for SandboxCompute {
    fn platform(&self) -> PlatformKind {
        self.platform
    }

    async fn apply(&self, scope: &Scope, spec: &ServiceSpec) -> Result<Operation, CloudError> {
        self.inner.gate(Port::Compute(self.platform)).await?;
        check_spec(scope, spec, self.platform)?;
        let now = self.inner.now();
        let t = self.inner.timings;
        let mut state = self.inner.lock()?;
        state.prune_deleted(now);
        let k = key(&scope.tenant_id, &scope.environment_id, &spec.id);
        let Some(record) = state.services.get_mut(&k) else {
            let mut record = new_record(scope, spec, now);
            record.generation = 1;
            state.services.insert(k, record);
            return self.start(
                &mut state,
                scope,
                &spec.id,
                Change {
                    kind: OperationKind::Apply,
                    duration: t.create,
                    ready_during: 0,
                },
                now,
            );
        };
        if record.platform != self.platform {
            return Err(CloudError::conflict(format!(
                "service {:?} already exists in {scope} on {}",
                spec.id, record.platform
            )));
        }
        if record
            .converging(now)
            .is_some_and(|p| p.kind == OperationKind::Delete)
        {
            return Err(CloudError::conflict(format!(
                "service {:?} is being deleted",
                spec.id
            )));
        }
        let bindings = bindings_of(spec, &record.secret_bindings);
        let revision_same = record.image == spec.image
            && record.configuration_id == spec.configuration_id
            && record.config_version == spec.config_version
            && record.secret_bindings == bindings;
        let same =
            revision_same && record.replicas == spec.replicas && record.labels == spec.labels;
        if same && record.provisioning_state(now) != ProvisioningState::Failed {
            return self.unchanged(&mut state, scope, &spec.id, OperationKind::Apply, now);
        }
        let ready_now = record.ready_replicas(now);
        record.image = spec.image.clone();
        record.configuration_id = spec.configuration_id.clone();
        record.config_version = spec.config_version;
        record.secret_bindings = bindings;
        record.labels = spec.labels.clone();
        if record.replicas != spec.replicas {
            record.set_replicas(spec.replicas, now);
        }
        record.generation += 1;
        // A new revision replaces every replica; a replica-only change keeps the ready ones.
        let change = if revision_same {
            Change {
                kind: OperationKind::Apply,
                duration: t.scale,
                ready_during: ready_now.min(spec.replicas),
            }
        } else {
            Change {
                kind: OperationKind::Apply,
                duration: t.update,
                ready_during: 0,
            }
        };
        self.start(&mut state, scope, &spec.id, change, now)
    }

    async fn poll(&self, scope: &Scope, operation: &Operation) -> Result<Operation, CloudError> {
        self.inner.gate(Port::Compute(self.platform)).await?;
        let now = self.inner.now();
        let state = self.inner.lock()?;
        state
            .operations
            .get(&operation.id)
            .filter(|op| &op.scope == scope)
            .map(|op| op.view(now))
            .ok_or_else(|| {
                CloudError::not_found(format!("operation {:?} not found in {scope}", operation.id))
            })
    }

    async fn get(&self, scope: &Scope, service_id: &str) -> Result<ObservedService, CloudError> {
        self.inner.gate(Port::Compute(self.platform)).await?;
        check_scope(scope)?;
        let now = self.inner.now();
        let mut state = self.inner.lock()?;
        let record = self.live(&mut state, scope, service_id, now)?;
        Ok(record.observe(now, &self.inner.base_url))
    }

    async fn list(&self, scope: &Scope) -> Result<Vec<ObservedService>, CloudError> {
        self.inner.gate(Port::Compute(self.platform)).await?;
        check_scope(scope)?;
        let now = self.inner.now();
        let prefix = scope_prefix(scope);
        let state = self.inner.lock()?;
        Ok(state
            .services
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, s)| s)
            .filter(|s| s.platform == self.platform && !s.is_deleted(now))
            .map(|s| s.observe(now, &self.inner.base_url))
            .collect())
    }

    async fn scale(
        &self,
        scope: &Scope,
        service_id: &str,
        replicas: u32,
    ) -> Result<Operation, CloudError> {
        self.inner.gate(Port::Compute(self.platform)).await?;
        check_scope(scope)?;
        if replicas > MAX_REPLICAS {
            return Err(CloudError::invalid(format!(
                "replicas {replicas} is over {MAX_REPLICAS}"
            )));
        }
        let now = self.inner.now();
        let mut state = self.inner.lock()?;
        let record = self.live(&mut state, scope, service_id, now)?;
        if record.replicas == replicas {
            return self.unchanged(&mut state, scope, service_id, OperationKind::Scale, now);
        }
        let ready_during = record.ready_replicas(now).min(replicas);
        record.set_replicas(replicas, now);
        record.generation += 1;
        let change = Change {
            kind: OperationKind::Scale,
            duration: self.inner.timings.scale,
            ready_during,
        };
        self.start(&mut state, scope, service_id, change, now)
    }

    async fn apply_config(
        &self,
        scope: &Scope,
        service_id: &str,
        configuration_id: &str,
        version: u64,
        values: &BTreeMap<String, String>,
    ) -> Result<Operation, CloudError> {
        self.inner.gate(Port::Compute(self.platform)).await?;
        check_scope(scope)?;
        if configuration_id.is_empty() || version == 0 {
            return Err(CloudError::invalid(format!(
                "configuration {configuration_id:?} version {version}: an id and a version >= 1 are required"
            )));
        }
        let now = self.inner.now();
        let mut state = self.inner.lock()?;
        let record = self.live(&mut state, scope, service_id, now)?;
        if record.configuration_id.as_deref() == Some(configuration_id)
            && record.config_version == Some(version)
        {
            return self.unchanged(&mut state, scope, service_id, OperationKind::Configure, now);
        }
        record.configuration_id = Some(configuration_id.to_owned());
        record.config_version = Some(version);
        record.config_values = values.clone();
        record.generation += 1;
        // New configuration means a new revision: replicas restart and are not ready meanwhile.
        let change = Change {
            kind: OperationKind::Configure,
            duration: self.inner.timings.configure,
            ready_during: 0,
        };
        self.start(&mut state, scope, service_id, change, now)
    }

    async fn refresh_secret_binding(
        &self,
        scope: &Scope,
        service_id: &str,
        binding_id: &str,
        secret_name: &str,
        version: &str,
    ) -> Result<Operation, CloudError> {
        self.inner.gate(Port::Compute(self.platform)).await?;
        check_scope(scope)?;
        check_name(binding_id)?;
        let now = self.inner.now();
        let mut state = self.inner.lock()?;
        let secret_key = key(&scope.tenant_id, &scope.environment_id, secret_name);
        let usable = state
            .secrets
            .get(&secret_key)
            .and_then(|versions| versions.iter().find(|v| v.version == version))
            .map(|v| v.enabled);
        match usable {
            Some(true) => {}
            Some(false) => {
                return Err(CloudError::invalid(format!(
                    "secret {secret_name:?} version {version:?} is disabled"
                )));
            }
            None => {
                return Err(CloudError::invalid(format!(
                    "secret {secret_name:?} version {version:?} does not exist in the vault of {scope}"
                )));
            }
        }
        let record = self.live(&mut state, scope, service_id, now)?;
        let wanted = SecretBindingRef {
            secret_name: secret_name.to_owned(),
            version: version.to_owned(),
        };
        if record.secret_bindings.get(binding_id) == Some(&wanted) {
            return self.unchanged(
                &mut state,
                scope,
                service_id,
                OperationKind::RefreshSecret,
                now,
            );
        }
        let ready_during = record.ready_replicas(now);
        record.secret_bindings.insert(binding_id.to_owned(), wanted);
        record.generation += 1;
        // A rolling restart: replicas pick the new version up one by one and keep serving.
        let change = Change {
            kind: OperationKind::RefreshSecret,
            duration: self.inner.timings.refresh_secret,
            ready_during,
        };
        self.start(&mut state, scope, service_id, change, now)
    }

    async fn delete(&self, scope: &Scope, service_id: &str) -> Result<Operation, CloudError> {
        self.inner.gate(Port::Compute(self.platform)).await?;
        check_scope(scope)?;
        let now = self.inner.now();
        let mut state = self.inner.lock()?;
        let record = self.live(&mut state, scope, service_id, now)?;
        if record
            .converging(now)
            .is_some_and(|p| p.kind == OperationKind::Delete)
        {
            return self.unchanged(&mut state, scope, service_id, OperationKind::Delete, now);
        }
        let change = Change {
            kind: OperationKind::Delete,
            duration: self.inner.timings.delete,
            ready_during: 0,
        };
        self.start(&mut state, scope, service_id, change, now)
    }
}
