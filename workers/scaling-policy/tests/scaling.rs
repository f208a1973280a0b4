//! scaling-policy on the emulator (fake clock) against the sandbox's metrics and compute.

use std::sync::Arc;
use std::time::Duration;

use fleet_cloud::{PlatformKind, Scope, ServiceSpec};
use fleet_envelope::payload::{HealthCheckCompleted, HealthStatus, ScalingPolicyApplied, Window};
use fleet_envelope::{EventType, Payload};
use fleet_sandbox::{FaultPlan, LoadProfile, Port, Sandbox};
use fleet_store::records::{
    DeploymentSpec, DeploymentState, PlatformKind as Stored, RuntimeDeployment, ScalingPolicy,
};
use fleet_testkit::{Harness, RunningWorker};
use fleet_worker_scaling_policy::{NAME, Ports, SUBSCRIBED, Settings, definition};
use fleet_worker_support::{Environments, testing};

const TENANT: &str = "t1";
const ENV: &str = "env-1";
const PERIOD: Duration = Duration::from_secs(60);

struct World {
    h: Harness,
    sandbox: Arc<Sandbox>,
    worker: Option<RunningWorker>,
}

fn policy(tenant: &str, env: &str, service: &str) -> ScalingPolicy {
    ScalingPolicy {
        id: format!("p-{service}"),
        tenant_id: tenant.into(),
        environment_id: env.into(),
        service_id: service.into(),
        min_replicas: 1,
        max_replicas: 10,
        metric: "requestsPerSecond".into(),
        target: 25.0,
        cooldown_seconds: 300,
        enabled: true,
        last_action: None,
    }
}

/// svc-a (2 replicas) in env-1 of t1 and svc-x (2 replicas) in env-2 of t2, each with a policy
/// targeting 25 requests per replica and a load of `rps`.
async fn world(rps: f64) -> World {
    let h = Harness::sqlite(NAME, SUBSCRIBED).await.expect("harness");
    let sandbox = testing::sandbox(&h.clock).await;
    for (tenant, env, id) in [(TENANT, ENV, "svc-a"), ("t2", "env-2", "svc-x")] {
        h.bind_tenant(env, tenant).await.expect("binding");
        let scope = Scope::new(tenant, env);
        let spec = ServiceSpec::new(id, env, PlatformKind::ContainerApps, "img:1", 2);
        testing::running_service(&sandbox, &h.clock, &scope, &spec).await;
        sandbox
            .set_load(&scope, id, LoadProfile::Constant { rps })
            .expect("load");
        testing::put(
            &h.store,
            &testing::service_record(tenant, &spec, h.clock.now()),
        )
        .await;
        testing::put(&h.store, &policy(tenant, env, id)).await;
    }
    h.clock.advance(Duration::from_secs(180));
    h.clock
        .set(fleet_runtime::next_window_start(h.clock.now(), PERIOD));
    World {
        h,
        sandbox,
        worker: None,
    }
}

impl World {
    fn start(&mut self, environments: &[&str]) {
        let ports = Ports::new(
            self.sandbox.computes(),
            self.sandbox.metrics(),
            Environments::new(environments.iter().copied()),
            Settings::default(),
        );
        let def = definition(&Settings::default()).expect("definition");
        let worker = self
            .h
            .worker(def, testing::config(&self.h, 4), Arc::new(ports));
        self.worker = Some(self.h.start(worker));
    }

    fn stats(&self) -> fleet_runtime::StatsSnapshot {
        self.worker
            .as_ref()
            .map(|w| w.stats.snapshot())
            .expect("running")
    }

    async fn wait_passes(&self, n: u64) {
        self.h
            .wait_until("timer passes", Duration::from_secs(20), || async {
                self.stats().timer_runs >= n
            })
            .await
            .expect("timer pass");
        testing::relayed(&self.h).await;
    }

    async fn pass_after(&self, by: Duration) {
        let n = self.stats().timer_runs + 1;
        self.h.clock.advance(by);
        self.wait_passes(n).await;
    }

    async fn applied(&self) -> Vec<(String, ScalingPolicyApplied)> {
        testing::emitted(&self.h)
            .await
            .into_iter()
            .filter(|e| e.event_type == EventType::ScalingPolicyApplied)
            .filter_map(|e| match e.payload() {
                Ok(Payload::ScalingPolicyApplied(a)) => Some((e.tenant_id.clone(), a)),
                _ => None,
            })
            .collect()
    }

    async fn replicas(&self, tenant: &str, env: &str, id: &str) -> u32 {
        self.sandbox
            .compute(PlatformKind::ContainerApps)
            .get(&Scope::new(tenant, env), id)
            .await
            .expect("service")
            .replicas
    }

