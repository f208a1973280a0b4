//! runtime-deployment on the emulator (fake clock) against the sandbox cloud.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use fleet_cloud::{
    CloudError, Compute, ComputeSet, ObservedService, Operation, PlatformKind, Scope, ServiceSpec,
};
use fleet_envelope::payload::{
    ConfigurationSynced, DeploymentOutcome, DeploymentReason, DesiredStateSource, DriftKind,
    FindingStatus, Platform, RuntimeDeploymentCompleted, RuntimeDeploymentRequested,
    RuntimeDriftDetected, SyncOutcome,
};
use fleet_envelope::{Envelope, EventType, Payload};
use fleet_sandbox::{Drift, FaultPlan, HealthFaults, Port, Sandbox};
use fleet_store::records::{DeploymentState, RuntimeDeployment, RuntimeService, StepStatus};
use fleet_testkit::{Harness, RunningWorker};
use fleet_worker_runtime_deployment::spec::deployment_id;
use fleet_worker_runtime_deployment::{NAME, Ports, SUBSCRIBED, Settings, definition};
use fleet_worker_support::testing;

const TENANT: &str = "t1";
const ENV: &str = "env-1";
const STEP: Duration = Duration::from_secs(5);

struct World {
    h: Harness,
    sandbox: Arc<Sandbox>,
    worker: Option<RunningWorker>,
}

fn scope() -> Scope {
    Scope::new(TENANT, ENV)
}

async fn world_with(computes: impl FnOnce(&Sandbox) -> ComputeSet) -> World {
    let h = Harness::sqlite(NAME, SUBSCRIBED).await.expect("harness");
    let sandbox = testing::sandbox(&h.clock).await;
    h.bind_tenant(ENV, TENANT).await.expect("binding");
    h.bind_tenant("env-2", "t2").await.expect("binding");
    let spec = ServiceSpec::new("svc-a", ENV, PlatformKind::ContainerApps, "img:1", 3);
    testing::running_service(&sandbox, &h.clock, &scope(), &spec).await;
    testing::put(
        &h.store,
        &testing::service_record(TENANT, &spec, h.clock.now()),
    )
    .await;
    let settings = Settings {
        readiness_timeout: Duration::from_secs(90),
        ..Settings::default()
    };
    let ports = Ports::new(computes(&sandbox), settings);
    let def = definition().expect("definition");
    let worker = h.start(h.worker(def, testing::config(&h, 5), Arc::new(ports)));
    World {
        h,
        sandbox,
        worker: Some(worker),
    }
}

async fn world() -> World {
    world_with(|s| s.computes()).await
}

fn requested(deployment: &str, service: &str, image: &str) -> Payload {
    Payload::RuntimeDeploymentRequested(RuntimeDeploymentRequested {
        deployment_id: deployment.into(),
        service_id: service.into(),
        platform: Platform::Containerapps,
        image: image.into(),
        replicas: 3,
        configuration_id: None,
        configuration_version: None,
        secret_bindings: vec![],
        reason: DeploymentReason::Manual,
        requested_by: Some("tests".into()),
    })
}

impl World {
    fn envelope(&self, payload: Payload) -> Envelope {
        testing::envelope(payload, TENANT, ENV, self.h.clock.now())
    }

    async fn completed(&self) -> Vec<RuntimeDeploymentCompleted> {
        testing::emitted(&self.h)
            .await
            .into_iter()
            .filter(|e| e.event_type == EventType::RuntimeDeploymentCompleted)
            .filter_map(|e| match e.payload() {
                Ok(Payload::RuntimeDeploymentCompleted(c)) => Some(c),
                _ => None,
            })
            .collect()
    }

    async fn until_completed(&self, n: usize) -> Vec<RuntimeDeploymentCompleted> {
        testing::drive(
            &self.h.clock,
            STEP,
            80,
            "RuntimeDeploymentCompleted",
            || async { self.completed().await.len() >= n },
        )
        .await;
        self.completed().await
    }

