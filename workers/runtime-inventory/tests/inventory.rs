//! runtime-inventory on the emulator (fake clock) against the sandbox cloud.

use std::sync::Arc;
use std::time::Duration;

use fleet_cloud::{PlatformKind, Scope, ServiceSpec};
use fleet_envelope::payload::{
    DeploymentOutcome, InventoryChange, Platform, RuntimeDeploymentCompleted,
    RuntimeInventoryUpdated,
};
use fleet_envelope::{EventType, Payload};
use fleet_sandbox::{Drift, FaultPlan, Port, Sandbox};
use fleet_store::StoreExt;
use fleet_store::records::{RuntimeService, ServiceStatus};
use fleet_testkit::{Harness, RunningWorker};
use fleet_worker_runtime_inventory::{NAME, Ports, SUBSCRIBED, Settings, definition};
use fleet_worker_support::{Environments, testing};

const TENANT: &str = "t1";
const ENV: &str = "env-1";
const PERIOD: Duration = Duration::from_secs(120);

struct World {
    h: Harness,
    sandbox: Arc<Sandbox>,
    worker: Option<RunningWorker>,
}

async fn world(environments: &[&str], start: bool) -> World {
    let h = Harness::sqlite(NAME, SUBSCRIBED).await.expect("harness");
    let sandbox = testing::sandbox(&h.clock).await;
    h.bind_tenant(ENV, TENANT).await.expect("binding");
    h.bind_tenant("env-2", "t2").await.expect("binding");
    let s1 = Scope::new(TENANT, ENV);
    for (id, platform) in [
        ("svc-a", PlatformKind::ContainerApps),
        ("svc-b", PlatformKind::Aks),
    ] {
        let spec = ServiceSpec::new(id, ENV, platform, "img:1", 2);
        testing::running_service(&sandbox, &h.clock, &s1, &spec).await;
    }
    let other = ServiceSpec::new("svc-x", "env-2", PlatformKind::Functions, "img:9", 1);
    testing::running_service(&sandbox, &h.clock, &Scope::new("t2", "env-2"), &other).await;
    // Land on a window boundary so the first pass runs at a known time.
    let now = h.clock.now();
    let next = fleet_runtime::next_window_start(now, PERIOD);
    h.clock.set(next);
    let mut w = World {
        h,
        sandbox,
        worker: None,
    };
    if start {
        w.start(environments);
    }
    w
}

impl World {
    fn start(&mut self, environments: &[&str]) {
        let ports = Ports::new(
            self.sandbox.computes(),
            Environments::new(environments.iter().copied()),
            Settings::default(),
        );
        let def = definition(&Settings::default()).expect("definition");
        self.worker = Some(self.h.start(self.h.worker(
            def,
            testing::config(&self.h, 3),
            Arc::new(ports),
        )));
    }

    async fn updates(&self) -> Vec<(String, RuntimeInventoryUpdated)> {
        testing::emitted(&self.h)
            .await
            .into_iter()
            .filter(|e| e.event_type == EventType::RuntimeInventoryUpdated)
            .filter_map(|e| match e.payload() {
                Ok(Payload::RuntimeInventoryUpdated(u)) => Some((e.tenant_id.clone(), u)),
                _ => None,
            })
            .collect()
    }

    fn timer_runs(&self) -> u64 {
        self.worker
            .as_ref()
            .map_or(0, |w| w.stats.snapshot().timer_runs)
    }

    async fn next_pass(&self) {
        let before = self.timer_runs();
        self.h.clock.advance(PERIOD);
        self.h
            .wait_until("a timer pass", Duration::from_secs(10), || async {
                self.timer_runs() > before
            })
            .await
            .expect("timer pass");
        testing::relayed(&self.h).await;
    }

    async fn records(&self, tenant: &str) -> Vec<fleet_store::Versioned<RuntimeService>> {
        self.h
            .store
            .list::<RuntimeService>(tenant, None)
            .await
            .expect("list")
    }

