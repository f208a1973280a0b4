//! runtime-health on the emulator (fake clock) probing the sandbox's real HTTP endpoints.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use fleet_cloud::{PlatformKind, Scope, ServiceSpec};
use fleet_envelope::payload::{
    DeploymentOutcome, HealthCheckCompleted, HealthStatus, Platform, RuntimeDeploymentCompleted,
};
use fleet_envelope::{EventType, Payload};
use fleet_sandbox::{HealthFaults, Sandbox};
use fleet_store::records::{self, HealthCheckResult};
use fleet_testkit::{Harness, RunningWorker};
use fleet_worker_runtime_health::{NAME, Ports, SUBSCRIBED, Settings, definition};
use fleet_worker_support::{Environments, testing};

const TENANT: &str = "t1";
const ENV: &str = "env-1";
const PERIOD: Duration = Duration::from_secs(30);

struct World {
    h: Harness,
    sandbox: Arc<Sandbox>,
    worker: Option<RunningWorker>,
}

fn settings() -> Settings {
    Settings {
        degraded_after: 2,
        unhealthy_after: 3,
        probe_timeout: Duration::from_secs(2),
        probe_retry_delay: Duration::from_millis(10),
        ..Settings::default()
    }
}

fn scope() -> Scope {
    Scope::new(TENANT, ENV)
}