    fn handled(&self) -> u64 {
        self.worker
            .as_ref()
            .map_or(0, |w| w.stats.snapshot().handled)
    }

    async fn live(&self, service: &str) -> ObservedService {
        self.sandbox
            .compute(PlatformKind::ContainerApps)
            .get(&scope(), service)
            .await
            .expect("service exists")
    }

    async fn deployment(&self, id: &str) -> fleet_store::Versioned<RuntimeDeployment> {
        testing::get::<RuntimeDeployment>(&self.h.store, TENANT, id)
            .await
            .expect("deployment record")
    }

    async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop(Duration::from_secs(10)).await.expect("worker stops");
        }
    }
}

fn step(record: &RuntimeDeployment, name: &str) -> (StepStatus, u32) {
    record
        .steps
        .iter()
        .find(|s| s.name == name)
        .map(|s| (s.status, s.attempts))
        .unwrap_or((StepStatus::Pending, 0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_rollout_passes_the_readiness_gate_and_succeeds() {
    let w = world().await;
    w.h.publish(&w.envelope(requested("dep-1", "svc-a", "img:2")))
        .await
        .expect("publish");
    let done = w.until_completed(1).await;
    assert_eq!(done[0].outcome, DeploymentOutcome::Succeeded);
    assert_eq!(done[0].deployment_id, "dep-1");
    assert!(done[0].revision.is_some());
    let live = w.live("svc-a").await;
    assert_eq!((live.image.as_str(), live.ready_replicas), ("img:2", 3));
    let d = w.deployment("dep-1").await.record;
    assert_eq!(d.state, DeploymentState::Succeeded);
    assert_eq!(step(&d, "apply"), (StepStatus::Succeeded, 1));
    assert_eq!(step(&d, "verify"), (StepStatus::Succeeded, 1));
    assert_eq!(d.previous_spec.map(|p| p.image), Some("img:1".to_owned()));
    let svc = testing::get::<RuntimeService>(&w.h.store, TENANT, "svc-a")
        .await
        .expect("svc");
    assert_eq!(
        svc.record.image, "img:2",
        "the desired image follows a successful rollout"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_deployment_requested_again_is_a_no_op() {
    let w = world().await;
    w.h.publish(&w.envelope(requested("dep-1", "svc-a", "img:2")))
        .await
        .expect("publish");
    w.until_completed(1).await;
    let before = w.deployment("dep-1").await.version;
    let generation = w.live("svc-a").await.generation;
    w.h.publish(&w.envelope(requested("dep-1", "svc-a", "img:2")))
        .await
        .expect("publish");
    testing::drive(&w.h.clock, STEP, 20, "second request handled", || async {
        w.handled() >= 2
    })
    .await;
    assert_eq!(w.completed().await.len(), 1, "no second completion");
    assert_eq!(w.deployment("dep-1").await.version, before);
    assert_eq!(
        w.live("svc-a").await.generation,
        generation,
        "nothing re-applied"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_readiness_gate_rolls_back_to_the_previous_revision() {
    let w = world().await;
    let faults = HealthFaults {
        readiness_down: true,
        ..HealthFaults::default()
    };
    w.sandbox
        .set_health_faults(&scope(), "svc-a", faults)
        .expect("faults");
    w.h.publish(&w.envelope(requested("dep-2", "svc-a", "img:2")))
        .await
        .expect("publish");
    let done = w.until_completed(1).await;
    assert_eq!(done[0].outcome, DeploymentOutcome::RolledBack);
    assert_eq!(done[0].failed_step.as_deref(), Some("verify"));
    assert!(
        done[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("readiness gate"))
    );
    assert_eq!(
        w.live("svc-a").await.image,
        "img:1",
        "previous image restored"
    );
    let d = w.deployment("dep-2").await.record;
    assert_eq!(d.state, DeploymentState::RolledBack);
    assert_eq!(step(&d, "verify").0, StepStatus::Failed);
    assert_eq!(step(&d, "rollback"), (StepStatus::Succeeded, 1));
    let svc = testing::get::<RuntimeService>(&w.h.store, TENANT, "svc-a")
        .await
        .expect("svc");
    assert_eq!(
        svc.record.image, "img:1",
        "a rolled-back rollout leaves the desired image"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_service_that_fails_has_nothing_to_roll_back_and_ends_failed() {
    let w = world().await;
    w.h.publish(&w.envelope(requested("dep-3", "svc-new", "img:2:broken")))
        .await
        .expect("publish");
    let done = w.until_completed(1).await;
    assert_eq!(done[0].outcome, DeploymentOutcome::Failed);
    assert_eq!(done[0].failed_step.as_deref(), Some("apply"));
    let d = w.deployment("dep-3").await.record;
    assert_eq!(d.state, DeploymentState::Failed);
    assert!(d.completed_at.is_some());
    assert!(d.previous_spec.is_none());
    w.stop().await;
}

/// A compute port that fails the first `get` after the first `apply`: the attempt dies between
/// the apply and the readiness gate.
struct FlakyAfterApply {
    inner: Arc<dyn Compute>,
    applied: AtomicBool,
    tripped: AtomicBool,
    applies: Arc<AtomicU32>,
}

#[async_trait::async_trait]
impl Compute for FlakyAfterApply {
    fn platform(&self) -> PlatformKind {
        self.inner.platform()
    }
    async fn apply(&self, scope: &Scope, spec: &ServiceSpec) -> Result<Operation, CloudError> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        self.applied.store(true, Ordering::SeqCst);
        self.inner.apply(scope, spec).await
    }
    async fn poll(&self, scope: &Scope, op: &Operation) -> Result<Operation, CloudError> {
        self.inner.poll(scope, op).await
    }
    async fn get(&self, scope: &Scope, id: &str) -> Result<ObservedService, CloudError> {
        if self.applied.load(Ordering::SeqCst) && !self.tripped.swap(true, Ordering::SeqCst) {
            return Err(CloudError::transient(
                "simulated 503 between apply and verify",
            ));
        }
        self.inner.get(scope, id).await
    }
    async fn list(&self, scope: &Scope) -> Result<Vec<ObservedService>, CloudError> {
        self.inner.list(scope).await
    }
    async fn scale(&self, scope: &Scope, id: &str, r: u32) -> Result<Operation, CloudError> {
        self.inner.scale(scope, id, r).await
    }
    async fn apply_config(
        &self,
        scope: &Scope,
        id: &str,
        cfg: &str,
        version: u64,
        values: &BTreeMap<String, String>,
    ) -> Result<Operation, CloudError> {
        self.inner
            .apply_config(scope, id, cfg, version, values)
            .await
    }
    async fn refresh_secret_binding(
        &self,
        scope: &Scope,
        id: &str,
        binding: &str,
        secret: &str,
        version: &str,
    ) -> Result<Operation, CloudError> {
        self.inner
            .refresh_secret_binding(scope, id, binding, secret, version)
            .await
    }
    async fn delete(&self, scope: &Scope, id: &str) -> Result<Operation, CloudError> {
        self.inner.delete(scope, id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_skips_the_completed_apply_step() {
    let applies = Arc::new(AtomicU32::new(0));
    let counter = applies.clone();
    let w = world_with(move |s| {
        ComputeSet::new().with(Arc::new(FlakyAfterApply {
            inner: s.compute(PlatformKind::ContainerApps),
            applied: AtomicBool::new(false),
            tripped: AtomicBool::new(false),
            applies: counter,
        }))
    })
    .await;
    w.h.publish(&w.envelope(requested("dep-4", "svc-a", "img:2")))
        .await
        .expect("publish");
    let done = w.until_completed(1).await;
    assert_eq!(done[0].outcome, DeploymentOutcome::Succeeded);
    let d = w.deployment("dep-4").await.record;
    assert_eq!(d.attempts, 2, "the first attempt failed after the apply");
    assert_eq!(
        step(&d, "apply"),
        (StepStatus::Succeeded, 1),
        "apply ran once"
    );
    assert_eq!(step(&d, "verify"), (StepStatus::Succeeded, 2));
    assert_eq!(
        applies.load(Ordering::SeqCst),
        1,
        "the control plane saw one apply"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_configuration_redeploys_the_service_once_under_a_deterministic_id() {
    let w = world().await;
    let synced = |outcome| {
        Payload::ConfigurationSynced(ConfigurationSynced {
            configuration_id: "cfg-1".into(),
            version: 4,
            service_id: "svc-a".into(),
            outcome,
            previous_version: Some(3),
            restart_required: outcome == SyncOutcome::Applied,
            error: None,
        })
    };
    w.h.publish(&w.envelope(synced(SyncOutcome::Unchanged)))
        .await
        .expect("publish");
    w.h.publish(&w.envelope(synced(SyncOutcome::Applied)))
        .await
        .expect("publish");
    let done = w.until_completed(1).await;
    let expected = deployment_id("config", &[TENANT, ENV, "svc-a", "cfg-1", "4"]);
    assert_eq!(done[0].deployment_id, expected);
    assert_eq!(done[0].outcome, DeploymentOutcome::Succeeded);
    assert_eq!(w.live("svc-a").await.config_version, Some(4));
    // The same sync seen again (a redelivery with a new id) finds the finished deployment.
    w.h.publish(&w.envelope(synced(SyncOutcome::Applied)))
        .await
        .expect("publish");
    testing::drive(&w.h.clock, STEP, 20, "third event handled", || async {
        w.handled() >= 3
    })
    .await;
    assert_eq!(w.completed().await.len(), 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_drift_finding_is_remediated_by_a_redeploy() {
    let w = world().await;
    w.sandbox
        .inject_drift(
            &scope(),
            Drift::Image {
                service_id: "svc-a".into(),
                image: "img:rogue".into(),
            },
        )
        .expect("drift");
    let finding = RuntimeDriftDetected {
        finding_id: "f1".into(),
        finding_hash: "a".repeat(64),
        service_id: Some("svc-a".into()),
        resource_id: "svc-a".into(),
        kind: DriftKind::Image,
        desired: serde_json::json!("img:1"),
        actual: serde_json::json!("img:rogue"),
        desired_source: DesiredStateSource::Git,
        status: FindingStatus::Open,
        occurrences: 1,
        first_seen_at: w.h.clock.now(),
        last_seen_at: w.h.clock.now(),
    };
    w.h.publish(&w.envelope(Payload::RuntimeDriftDetected(finding)))
        .await
        .expect("publish");
    let done = w.until_completed(1).await;
    assert_eq!(done[0].outcome, DeploymentOutcome::Succeeded);
    assert_eq!(
        done[0].deployment_id,
        deployment_id("drift", &[TENANT, ENV, &"a".repeat(64)])
    );
    assert_eq!(w.live("svc-a").await.image, "img:1");
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
    w.h.publish(&w.envelope(requested("dep-5", "svc-a", "img:2")))
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
    assert_eq!(
        testing::dead_letter_reasons(&w.h).await,
        vec!["MaxRetriesExceeded".to_owned()]
    );
    assert!(w.completed().await.is_empty());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_cannot_deploy_into_the_environment() {
    let w = world().await;
    let env = testing::envelope(
        requested("dep-6", "svc-a", "img:evil"),
        "t2",
        ENV,
        w.h.clock.now(),
    );
    w.h.publish(&env).await.expect("publish");
    testing::drive(&w.h.clock, STEP, 20, "dead letter", || async {
        !testing::dead_letter_reasons(&w.h).await.is_empty()
    })
    .await;
    assert_eq!(
        testing::dead_letter_reasons(&w.h).await,
        vec!["TenantMismatch".to_owned()]
    );
    assert_eq!(w.live("svc-a").await.image, "img:1");
    assert!(
        testing::get::<RuntimeDeployment>(&w.h.store, "t2", "dep-6")
            .await
            .is_none()
    );
    assert!(
        testing::get::<RuntimeDeployment>(&w.h.store, TENANT, "dep-6")
            .await
            .is_none()
    );
    w.stop().await;
}
