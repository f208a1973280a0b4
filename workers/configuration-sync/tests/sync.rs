//! configuration-sync on the emulator (fake clock) against the sandbox cloud.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_cloud::{PlatformKind, Scope, ServiceSpec};
use fleet_envelope::payload::{ConfigurationPublished, SyncOutcome};
use fleet_envelope::{Envelope, EventType, Payload};
use fleet_sandbox::{FaultPlan, Port, Sandbox};
use fleet_store::records::RuntimeConfiguration;
use fleet_testkit::{Harness, RunningWorker};
use fleet_worker_configuration_sync::{NAME, Ports, SUBSCRIBED, Settings, definition};
use fleet_worker_support::testing;

const TENANT: &str = "t1";
const ENV: &str = "env-1";
const STEP: Duration = Duration::from_secs(5);

struct World {
    h: Harness,
    sandbox: Arc<Sandbox>,
    worker: Option<RunningWorker>,
}

async fn world() -> World {
    let h = Harness::sqlite(NAME, SUBSCRIBED).await.expect("harness");
    let sandbox = testing::sandbox(&h.clock).await;
    h.bind_tenant(ENV, TENANT).await.expect("binding");
    h.bind_tenant("env-2", "t2").await.expect("binding");
    for (tenant, env) in [(TENANT, ENV), ("t2", "env-2")] {
        let spec = ServiceSpec::new("svc-a", env, PlatformKind::ContainerApps, "img:1", 2);
        testing::running_service(&sandbox, &h.clock, &Scope::new(tenant, env), &spec).await;
        testing::put(
            &h.store,
            &testing::service_record(tenant, &spec, h.clock.now()),
        )
        .await;
    }
    let ports = Ports::new(sandbox.computes(), Settings::default());
    let def = definition().expect("definition");
    let worker = h.start(h.worker(def, testing::config(&h, 5), Arc::new(ports)));
    World {
        h,
        sandbox,
        worker: Some(worker),
    }
}

impl World {
    fn published(&self, tenant: &str, env: &str, version: u64, services: &[&str]) -> Envelope {
        let p = ConfigurationPublished {
            configuration_id: "cfg-1".into(),
            version,
            service_ids: services.iter().map(|s| (*s).to_owned()).collect(),
            values: Some(BTreeMap::from([(
                "LOG_LEVEL".into(),
                format!("v{version}"),
            )])),
            reference: None,
        };
        testing::envelope(
            Payload::ConfigurationPublished(p),
            tenant,
            env,
            self.h.clock.now(),
        )
    }

    async fn synced(&self) -> Vec<fleet_envelope::payload::ConfigurationSynced> {
        testing::emitted(&self.h)
            .await
            .into_iter()
            .filter(|e| e.event_type == EventType::ConfigurationSynced)
            .filter_map(|e| match e.payload() {
                Ok(Payload::ConfigurationSynced(s)) => Some(s),
                _ => None,
            })
            .collect()
    }

    async fn handled(&self) -> u64 {
        self.worker
            .as_ref()
            .map_or(0, |w| w.stats.snapshot().handled)
    }

    async fn live_config_version(&self, tenant: &str, env: &str) -> Option<u64> {
        let c = self.sandbox.compute(PlatformKind::ContainerApps);
        c.get(&Scope::new(tenant, env), "svc-a")
            .await
            .expect("service exists")
            .config_version
    }