    async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop(Duration::from_secs(10)).await.expect("worker stops");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_converges_and_a_second_pass_over_unchanged_state_writes_and_emits_nothing() {
    let w = world(&[ENV], true).await;
    w.h.wait_until("first pass", Duration::from_secs(10), || async {
        w.timer_runs() >= 1
    })
    .await
    .expect("first pass");
    testing::relayed(&w.h).await;
    let first = w.updates().await;
    assert_eq!(first.len(), 2);
    assert!(
        first
            .iter()
            .all(|(_, u)| u.change == InventoryChange::Added)
    );
    let records = w.records(TENANT).await;
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.record.status == ServiceStatus::Running)
    );
    let versions: Vec<i64> = records.iter().map(|r| r.version).collect();

    w.next_pass().await;
    assert_eq!(w.updates().await.len(), 2, "unchanged state emits nothing");
    let again: Vec<i64> = w.records(TENANT).await.iter().map(|r| r.version).collect();
    assert_eq!(again, versions, "unchanged state writes nothing");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_and_deleted_services_are_updated_and_removed() {
    let w = world(&[ENV], true).await;
    w.h.wait_until("first pass", Duration::from_secs(10), || async {
        w.timer_runs() >= 1
    })
    .await
    .expect("first pass");
    testing::relayed(&w.h).await;
    let scope = Scope::new(TENANT, ENV);
    w.sandbox
        .inject_drift(
            &scope,
            Drift::Image {
                service_id: "svc-a".into(),
                image: "img:2".into(),
            },
        )
        .expect("drift");
    w.sandbox
        .inject_drift(
            &scope,
            Drift::Delete {
                service_id: "svc-b".into(),
            },
        )
        .expect("delete");
    w.next_pass().await;
    let updates = w.updates().await;
    assert_eq!(updates.len(), 4);
    let second: Vec<&RuntimeInventoryUpdated> = updates[2..].iter().map(|(_, u)| u).collect();
    let a = second
        .iter()
        .find(|u| u.service_id == "svc-a")
        .expect("svc-a update");
    assert_eq!(a.change, InventoryChange::Updated);
    assert!(
        a.changed_fields.contains(&"image".to_owned()),
        "{:?}",
        a.changed_fields
    );
    let b = second
        .iter()
        .find(|u| u.service_id == "svc-b")
        .expect("svc-b update");
    assert_eq!(b.change, InventoryChange::Removed);
    let svc_b = testing::get::<RuntimeService>(&w.h.store, TENANT, "svc-b")
        .await
        .expect("kept");
    assert_eq!(svc_b.record.status, ServiceStatus::Missing);
    let svc_a = testing::get::<RuntimeService>(&w.h.store, TENANT, "svc-a")
        .await
        .expect("a");
    assert_eq!(
        svc_a.record.observed.map(|o| o.image),
        Some("img:2".to_owned())
    );
    w.next_pass().await;
    assert_eq!(w.updates().await.len(), 4, "a removal is reported once");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_sees_only_its_environment_and_unbound_environments_are_skipped() {
    let w = world(&[ENV, "env-2", "env-unbound"], true).await;
    w.h.wait_until("first pass", Duration::from_secs(10), || async {
        w.timer_runs() >= 1
    })
    .await
    .expect("first pass");
    testing::relayed(&w.h).await;
    let t1: Vec<String> = w
        .records(TENANT)
        .await
        .into_iter()
        .map(|r| r.record.id)
        .collect();
    let t2: Vec<String> = w
        .records("t2")
        .await
        .into_iter()
        .map(|r| r.record.id)
        .collect();
    assert_eq!(t1, vec!["svc-a".to_owned(), "svc-b".to_owned()]);
    assert_eq!(t2, vec!["svc-x".to_owned()]);
    for (tenant, u) in w.updates().await {
        let expected = if u.service_id == "svc-x" {
            "t2"
        } else {
            TENANT
        };
        assert_eq!(
            tenant, expected,
            "event for {} carries its own tenant",
            u.service_id
        );
    }
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_read_is_retried_no_sooner_than_retry_after() {
    // No environments: only the event path runs.
    let mut w = world(&[], false).await;
    w.sandbox.set_faults(
        Port::Compute(PlatformKind::ContainerApps),
        FaultPlan {
            throttle_next: 1,
            retry_after: Duration::from_secs(7),
            ..FaultPlan::default()
        },
    );
    w.start(&[]);
    let t0 = w.h.clock.now();
    let completed = RuntimeDeploymentCompleted {
        deployment_id: "dep-1".into(),
        service_id: "svc-a".into(),
        platform: Platform::Containerapps,
        image: "img:1".into(),
        replicas: 2,
        outcome: DeploymentOutcome::Succeeded,
        revision: None,
        failed_step: None,
        error: None,
        started_at: t0,
        completed_at: t0,
    };
    let env = testing::envelope(
        Payload::RuntimeDeploymentCompleted(completed),
        TENANT,
        ENV,
        t0,
    );
    w.h.publish(&env).await.expect("publish");
    testing::drive(
        &w.h.clock,
        Duration::from_secs(1),
        30,
        "inventory update",
        || async { !w.updates().await.is_empty() },
    )
    .await;
    let waited = (w.h.clock.now() - t0).to_std().unwrap_or_default();
    assert!(
        waited >= Duration::from_secs(7),
        "retried after {waited:?}, before Retry-After"
    );
    let updates = w.updates().await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].1.change, InventoryChange::Added);
    assert!(testing::dead_letter_reasons(&w.h).await.is_empty());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_throttling_dead_letters_after_three_attempts() {
    let mut w = world(&[], false).await;
    w.sandbox.set_faults(
        Port::Compute(PlatformKind::ContainerApps),
        FaultPlan {
            throttle_next: 1000,
            retry_after: Duration::from_secs(2),
            ..FaultPlan::default()
        },
    );
    w.start(&[]);
    let t0 = w.h.clock.now();
    let completed = RuntimeDeploymentCompleted {
        deployment_id: "dep-1".into(),
        service_id: "svc-a".into(),
        platform: Platform::Containerapps,
        image: "img:1".into(),
        replicas: 2,
        outcome: DeploymentOutcome::Succeeded,
        revision: None,
        failed_step: None,
        error: None,
        started_at: t0,
        completed_at: t0,
    };
    let env = testing::envelope(
        Payload::RuntimeDeploymentCompleted(completed),
        TENANT,
        ENV,
        t0,
    );
    w.h.publish(&env).await.expect("publish");
    testing::drive(
        &w.h.clock,
        Duration::from_secs(1),
        40,
        "dead letter",
        || async { !testing::dead_letter_reasons(&w.h).await.is_empty() },
    )
    .await;
    let dead = w.h.dead_letters().await.expect("dlq");
    assert_eq!(
        dead[0].dead_letter_reason.as_deref(),
        Some("MaxRetriesExceeded")
    );
    assert_eq!(
        dead[0]
            .message
            .application_properties
            .get(fleet_runtime::PROP_ATTEMPTS)
            .cloned(),
        Some(fleet_bus::PropertyValue::Int(3))
    );
    assert!(w.updates().await.is_empty());
    w.stop().await;
}
