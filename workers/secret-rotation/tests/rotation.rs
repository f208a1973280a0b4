//! secret-rotation on the emulator (fake clock) against the sandbox vault and compute.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_cloud::{PlatformKind, Scope, SecretValue, ServiceSpec};
use fleet_envelope::payload::{
    RotationReason, SecretRotated, SecretRotationFailed, SecretRotationRequested,
};
use fleet_envelope::{EventType, Payload};
use fleet_sandbox::{FaultPlan, Port, Sandbox};
use fleet_store::records::SecretBinding;
use fleet_testkit::{Harness, RunningWorker};
use fleet_worker_secret_rotation::{NAME, Ports, SUBSCRIBED, Settings, definition};
use fleet_worker_support::{Environments, testing};

const TENANT: &str = "t1";
const ENV: &str = "env-1";
const SECRET: &str = "db-password";
const PERIOD: Duration = Duration::from_secs(60);

struct World {
    h: Harness,
    sandbox: Arc<Sandbox>,
    worker: Option<RunningWorker>,
    /// The version each tenant's binding starts on.
    v1: BTreeMap<String, String>,
}

fn binding(
    tenant: &str,
    env: &str,
    current: &str,
    next: chrono::DateTime<chrono::Utc>,
) -> SecretBinding {
    SecretBinding {
        id: "sb-1".into(),
        tenant_id: tenant.into(),
        environment_id: env.into(),
        service_ids: vec!["svc-a".into()],
        vault_uri: "https://kv-test.vault.azure.net".into(),
        secret_name: SECRET.into(),
        current_version: Some(current.into()),
        previous_version: None,
        disable_previous_after: None,
        rotation_interval_seconds: 86_400,
        next_rotation_at: Some(next),
        last_rotated_at: None,
        consecutive_failures: 0,
        last_failure: None,
    }
}

/// svc-a bound to `db-password` (binding `sb-1`) in env-1 of t1 and in env-2 of t2.
async fn world() -> World {
    let h = Harness::sqlite(NAME, SUBSCRIBED).await.expect("harness");
    let sandbox = testing::sandbox(&h.clock).await;
    let mut v1 = BTreeMap::new();
    for (tenant, env) in [(TENANT, ENV), ("t2", "env-2")] {
        h.bind_tenant(env, tenant).await.expect("binding");
        let scope = Scope::new(tenant, env);
        let version = sandbox
            .vault()
            .set_secret(&scope, SECRET, SecretValue::new(format!("first-{tenant}")))
            .await
            .expect("secret");
        let mut spec = ServiceSpec::new("svc-a", env, PlatformKind::ContainerApps, "img:1", 1);
        spec.secret_bindings.insert("sb-1".into(), SECRET.into());
        testing::running_service(&sandbox, &h.clock, &scope, &spec).await;
        testing::put(
            &h.store,
            &testing::service_record(tenant, &spec, h.clock.now()),
        )
        .await;
        let next = h.clock.now() + chrono::Duration::days(1);
        testing::put(&h.store, &binding(tenant, env, &version, next)).await;
        v1.insert(tenant.to_owned(), version);
    }
    h.clock
        .set(fleet_runtime::next_window_start(h.clock.now(), PERIOD));
    World {
        h,
        sandbox,
        worker: None,
        v1,
    }
}

fn settings() -> Settings {
    Settings {
        grace: Duration::from_secs(600),
        ..Settings::default()
    }
}

fn request(reason: RotationReason, grace: Option<u32>) -> Payload {
    Payload::SecretRotationRequested(SecretRotationRequested {
        secret_binding_id: "sb-1".into(),
        reason,
        requested_by: Some("tests".into()),
        grace_period_seconds: grace,
    })
}

impl World {
    fn start(&mut self, environments: &[&str]) {
        let ports = Ports::new(
            self.sandbox.computes(),
            self.sandbox.vault(),
            Environments::new(environments.iter().copied()),
            settings(),
        );
        let def = definition(&settings()).expect("definition");
        let worker = self
            .h
            .worker(def, testing::config(&self.h, 5), Arc::new(ports));
        self.worker = Some(self.h.start(worker));
    }

    fn stats(&self) -> fleet_runtime::StatsSnapshot {
        self.worker
            .as_ref()
            .map(|w| w.stats.snapshot())
            .expect("running")
    }