    async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop(Duration::from_secs(10)).await.expect("worker stops");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_version_is_applied_recorded_and_announced() {
    let w = world().await;
    w.h.publish(&w.published(TENANT, ENV, 1, &["svc-a"]))
        .await
        .expect("publish");
    testing::drive(&w.h.clock, STEP, 40, "ConfigurationSynced", || async {
        !w.synced().await.is_empty()
    })
    .await;
    let synced = w.synced().await;
    assert_eq!(synced.len(), 1);
    assert_eq!(synced[0].outcome, SyncOutcome::Applied);
    assert_eq!(synced[0].previous_version, None);
    assert!(
        synced[0].restart_required,
        "a changed configuration needs a new revision"
    );
    let record = testing::get::<RuntimeConfiguration>(&w.h.store, TENANT, "cfg-1")
        .await
        .expect("configuration record");
    assert_eq!(record.record.latest_version, 1);
    assert_eq!(
        record.record.applied.get("svc-a").map(|a| a.version),
        Some(1)
    );
    assert_eq!(w.live_config_version(TENANT, ENV).await, Some(1));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_version_published_again_is_a_no_op_and_an_older_one_never_rolls_back() {
    let w = world().await;
    w.h.publish(&w.published(TENANT, ENV, 2, &["svc-a"]))
        .await
        .expect("publish");
    testing::drive(&w.h.clock, STEP, 40, "first sync", || async {
        !w.synced().await.is_empty()
    })
    .await;
    let before = testing::get::<RuntimeConfiguration>(&w.h.store, TENANT, "cfg-1")
        .await
        .expect("record");
    // A new event id carrying the same version, then an older version.
    w.h.publish(&w.published(TENANT, ENV, 2, &["svc-a"]))
        .await
        .expect("publish");
    w.h.publish(&w.published(TENANT, ENV, 1, &["svc-a"]))
        .await
        .expect("publish");
    testing::drive(&w.h.clock, STEP, 40, "re-publishes handled", || async {
        w.handled().await >= 3
    })
    .await;
    assert_eq!(w.synced().await.len(), 1, "only the first publish emits");
    let after = testing::get::<RuntimeConfiguration>(&w.h.store, TENANT, "cfg-1")
        .await
        .expect("record");
    assert_eq!(after.version, before.version, "no write for a no-op");
    assert_eq!(
        after.record.applied.get("svc-a").map(|a| a.version),
        Some(2)
    );
    assert_eq!(w.live_config_version(TENANT, ENV).await, Some(2));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_missing_from_the_inventory_is_reported_failed_without_blocking_others() {
    let w = world().await;
    w.h.publish(&w.published(TENANT, ENV, 1, &["ghost", "svc-a"]))
        .await
        .expect("publish");
    testing::drive(&w.h.clock, STEP, 40, "two syncs", || async {
        w.synced().await.len() >= 2
    })
    .await;
    let synced = w.synced().await;
    let ghost = synced
        .iter()
        .find(|s| s.service_id == "ghost")
        .expect("ghost");
    assert_eq!(ghost.outcome, SyncOutcome::Failed);
    assert!(ghost.error.as_deref().is_some_and(|e| e.contains("ghost")));
    let ok = synced
        .iter()
        .find(|s| s.service_id == "svc-a")
        .expect("svc-a");
    assert_eq!(ok.outcome, SyncOutcome::Applied);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_control_plane_is_retried_five_times_then_dead_lettered() {
    let w = world().await;
    w.sandbox.set_faults(
        Port::Compute(PlatformKind::ContainerApps),
        FaultPlan {
            fail_next: 1000,
            ..FaultPlan::default()
        },
    );
    w.h.publish(&w.published(TENANT, ENV, 1, &["svc-a"]))
        .await
        .expect("publish");
    testing::drive(
        &w.h.clock,
        Duration::from_secs(1),
        60,
        "dead letter",
        || async { !testing::dead_letter_reasons(&w.h).await.is_empty() },
    )
    .await;
    let dead = w.h.dead_letters().await.expect("dlq");
    assert_eq!(
        dead[0].dead_letter_reason.as_deref(),
        Some("MaxRetriesExceeded")
    );
    let attempts = dead[0]
        .message
        .application_properties
        .get(fleet_runtime::PROP_ATTEMPTS)
        .cloned();
    assert_eq!(attempts, Some(fleet_bus::PropertyValue::Int(5)));
    assert!(w.synced().await.is_empty());
    assert!(
        testing::get::<RuntimeConfiguration>(&w.h.store, TENANT, "cfg-1")
            .await
            .is_none()
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_event_for_the_environment_is_refused_and_touches_nothing() {
    let w = world().await;
    // t2 claims env-1, which t1 owns.
    w.h.publish(&w.published("t2", ENV, 1, &["svc-a"]))
        .await
        .expect("publish");
    testing::drive(&w.h.clock, STEP, 20, "dead letter", || async {
        !testing::dead_letter_reasons(&w.h).await.is_empty()
    })
    .await;
    assert_eq!(
        testing::dead_letter_reasons(&w.h).await,
        vec!["TenantMismatch".to_owned()]
    );
    assert_eq!(w.live_config_version(TENANT, ENV).await, None);
    assert_eq!(w.live_config_version("t2", "env-2").await, None);
    // t2 acting in its own environment only reaches its own service.
    w.h.publish(&w.published("t2", "env-2", 1, &["svc-a"]))
        .await
        .expect("publish");
    testing::drive(&w.h.clock, STEP, 40, "t2 sync", || async {
        !w.synced().await.is_empty()
    })
    .await;
    assert_eq!(w.live_config_version("t2", "env-2").await, Some(1));
    assert_eq!(w.live_config_version(TENANT, ENV).await, None);
    assert!(
        testing::get::<RuntimeConfiguration>(&w.h.store, TENANT, "cfg-1")
            .await
            .is_none()
    );
    w.stop().await;
}
