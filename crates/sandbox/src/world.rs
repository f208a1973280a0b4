//! The sandbox itself: shared state, clock, faults, the HTTP server, and the knobs tests and
//! demos turn (drift, health faults, load).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_cloud::{
    CloudError, Compute, ComputeSet, Metrics, PlatformKind, Scope, ServiceSpec, Vault,
};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::{Clock, SystemClock};
use crate::compute::SandboxCompute;
use crate::faults::{FaultPlan, Faults, Port};
use crate::health::{HealthFaults, router};
use crate::load::LoadProfile;
use crate::metrics::SandboxMetrics;
use crate::shared::{SharedState, StateGuard};
use crate::state::{ServiceRecord, State, key};
use crate::vault::SandboxVault;

/// How long simulated changes take to land (simulated time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// First creation of a service.
    pub create: Duration,
    /// A new revision (image, config or secret change through `apply`).
    pub update: Duration,
    /// A replica change.
    pub scale: Duration,
    /// A configuration version change.
    pub configure: Duration,
    /// A secret binding refresh.
    pub refresh_secret: Duration,
    /// A deletion.
    pub delete: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            create: Duration::from_secs(45),
            update: Duration::from_secs(30),
            scale: Duration::from_secs(10),
            configure: Duration::from_secs(15),
            refresh_secret: Duration::from_secs(5),
            delete: Duration::from_secs(10),
        }
    }
}

impl Timings {
    /// Every duration multiplied by `factor`: `0.01` lands a 15 s configuration change in
    /// 150 ms, `0` lands every change at once. Negative or non-finite factors count as 1, and a
    /// product too large for a `Duration` saturates.
    pub fn scaled(self, factor: f64) -> Timings {
        let factor = if factor.is_finite() && factor >= 0.0 {
            factor
        } else {
            1.0
        };
        let scale = |d: Duration| {
            Duration::try_from_secs_f64(d.as_secs_f64() * factor).unwrap_or(Duration::MAX)
        };
        Timings {
            create: scale(self.create),
            update: scale(self.update),
            scale: scale(self.scale),
            configure: scale(self.configure),
            refresh_secret: scale(self.refresh_secret),
            delete: scale(self.delete),
        }
    }
}