    async fn pass_after(&self, by: Duration) {
        let n = self.stats().timer_runs + 1;
        self.h.clock.advance(by);
        self.h
            .wait_until("timer pass", Duration::from_secs(20), || async {
                self.stats().timer_runs >= n
            })
            .await
            .expect("timer pass");
        testing::relayed(&self.h).await;
    }

    async fn rotated(&self) -> Vec<(String, SecretRotated)> {
        testing::emitted(&self.h)
            .await
            .into_iter()
            .filter(|e| e.event_type == EventType::SecretRotated)
            .filter_map(|e| match e.payload() {
                Ok(Payload::SecretRotated(r)) => Some((e.tenant_id.clone(), r)),
                _ => None,
            })
            .collect()
    }

    async fn alerts(&self) -> Vec<SecretRotationFailed> {
        testing::emitted(&self.h)
            .await
            .into_iter()
            .filter(|e| e.event_type == EventType::SecretRotationFailed)
            .filter_map(|e| match e.payload() {
                Ok(Payload::SecretRotationFailed(f)) => Some(f),
                _ => None,
            })
            .collect()
    }

    async fn binding(&self, tenant: &str) -> SecretBinding {
        testing::get::<SecretBinding>(&self.h.store, tenant, "sb-1")
            .await
            .expect("binding")
            .record
    }

    async fn enabled(&self, tenant: &str, env: &str) -> BTreeMap<String, bool> {
        self.sandbox
            .vault()
            .list_versions(&Scope::new(tenant, env), SECRET)
            .await
            .expect("versions")
            .into_iter()
            .map(|v| (v.version, v.enabled))
            .collect()
    }

    async fn live_version(&self, tenant: &str, env: &str) -> Option<String> {
        self.sandbox
            .compute(PlatformKind::ContainerApps)
            .get(&Scope::new(tenant, env), "svc-a")
            .await
            .expect("service")
            .secret_versions
            .get("sb-1")
            .map(|r| r.version.clone())
    }

    async fn until_rotated(&self, n: usize) {
        testing::drive(
            &self.h.clock,
            Duration::from_secs(2),
            40,
            "SecretRotated",
            || async { self.rotated().await.len() >= n },
        )
        .await;
    }

