//! Helpers for the workers' integration tests: a sandbox on the harness's fake clock, a worker
//! configuration with fast retries, and driving fake time until a condition holds.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_runtime::{RetryPolicy, RuntimeConfig};
use fleet_sandbox::{Sandbox, SandboxConfig};
use fleet_testkit::{FakeClock, Harness};

/// The harness's fake clock as the sandbox's time source, so operations converge when a test
/// advances time.
#[derive(Debug, Clone)]
pub struct SandboxTime(pub FakeClock);

impl fleet_sandbox::Clock for SandboxTime {
    fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}

/// A sandbox (in memory) whose time is `clock`.
pub async fn sandbox(clock: &FakeClock) -> Arc<Sandbox> {
    let config = SandboxConfig {
        clock: Arc::new(SandboxTime(clock.clone())),
        ..SandboxConfig::default()
    };
    match Sandbox::start(config).await {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("the sandbox does not start: {e}"),
    }
}

/// The harness configuration with `max_attempts` and short (fake-time) retry delays.
pub fn config(harness: &Harness, max_attempts: u32) -> RuntimeConfig {
    let mut c = harness.config();
    c.retry = RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    };
    c
}

/// Advances `clock` by `step` until `check` holds, giving the worker a moment (real time) to
/// react between steps; fails after `max_steps` steps.
pub async fn drive<F, Fut>(
    clock: &FakeClock,
    step: Duration,
    max_steps: u32,
    what: &str,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..max_steps {
        if settle(&mut check).await {
            return;
        }
        clock.advance(step);
    }
    if !settle(&mut check).await {
        panic!("{what}: condition not reached after {max_steps} steps of {step:?}");
    }
}

// Polls `check` for a short real-time while the worker catches up with the last clock move.
async fn settle<F, Fut>(check: &mut F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..40 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// A caller-side envelope (a command from outside the fleet) for `tenant` / `environment`.
pub fn envelope(
    payload: fleet_envelope::Payload,
    tenant: &str,
    environment: &str,
    now: DateTime<Utc>,
) -> fleet_envelope::Envelope {
    fleet_envelope::Envelope::new(
        payload,
        tenant,
        environment,
        "/tests",
        format!("corr-{}", uuid_like(now)),
        format!("{:032x}", rand_u128()),
        now,
    )
}

fn uuid_like(now: DateTime<Utc>) -> i64 {
    now.timestamp_nanos_opt().unwrap_or_default()
}

fn rand_u128() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    u128::from(NEXT.fetch_add(1, Ordering::Relaxed)) | (0xf1ee7u128 << 64)
}

/// Creates `spec` in the sandbox and moves `clock` past its creation, so it runs and is ready.
pub async fn running_service(
    sandbox: &Sandbox,
    clock: &FakeClock,
    scope: &fleet_cloud::Scope,
    spec: &fleet_cloud::ServiceSpec,
) {
    let compute = sandbox.compute(spec.platform);
    if let Err(e) = compute.apply(scope, spec).await {
        panic!("creating {} in the sandbox: {e}", spec.id);
    }
    clock.advance(Duration::from_secs(60));
}

/// The inventory record of `spec` for `tenant`, as the inventory worker would have written it.
pub fn service_record(
    tenant: &str,
    spec: &fleet_cloud::ServiceSpec,
    now: DateTime<Utc>,
) -> fleet_store::records::RuntimeService {
    fleet_store::records::RuntimeService {
        id: spec.id.clone(),
        tenant_id: tenant.to_owned(),
        environment_id: spec.environment_id.clone(),
        name: spec.id.clone(),
        platform: crate::convert::to_stored(spec.platform),
        resource_id: None,
        image: spec.image.clone(),
        replicas: spec.replicas,
        config_version: spec.config_version,
        status: fleet_store::records::ServiceStatus::Running,
        endpoints: fleet_store::records::ServiceEndpoints::default(),
        observed: None,
        labels: Default::default(),
        updated_at: now,
    }
}

/// Writes `record` (create or overwrite) straight to `store`.
pub async fn put<R: fleet_store::Record>(store: &Arc<dyn fleet_store::Store>, record: &R) {
    let mut unit = fleet_store::UnitOfWork::new();
    if let Err(e) = unit.put(record, fleet_store::Expect::Any) {
        panic!("record does not serialize: {e}");
    }
    if let Err(e) = store.commit(unit).await {
        panic!("writing a record: {e}");
    }
}

/// The dead-letter reasons of the worker's subscription, oldest first.
pub async fn dead_letter_reasons(harness: &Harness) -> Vec<String> {
    match harness.dead_letters().await {
        Ok(msgs) => msgs
            .into_iter()
            .map(|m| m.dead_letter_reason.unwrap_or_default())
            .collect(),
        Err(e) => panic!("reading the dead-letter queue: {e}"),
    }
}

/// The events the worker emitted so far.
pub async fn emitted(harness: &Harness) -> Vec<fleet_envelope::Envelope> {
    match harness.emitted().await {
        Ok(e) => e,
        Err(e) => panic!("reading emitted events: {e}"),
    }
}

/// A record of `tenant`, or `None`.
pub async fn get<R: fleet_store::Record>(
    store: &Arc<dyn fleet_store::Store>,
    tenant: &str,
    id: &str,
) -> Option<fleet_store::Versioned<R>> {
    use fleet_store::StoreExt;
    match store.get::<R>(tenant, id).await {
        Ok(r) => r,
        Err(e) => panic!("reading {id}: {e}"),
    }
}

/// Messages (not timer windows) a worker has handled: the runtime counts both in `handled`.
pub fn messages_handled(stats: &fleet_runtime::StatsSnapshot) -> u64 {
    stats.handled.saturating_sub(stats.timer_runs)
}

/// Waits until every committed event has been relayed to the bus (so `Harness::emitted` sees
/// it): a handler's stats move at commit, the relay publishes just after.
pub async fn relayed(harness: &Harness) {
    let store = harness.store.clone();
    let waited = harness
        .wait_until("the outbox to drain", Duration::from_secs(10), || {
            let store = store.clone();
            async move { store.pending_outbox().await.is_ok_and(|n| n == 0) }
        })
        .await;
    if let Err(e) = waited {
        panic!("{e}");
    }
}