/// How to start a sandbox.
#[derive(Clone)]
pub struct SandboxConfig {
    /// Directory of the data file (`sandbox.json`); `None` keeps everything in memory.
    pub data_dir: Option<PathBuf>,
    /// Seed of the fault injection RNGs.
    pub seed: u64,
    /// The simulated time source.
    pub clock: Arc<dyn Clock>,
    /// How long changes take.
    pub timings: Timings,
    /// Where the health endpoints listen (loopback, ephemeral port by default).
    pub bind: SocketAddr,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            data_dir: None,
            seed: 0,
            clock: Arc::new(SystemClock),
            timings: Timings::default(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

pub(crate) struct Inner {
    shared: SharedState,
    pub clock: Arc<dyn Clock>,
    pub timings: Timings,
    faults: Mutex<Faults>,
    pub base_url: String,
}

impl Inner {
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Applies the port's fault plan to one call: waits the injected latency, then fails when
    /// the draw says so.
    pub async fn gate(&self, port: Port) -> Result<(), CloudError> {
        let verdict = self.faults.lock().draw(port);
        if !verdict.latency.is_zero() {
            tokio::time::sleep(verdict.latency).await;
        }
        verdict.error.map_or(Ok(()), Err)
    }

    /// Exclusive access to the world, caught up with other processes sharing the data dir.
    pub fn lock(&self) -> Result<StateGuard<'_>, CloudError> {
        self.shared.lock()
    }

    /// Writes the state through to the data file (a no-op in memory).
    pub fn persist(&self, state: &State) -> Result<(), CloudError> {
        self.shared.persist(state)
    }

    /// Runs `f` on the live record of `service_id` in `scope`, then persists.
    pub(crate) fn with_service<T>(
        &self,
        scope: &Scope,
        service_id: &str,
        f: impl FnOnce(&mut ServiceRecord, DateTime<Utc>) -> T,
    ) -> Result<T, CloudError> {
        let now = self.now();
        let mut state = self.lock()?;
        let record = state
            .services
            .get_mut(&key(&scope.tenant_id, &scope.environment_id, service_id))
            .filter(|s| !s.is_deleted(now))
            .ok_or_else(|| {
                CloudError::not_found(format!("service {service_id:?} not found in {scope}"))
            })?;
        let out = f(record, now);
        self.persist(&state)?;
        Ok(out)
    }
}

/// A converged record for `spec` in `scope`, created at `now`.
pub(crate) fn new_record(scope: &Scope, spec: &ServiceSpec, now: DateTime<Utc>) -> ServiceRecord {
    ServiceRecord {
        tenant_id: scope.tenant_id.clone(),
        environment_id: scope.environment_id.clone(),
        id: spec.id.clone(),
        platform: spec.platform,
        image: spec.image.clone(),
        replicas: spec.replicas,
        configuration_id: spec.configuration_id.clone(),
        config_version: spec.config_version,
        config_values: BTreeMap::new(),
        secret_bindings: crate::validate::bindings_of(spec, &BTreeMap::new()),
        labels: spec.labels.clone(),
        generation: 1,
        pending: None,
        created_at: now,
        load: LoadProfile::default(),
        load_since: now,
        replica_history: vec![(now, spec.replicas)],
        health: HealthFaults::default(),
        dependencies: BTreeSet::new(),
    }
}

/// A local cloud: every port of `fleet-cloud` over simulated workloads, with real HTTP health
/// endpoints on loopback. Dropping it stops the endpoint server.
pub struct Sandbox {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl Sandbox {
    /// Loads (or creates) the world and starts the health endpoint server.
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, CloudError> {
        let shared = SharedState::open(config.data_dir.as_deref())?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|e| {
                CloudError::permanent(format!(
                    "cannot listen on {} for the health endpoints",
                    config.bind
                ))
                .with_source(e)
            })?;
        let addr = listener.local_addr().map_err(|e| {
            CloudError::permanent("cannot read the endpoint server address").with_source(e)
        })?;
        let inner = Arc::new(Inner {
            shared,
            clock: config.clock,
            timings: config.timings,
            faults: Mutex::new(Faults::new(config.seed)),
            base_url: format!("http://{addr}"),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(inner.clone());
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "sandbox endpoint server stopped");
            }
        });
        Ok(Sandbox {
            inner,
            addr,
            shutdown: Some(tx),
            server,
        })
    }

    /// The base URL of the health endpoints (`http://127.0.0.1:<port>`).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The endpoint server's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The simulated time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    /// The compute control plane of `platform`.
    pub fn compute(&self, platform: PlatformKind) -> Arc<dyn Compute> {
        Arc::new(SandboxCompute::new(self.inner.clone(), platform))
    }

    /// All four compute control planes.
    pub fn computes(&self) -> ComputeSet {
        PlatformKind::ALL
            .iter()
            .fold(ComputeSet::new(), |set, p| set.with(self.compute(*p)))
    }

    /// The metrics API.
    pub fn metrics(&self) -> Arc<dyn Metrics> {
        Arc::new(SandboxMetrics::new(self.inner.clone()))
    }

    /// The vault.
    pub fn vault(&self) -> Arc<dyn Vault> {
        Arc::new(SandboxVault::new(self.inner.clone()))
    }

    /// Replaces the fault plan of `port`.
    pub fn set_faults(&self, port: Port, plan: FaultPlan) {
        self.inner.faults.lock().set(port, plan);
    }

    /// Removes every fault plan.
    pub fn clear_faults(&self) {
        self.inner.faults.lock().clear();
    }

    /// Replaces the injected health faults of a service.
    pub fn set_health_faults(
        &self,
        scope: &Scope,
        service_id: &str,
        faults: HealthFaults,
    ) -> Result<(), CloudError> {
        self.inner
            .with_service(scope, service_id, |s, _| s.health = faults)
    }

    /// Sets the dependencies a service reports (each gets a `deps/{name}` endpoint).
    pub fn set_dependencies<I, S>(
        &self,
        scope: &Scope,
        service_id: &str,
        names: I,
    ) -> Result<(), CloudError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: BTreeSet<String> = names.into_iter().map(Into::into).collect();
        if let Some(bad) = names
            .iter()
            .find(|n| crate::validate::check_name(n).is_err())
        {
            return Err(CloudError::invalid(format!(
                "dependency name {bad:?} is not valid"
            )));
        }
        self.inner
            .with_service(scope, service_id, |s, _| s.dependencies = names)
    }

    /// Sets the load profile of a service, starting now.
    pub fn set_load(
        &self,
        scope: &Scope,
        service_id: &str,
        profile: LoadProfile,
    ) -> Result<(), CloudError> {
        self.inner.with_service(scope, service_id, |s, now| {
            s.load = profile;
            s.load_since = now;
        })
    }

    /// Stops the endpoint server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let server = std::mem::replace(&mut self.server, tokio::spawn(async {}));
        let _ = server.await;
    }

    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_timings_multiply_every_duration() {
        let d = Timings::default();
        let fast = d.scaled(0.01);
        assert_eq!(fast.create, Duration::from_millis(450));
        assert_eq!(fast.update, Duration::from_millis(300));
        assert_eq!(fast.scale, Duration::from_millis(100));
        assert_eq!(fast.configure, Duration::from_millis(150));
        assert_eq!(fast.refresh_secret, Duration::from_millis(50));
        assert_eq!(fast.delete, Duration::from_millis(100));
        let instant = d.scaled(0.0);
        assert_eq!(instant.create, Duration::ZERO);
        assert_eq!(instant.configure, Duration::ZERO);
        assert_eq!(d.scaled(2.0).configure, Duration::from_secs(30));
    }

    #[test]
    fn nonsense_factors_keep_the_timings() {
        let d = Timings::default();
        for factor in [-1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(d.scaled(factor), d, "factor {factor}");
        }
    }
}
