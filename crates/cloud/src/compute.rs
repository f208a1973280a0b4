//! The `Compute` port: one per platform kind, shaped after ARM PUT / kube server-side apply.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{CloudError, ObservedService, Operation, PlatformKind, Scope, ServiceSpec};

/// A control plane that runs services of one [`PlatformKind`].
///
/// Every mutating call is idempotent desired-state: applying what is already live answers an
/// operation that is `Succeeded` with `changed: false`, so a worker can re-run a step after a
/// crash without a second rollout. Mutations are long-running: the returned [`Operation`] is
/// polled with [`Compute::poll`] until its status is terminal.
///
/// Every call is confined to `scope`: a service of another tenant or environment is
/// [`NotFound`](crate::CloudErrorKind::NotFound).
#[async_trait]
pub trait Compute: Send + Sync {
    /// The platform kind this control plane runs.
    fn platform(&self) -> PlatformKind;

    /// Creates or updates the service to match `spec` (PUT / server-side apply).
    ///
    /// `spec.environment_id` must equal `scope.environment_id` and `spec.platform` must equal
    /// [`Compute::platform`], else [`Invalid`](crate::CloudErrorKind::Invalid).
    async fn apply(&self, scope: &Scope, spec: &ServiceSpec) -> Result<Operation, CloudError>;

    /// The current state of a long-running operation returned earlier.
    async fn poll(&self, scope: &Scope, operation: &Operation) -> Result<Operation, CloudError>;

    /// What the control plane reports about one service.
    async fn get(&self, scope: &Scope, service_id: &str) -> Result<ObservedService, CloudError>;

    /// Every service of this platform kind in `scope`'s environment, ordered by id.
    async fn list(&self, scope: &Scope) -> Result<Vec<ObservedService>, CloudError>;

    /// Sets the replica count (no change when already at `replicas`).
    async fn scale(
        &self,
        scope: &Scope,
        service_id: &str,
        replicas: u32,
    ) -> Result<Operation, CloudError>;

    /// Applies configuration `configuration_id` at `version` with `values` (no change when that
    /// version is already applied).
    async fn apply_config(
        &self,
        scope: &Scope,
        service_id: &str,
        configuration_id: &str,
        version: u64,
        values: &BTreeMap<String, String>,
    ) -> Result<Operation, CloudError>;

    /// Points secret binding `binding_id` at `secret_name` / `version` (a Key Vault reference);
    /// no change when it already resolves to that version.
    async fn refresh_secret_binding(
        &self,
        scope: &Scope,
        service_id: &str,
        binding_id: &str,
        secret_name: &str,
        version: &str,
    ) -> Result<Operation, CloudError>;

    /// Removes the service ([`NotFound`](crate::CloudErrorKind::NotFound) when absent).
    async fn delete(&self, scope: &Scope, service_id: &str) -> Result<Operation, CloudError>;
}

/// The compute control planes of a deployment, one per platform kind.
///
/// Workers hold one of these and pick the port by the service's platform; adapters are chosen
/// when it is built, never inside business logic.
#[derive(Clone, Default)]
pub struct ComputeSet {
    by_platform: BTreeMap<PlatformKind, Arc<dyn Compute>>,
}

impl ComputeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the control plane for `compute.platform()`.
    pub fn with(mut self, compute: Arc<dyn Compute>) -> Self {
        self.by_platform.insert(compute.platform(), compute);
        self
    }

    /// The control plane for `platform`, or [`Invalid`](crate::CloudErrorKind::Invalid) when
    /// none is configured.
    pub fn get(&self, platform: PlatformKind) -> Result<Arc<dyn Compute>, CloudError> {
        self.by_platform.get(&platform).cloned().ok_or_else(|| {
            CloudError::invalid(format!(
                "no compute control plane configured for {platform}"
            ))
        })
    }

    /// The configured platform kinds.
    pub fn platforms(&self) -> impl Iterator<Item = PlatformKind> + '_ {
        self.by_platform.keys().copied()
    }

    /// Every service of every configured platform in `scope`'s environment.
    pub async fn list_all(&self, scope: &Scope) -> Result<Vec<ObservedService>, CloudError> {
        let mut all = Vec::new();
        for compute in self.by_platform.values() {
            all.extend(compute.list(scope).await?);
        }
        Ok(all)
    }
}