    async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop(Duration::from_secs(10)).await.expect("worker stops");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_rotation_writes_a_version_refreshes_bindings_and_disables_the_old_after_the_grace()
 {
    let mut w = world().await;
    w.start(&[ENV]);
    let t0 = w.h.clock.now();
    w.h.publish(&testing::envelope(
        request(RotationReason::Manual, Some(600)),
        TENANT,
        ENV,
        t0,
    ))
    .await
    .expect("publish");
    w.until_rotated(1).await;
    let (tenant, r) = w.rotated().await.remove(0);
    assert_eq!(tenant, TENANT);
    let old = w.v1[TENANT].clone();
    assert_eq!(r.previous_version.as_deref(), Some(old.as_str()));
    assert_ne!(r.new_version, old);
    assert_eq!(r.vault_name, "kv-test");
    assert_eq!(r.service_ids, vec!["svc-a".to_owned()]);
    assert_eq!(
        w.live_version(TENANT, ENV).await.as_deref(),
        Some(r.new_version.as_str())
    );
    let b = w.binding(TENANT).await;
    assert_eq!(b.current_version.as_deref(), Some(r.new_version.as_str()));
    assert_eq!(b.previous_version.as_deref(), Some(old.as_str()));
    let disable_at = b.disable_previous_after.expect("grace end");
    assert_eq!(r.previous_version_disabled_at, Some(disable_at));

    // Inside the grace the old version still works.
    w.pass_after(PERIOD).await;
    assert_eq!(w.enabled(TENANT, ENV).await.get(&old), Some(&true));
    // Past it, the schedule disables it and forgets it.
    w.pass_after(Duration::from_secs(600)).await;
    assert_eq!(w.enabled(TENANT, ENV).await.get(&old), Some(&false));
    assert_eq!(
        w.enabled(TENANT, ENV).await.get(&r.new_version),
        Some(&true)
    );
    let b = w.binding(TENANT).await;
    assert_eq!((b.previous_version, b.disable_previous_after), (None, None));
    assert_eq!(w.rotated().await.len(), 1, "disabling is not a rotation");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compromised_secret_loses_its_old_version_at_once() {
    let mut w = world().await;
    w.start(&[]);
    let t0 = w.h.clock.now();
    w.h.publish(&testing::envelope(
        request(RotationReason::Compromised, None),
        TENANT,
        ENV,
        t0,
    ))
    .await
    .expect("publish");
    w.until_rotated(1).await;
    let old = w.v1[TENANT].clone();
    assert_eq!(w.enabled(TENANT, ENV).await.get(&old), Some(&false));
    assert_eq!(w.binding(TENANT).await.previous_version, None);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_binding_is_rotated_by_the_schedule_and_rescheduled() {
    let mut w = world().await;
    let due = binding(TENANT, ENV, &w.v1[TENANT], w.h.clock.now());
    testing::put(&w.h.store, &due).await;
    w.start(&[ENV]);
    w.until_rotated(1).await;
    let b = w.binding(TENANT).await;
    let rotated_at = b.last_rotated_at.expect("rotated");
    assert_eq!(
        b.next_rotation_at,
        Some(rotated_at + chrono::Duration::days(1))
    );
    w.pass_after(PERIOD).await;
    assert_eq!(w.rotated().await.len(), 1, "not due again for a day");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_left_by_an_interrupted_rotation_is_adopted_not_duplicated() {
    let mut w = world().await;
    let scope = Scope::new(TENANT, ENV);
    let orphan = w
        .sandbox
        .vault()
        .set_secret(&scope, SECRET, SecretValue::new("written-before-a-crash"))
        .await
        .expect("orphan version");
    w.start(&[]);
    let t0 = w.h.clock.now();
    w.h.publish(&testing::envelope(
        request(RotationReason::Manual, None),
        TENANT,
        ENV,
        t0,
    ))
    .await
    .expect("publish");
    w.until_rotated(1).await;
    assert_eq!(w.rotated().await[0].1.new_version, orphan);
    assert_eq!(w.enabled(TENANT, ENV).await.len(), 2, "no third version");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_raise_the_rotation_failed_alert() {
    let mut w = world().await;
    w.sandbox.set_faults(
        Port::Vault,
        FaultPlan {
            fail_next: 1000,
            ..FaultPlan::default()
        },
    );
    w.start(&[]);
    let t0 = w.h.clock.now();
    w.h.publish(&testing::envelope(
        request(RotationReason::Manual, None),
        TENANT,
        ENV,
        t0,
    ))
    .await
    .expect("publish");
    testing::drive(
        &w.h.clock,
        Duration::from_secs(1),
        60,
        "the alert",
        || async { !w.alerts().await.is_empty() },
    )
    .await;
    let alert = w.alerts().await.remove(0);
    assert_eq!(
        (alert.secret_binding_id.as_str(), alert.attempts),
        ("sb-1", 3)
    );
    assert_eq!(alert.vault_secret_name.as_deref(), Some(SECRET));
    assert!(alert.last_error.contains("503"), "{}", alert.last_error);
    assert!(
        !alert.last_error.contains("first-t1"),
        "no secret value in the alert"
    );
    assert_eq!(alert.first_failure_at, t0);
    let b = w.binding(TENANT).await;
    assert_eq!(b.consecutive_failures, 3);
    assert_eq!(b.current_version.as_deref(), Some(w.v1[TENANT].as_str()));
    assert!(w.rotated().await.is_empty());
    assert!(
        testing::dead_letter_reasons(&w.h).await.is_empty(),
        "the alert replaces the dead letter"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_acts_only_on_the_requesting_tenants_secret() {
    let mut w = world().await;
    w.start(&[]);
    let t0 = w.h.clock.now();
    // t2 aims at t1's environment: refused.
    w.h.publish(&testing::envelope(
        request(RotationReason::Manual, None),
        "t2",
        ENV,
        t0,
    ))
    .await
    .expect("publish");
    // t2 in its own environment: rotates t2's secret only.
    w.h.publish(&testing::envelope(
        request(RotationReason::Manual, None),
        "t2",
        "env-2",
        t0,
    ))
    .await
    .expect("publish");
    w.until_rotated(1).await;
    assert_eq!(
        testing::dead_letter_reasons(&w.h).await,
        vec!["TenantMismatch".to_owned()]
    );
    assert_eq!(w.rotated().await[0].0, "t2");
    assert_eq!(
        w.enabled(TENANT, ENV).await.len(),
        1,
        "t1's secret untouched"
    );
    assert_eq!(w.enabled("t2", "env-2").await.len(), 2);
    assert_eq!(
        w.binding(TENANT).await.current_version.as_deref(),
        Some(w.v1[TENANT].as_str())
    );
    w.stop().await;
}