async fn world() -> World {
    let h = Harness::sqlite(NAME, SUBSCRIBED).await.expect("harness");
    let sandbox = testing::sandbox(&h.clock).await;
    h.bind_tenant(ENV, TENANT).await.expect("binding");
    h.bind_tenant("env-2", "t2").await.expect("binding");
    for (id, platform) in [
        ("svc-a", PlatformKind::ContainerApps),
        ("svc-b", PlatformKind::Aks),
    ] {
        let spec = ServiceSpec::new(id, ENV, platform, "img:1", 2);
        testing::running_service(&sandbox, &h.clock, &scope(), &spec).await;
    }
    let other = ServiceSpec::new("svc-x", "env-2", PlatformKind::Functions, "img:9", 1);
    testing::running_service(&sandbox, &h.clock, &Scope::new("t2", "env-2"), &other).await;
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
            Environments::new(environments.iter().copied()),
            settings(),
        )
        .expect("ports");
        let def = definition(&settings()).expect("definition");
        let worker = self
            .h
            .worker(def, testing::config(&self.h, 3), Arc::new(ports));
        self.worker = Some(self.h.start(worker));
    }

    fn timer_runs(&self) -> u64 {
        self.worker
            .as_ref()
            .map_or(0, |w| w.stats.snapshot().timer_runs)
    }

    async fn wait_passes(&self, n: u64) {
        self.h
            .wait_until("timer passes", Duration::from_secs(20), || async {
                self.timer_runs() >= n
            })
            .await
            .expect("timer pass");
        testing::relayed(&self.h).await;
    }

    async fn next_pass(&self) {
        let n = self.timer_runs() + 1;
        self.h.clock.advance(PERIOD);
        self.wait_passes(n).await;
    }

    async fn checks(&self) -> Vec<(String, HealthCheckCompleted)> {
        testing::emitted(&self.h)
            .await
            .into_iter()
            .filter(|e| e.event_type == EventType::HealthCheckCompleted)
            .filter_map(|e| match e.payload() {
                Ok(Payload::HealthCheckCompleted(c)) => Some((e.tenant_id.clone(), c)),
                _ => None,
            })
            .collect()
    }

    async fn last_of(&self, service: &str) -> HealthCheckCompleted {
        self.checks()
            .await
            .into_iter()
            .rev()
            .find(|(_, c)| c.service_id == service)
            .map(|(_, c)| c)
            .expect("a check of the service")
    }

    async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop(Duration::from_secs(10)).await.expect("worker stops");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_gets_one_result_and_event_per_window() {
    let mut w = world().await;
    let window = w.h.clock.now();
    w.start(&[ENV]);
    w.wait_passes(1).await;
    let checks = w.checks().await;
    assert_eq!(checks.len(), 2);
    for (_, c) in &checks {
        assert_eq!(c.status, HealthStatus::Healthy);
        assert_eq!(c.window.start, window);
        assert_eq!(c.probes.len(), 2, "liveness and readiness");
        assert!(
            c.probes
                .iter()
                .all(|p| p.passed && p.http_status == Some(200))
        );
    }
    let r = testing::get::<HealthCheckResult>(&w.h.store, TENANT, "svc-a")
        .await
        .expect("record");
    assert_eq!(
        (r.record.window_start, r.record.window_seconds),
        (window, 30)
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_degraded_after_the_threshold_of_failed_windows_then_unhealthy_then_recovers()
{
    let mut w = world().await;
    let down = HealthFaults {
        readiness_down: true,
        ..HealthFaults::default()
    };
    w.sandbox
        .set_health_faults(&scope(), "svc-a", down)
        .expect("faults");
    w.start(&[ENV]);
    w.wait_passes(1).await;
    let first = w.last_of("svc-a").await;
    assert_eq!(
        (first.status, first.consecutive_failed_windows),
        (HealthStatus::Healthy, 1)
    );
    let ready = first
        .probes
        .iter()
        .find(|p| p.target.ends_with("/ready"))
        .expect("readiness");
    assert!(!ready.passed);
    assert_eq!(ready.attempts, 3, "a failing probe is tried three times");
    w.next_pass().await;
    let second = w.last_of("svc-a").await;
    assert_eq!(
        (second.status, second.consecutive_failed_windows),
        (HealthStatus::Degraded, 2)
    );
    w.next_pass().await;
    let third = w.last_of("svc-a").await;
    assert_eq!(
        (third.status, third.consecutive_failed_windows),
        (HealthStatus::Unhealthy, 3)
    );
    assert_eq!(third.previous_status, Some(HealthStatus::Degraded));
    let r = testing::get::<HealthCheckResult>(&w.h.store, TENANT, "svc-a")
        .await
        .expect("record");
    assert_eq!(r.record.status, records::HealthStatus::Unhealthy);
    w.sandbox
        .set_health_faults(&scope(), "svc-a", HealthFaults::default())
        .expect("clear");
    w.next_pass().await;
    let fourth = w.last_of("svc-a").await;
    assert_eq!(
        (fourth.status, fourth.consecutive_failed_windows),
        (HealthStatus::Healthy, 0)
    );
    assert_eq!(fourth.previous_status, Some(HealthStatus::Unhealthy));
    assert_eq!(w.last_of("svc-b").await.status, HealthStatus::Healthy);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_endpoint_passes_within_its_three_tries() {
    let mut w = world().await;
    let flap = HealthFaults {
        fail_next: 2,
        ..HealthFaults::default()
    };
    w.sandbox
        .set_health_faults(&scope(), "svc-a", flap)
        .expect("faults");
    w.start(&[ENV]);
    w.wait_passes(1).await;
    let c = w.last_of("svc-a").await;
    assert_eq!(c.status, HealthStatus::Healthy);
    assert!(c.probes.iter().all(|p| p.passed));
    let retries: u32 = c.probes.iter().map(|p| p.attempts - 1).sum();
    assert_eq!(retries, 2, "the two failed tries were retried");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dependency_alone_degrades_the_service() {
    let mut w = world().await;
    w.sandbox
        .set_dependencies(&scope(), "svc-a", ["db"])
        .expect("deps");
    let faults = HealthFaults {
        dependencies_down: BTreeSet::from(["db".to_owned()]),
        ..HealthFaults::default()
    };
    w.sandbox
        .set_health_faults(&scope(), "svc-a", faults)
        .expect("faults");
    w.start(&[ENV]);
    w.wait_passes(1).await;
    let c = w.last_of("svc-a").await;
    assert_eq!(
        (c.status, c.consecutive_failed_windows),
        (HealthStatus::Degraded, 0)
    );
    let dep = c
        .probes
        .iter()
        .find(|p| p.target == "db")
        .expect("dependency probe");
    assert!(!dep.passed);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_result_wins_over_an_older_window() {
    let mut w = world().await;
    let newer = w.h.clock.now() + chrono::Duration::hours(1);
    let seeded = HealthCheckResult {
        id: "svc-a".into(),
        tenant_id: TENANT.into(),
        environment_id: ENV.into(),
        service_id: "svc-a".into(),
        window_start: newer,
        window_seconds: 30,
        liveness: records::ProbeResult {
            ok: false,
            status_code: Some(503),
            latency_ms: 1,
            attempts: 3,
            error: Some("HTTP 503".into()),
        },
        readiness: records::ProbeResult {
            ok: false,
            status_code: Some(503),
            latency_ms: 1,
            attempts: 3,
            error: Some("HTTP 503".into()),
        },
        dependencies: vec![],
        status: records::HealthStatus::Unhealthy,
        consecutive_failed_windows: 9,
        checked_at: newer,
    };
    testing::put(&w.h.store, &seeded).await;
    let before = testing::get::<HealthCheckResult>(&w.h.store, TENANT, "svc-a")
        .await
        .expect("r");
    w.start(&[ENV]);
    w.wait_passes(1).await;
    let after = testing::get::<HealthCheckResult>(&w.h.store, TENANT, "svc-a")
        .await
        .expect("r");
    assert_eq!(
        after.version, before.version,
        "an older window never overwrites a newer one"
    );
    assert_eq!(after.record, seeded);
    let checks = w.checks().await;
    assert!(checks.iter().all(|(_, c)| c.service_id != "svc-a"));
    assert!(checks.iter().any(|(_, c)| c.service_id == "svc-b"));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_gets_results_for_its_own_services_only() {
    let mut w = world().await;
    w.start(&[ENV, "env-2"]);
    w.wait_passes(1).await;
    for (tenant, c) in w.checks().await {
        let expected = if c.service_id == "svc-x" {
            "t2"
        } else {
            TENANT
        };
        assert_eq!(tenant, expected);
    }
    assert!(
        testing::get::<HealthCheckResult>(&w.h.store, TENANT, "svc-x")
            .await
            .is_none()
    );
    assert!(
        testing::get::<HealthCheckResult>(&w.h.store, "t2", "svc-x")
            .await
            .is_some()
    );
    assert!(
        testing::get::<HealthCheckResult>(&w.h.store, "t2", "svc-a")
            .await
            .is_none()
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_event_evaluates_its_service_once_per_window() {
    let mut w = world().await;
    w.start(&[]);
    let now = w.h.clock.now();
    let completed = |id: &str| {
        Payload::RuntimeDeploymentCompleted(RuntimeDeploymentCompleted {
            deployment_id: id.into(),
            service_id: "svc-a".into(),
            platform: Platform::Containerapps,
            image: "img:1".into(),
            replicas: 2,
            outcome: DeploymentOutcome::Succeeded,
            revision: None,
            failed_step: None,
            error: None,
            started_at: now,
            completed_at: now,
        })
    };
    w.h.publish(&testing::envelope(completed("d1"), TENANT, ENV, now))
        .await
        .expect("publish");
    w.h.publish(&testing::envelope(completed("d2"), TENANT, ENV, now))
        .await
        .expect("publish");
    w.h.wait_until(
        "both handled and the event relayed",
        Duration::from_secs(20),
        || async {
            w.worker
                .as_ref()
                .map_or(0, |x| testing::messages_handled(&x.stats.snapshot()))
                >= 2
                && !w.checks().await.is_empty()
        },
    )
    .await
    .expect("handled");
    let checks = w.checks().await;
    assert_eq!(checks.len(), 1, "one evaluation per service and window");
    assert_eq!(checks[0].1.service_id, "svc-a");
    w.stop().await;
}