    async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop(Duration::from_secs(10)).await.expect("worker stops");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metric_above_target_scales_out_and_cooldown_holds_the_next_action() {
    // 100 rps on 2 replicas = 50 per replica, target 25 → 4 replicas.
    let mut w = world(100.0).await;
    w.start(&[ENV]);
    w.wait_passes(1).await;
    let applied = w.applied().await;
    assert_eq!(applied.len(), 1);
    let a = &applied[0].1;
    assert_eq!((a.from_replicas, a.to_replicas), (2, 4));
    assert_eq!(
        a.metric.as_ref().map(|m| m.name.as_str()),
        Some("RequestsPerReplica")
    );
    assert_eq!(
        a.cooldown_until,
        Some(w.h.clock.now() + chrono::Duration::seconds(300))
    );
    assert_eq!(w.replicas(TENANT, ENV, "svc-a").await, 4);
    let p = testing::get::<ScalingPolicy>(&w.h.store, TENANT, "p-svc-a")
        .await
        .expect("policy");
    assert_eq!(p.record.last_action.map(|l| l.to_replicas), Some(4));

    // Load doubles: 200 rps on 4 = 50 per replica again, but the cooldown (300 s) holds.
    let scope = Scope::new(TENANT, ENV);
    w.sandbox
        .set_load(&scope, "svc-a", LoadProfile::Constant { rps: 200.0 })
        .expect("load");
    w.pass_after(PERIOD).await;
    w.pass_after(PERIOD).await;
    assert_eq!(w.applied().await.len(), 1, "no action inside the cooldown");
    assert_eq!(w.replicas(TENANT, ENV, "svc-a").await, 4);
    w.pass_after(Duration::from_secs(240)).await;
    let applied = w.applied().await;
    assert_eq!(applied.len(), 2, "acts again once the cooldown is over");
    assert_eq!(
        (applied[1].1.from_replicas, applied[1].1.to_replicas),
        (4, 8)
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_at_target_is_left_alone() {
    // 50 rps on 2 replicas = 25 per replica = the target.
    let mut w = world(50.0).await;
    let before = testing::get::<ScalingPolicy>(&w.h.store, TENANT, "p-svc-a")
        .await
        .expect("p");
    w.start(&[ENV]);
    w.wait_passes(1).await;
    w.pass_after(PERIOD).await;
    assert!(w.applied().await.is_empty());
    assert_eq!(w.replicas(TENANT, ENV, "svc-a").await, 2);
    let after = testing::get::<ScalingPolicy>(&w.h.store, TENANT, "p-svc-a")
        .await
        .expect("p");
    assert_eq!(after.version, before.version, "no write at target");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_holds_while_a_rollout_of_the_service_is_in_flight() {
    let mut w = world(100.0).await;
    let now = w.h.clock.now();
    let mut rollout = RuntimeDeployment {
        id: "dep-1".into(),
        tenant_id: TENANT.into(),
        environment_id: ENV.into(),
        service_id: "svc-a".into(),
        state: DeploymentState::Verifying,
        current_step: Some(1),
        steps: vec![],
        spec: DeploymentSpec {
            platform: Stored::ContainerApps,
            image: "img:2".into(),
            replicas: 2,
            config_version: None,
            secret_versions: Default::default(),
            env: Default::default(),
        },
        previous_spec: None,
        attempts: 1,
        requested_by_event: None,
        failure_reason: None,
        requested_at: now,
        updated_at: now,
        completed_at: None,
    };
    testing::put(&w.h.store, &rollout).await;
    w.start(&[ENV]);
    w.wait_passes(1).await;
    w.pass_after(PERIOD).await;
    assert!(w.applied().await.is_empty(), "held during the rollout");
    assert_eq!(w.replicas(TENANT, ENV, "svc-a").await, 2);
    rollout.state = DeploymentState::Succeeded;
    testing::put(&w.h.store, &rollout).await;
    w.pass_after(PERIOD).await;
    assert_eq!(w.applied().await.len(), 1, "acts once the rollout is over");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_check_event_evaluates_its_service_and_each_tenant_scales_only_its_own() {
    let mut w = world(100.0).await;
    w.start(&[]);
    let now = w.h.clock.now();
    let check = |service: &str| {
        Payload::HealthCheckCompleted(HealthCheckCompleted {
            service_id: service.into(),
            window: Window {
                start: now,
                end: now + chrono::Duration::seconds(30),
            },
            status: HealthStatus::Healthy,
            previous_status: None,
            consecutive_failed_windows: 0,
            probes: vec![],
        })
    };
    w.h.publish(&testing::envelope(check("svc-x"), "t2", "env-2", now))
        .await
        .expect("publish");
    // t2 naming a service in t1's environment is refused before any handler runs.
    w.h.publish(&testing::envelope(check("svc-a"), "t2", ENV, now))
        .await
        .expect("publish");
    w.h.wait_until("both settled", Duration::from_secs(20), || async {
        let s = w.stats();
        testing::messages_handled(&s) >= 1 && s.dead_lettered >= 1 && !w.applied().await.is_empty()
    })
    .await
    .expect("settled");
    let applied = w.applied().await;
    assert_eq!(applied.len(), 1);
    assert_eq!(
        (applied[0].0.as_str(), applied[0].1.service_id.as_str()),
        ("t2", "svc-x")
    );
    assert_eq!(w.replicas("t2", "env-2", "svc-x").await, 4);
    assert_eq!(
        w.replicas(TENANT, ENV, "svc-a").await,
        2,
        "t1's service untouched"
    );
    assert_eq!(
        testing::dead_letter_reasons(&w.h).await,
        vec!["TenantMismatch".to_owned()]
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_metrics_are_retried_four_times_then_dead_lettered() {
    let mut w = world(100.0).await;
    w.sandbox.set_faults(
        Port::Metrics,
        FaultPlan {
            fail_next: 1000,
            ..FaultPlan::default()
        },
    );
    w.start(&[]);
    let now = w.h.clock.now();
    let check = Payload::HealthCheckCompleted(HealthCheckCompleted {
        service_id: "svc-a".into(),
        window: Window {
            start: now,
            end: now + chrono::Duration::seconds(30),
        },
        status: HealthStatus::Healthy,
        previous_status: None,
        consecutive_failed_windows: 0,
        probes: vec![],
    });
    w.h.publish(&testing::envelope(check, TENANT, ENV, now))
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
    assert_eq!(
        dead[0]
            .message
            .application_properties
            .get(fleet_runtime::PROP_ATTEMPTS)
            .cloned(),
        Some(fleet_bus::PropertyValue::Int(4))
    );
    assert_eq!(w.replicas(TENANT, ENV, "svc-a").await, 2);
    w.stop().await;
}
