//! drift-detection on the emulator (fake clock): Git manifests against the sandbox cloud.

use std::sync::Arc;
use std::time::Duration;

use fleet_cloud::{ManifestDir, PlatformKind, Scope, ServiceSpec};
use fleet_envelope::payload::{
    DriftKind, FindingStatus, HealthCheckCompleted, HealthStatus, RuntimeDriftDetected, Window,
};
use fleet_envelope::{EventType, Payload};
use fleet_sandbox::{Drift, FaultPlan, Port, Sandbox};
use fleet_store::StoreExt;
use fleet_store::records::{self, RuntimeDriftFinding};
use fleet_testkit::{Harness, RunningWorker};
use fleet_worker_drift_detection::{NAME, Ports, SUBSCRIBED, Settings, definition};
use fleet_worker_support::{Environments, testing};

const TENANT: &str = "t1";
const ENV: &str = "env-1";
const PERIOD: Duration = Duration::from_secs(300);

struct World {
    h: Harness,
    sandbox: Arc<Sandbox>,
    worker: Option<RunningWorker>,
    desired: tempfile::TempDir,
}

fn scope() -> Scope {
    Scope::new(TENANT, ENV)
}

async fn world() -> World {
    let h = Harness::sqlite(NAME, SUBSCRIBED).await.expect("harness");
    let sandbox = testing::sandbox(&h.clock).await;
    let desired = tempfile::tempdir().expect("tempdir");
    let specs = vec![
        ServiceSpec::new("svc-a", ENV, PlatformKind::ContainerApps, "img:1", 2),
        ServiceSpec::new("svc-b", ENV, PlatformKind::Aks, "img:1", 1),
        ServiceSpec::new("svc-x", "env-2", PlatformKind::Functions, "img:9", 1),
    ];
    fleet_sandbox::write_desired_state(desired.path(), &specs).expect("manifests");
    h.bind_tenant(ENV, TENANT).await.expect("binding");
    h.bind_tenant("env-2", "t2").await.expect("binding");
    for spec in &specs {
        let tenant = if spec.environment_id == ENV {
            TENANT
        } else {
            "t2"
        };
        let scope = Scope::new(tenant, &spec.environment_id);
        testing::running_service(&sandbox, &h.clock, &scope, spec).await;
    }
    h.clock
        .set(fleet_runtime::next_window_start(h.clock.now(), PERIOD));
    World {
        h,
        sandbox,
        worker: None,
        desired,
    }
}

impl World {
    fn start(&mut self, environments: &[&str]) {
        let ports = Ports::new(
            self.sandbox.computes(),
            Arc::new(ManifestDir::new(self.desired.path())),
            Environments::new(environments.iter().copied()),
            Settings::default(),
        );
        let def = definition(&Settings::default()).expect("definition");
        let worker = self
            .h
            .worker(def, testing::config(&self.h, 3), Arc::new(ports));
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

    async fn next_pass(&self) {
        let n = self.stats().timer_runs + 1;
        self.h.clock.advance(PERIOD);
        self.wait_passes(n).await;
    }

    async fn detected(&self) -> Vec<(String, RuntimeDriftDetected)> {
        testing::emitted(&self.h)
            .await
            .into_iter()
            .filter(|e| e.event_type == EventType::RuntimeDriftDetected)
            .filter_map(|e| match e.payload() {
                Ok(Payload::RuntimeDriftDetected(d)) => Some((e.tenant_id.clone(), d)),
                _ => None,
            })
            .collect()
    }

    async fn findings(&self, tenant: &str) -> Vec<RuntimeDriftFinding> {
        self.h
            .store
            .list::<RuntimeDriftFinding>(tenant, None)
            .await
            .expect("findings")
            .into_iter()
            .map(|v| v.record)
            .collect()
    }

    fn drift(&self, d: Drift) {
        self.sandbox.inject_drift(&scope(), d).expect("drift");
    }

    async fn stop(mut self) {
        if let Some(w) = self.worker.take() {
            w.stop(Duration::from_secs(10)).await.expect("worker stops");
        }
    }
}

fn image(service: &str, image: &str) -> Drift {
    Drift::Image {
        service_id: service.into(),
        image: image.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_state_raises_nothing() {
    let mut w = world().await;
    w.start(&[ENV]);
    w.wait_passes(1).await;
    w.next_pass().await;
    assert!(w.findings(TENANT).await.is_empty());
    assert!(w.detected().await.is_empty());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_drift_seen_again_is_merged_and_announced_once_then_resolves() {
    let mut w = world().await;
    w.drift(image("svc-a", "img:rogue"));
    let first_pass = w.h.clock.now();
    w.start(&[ENV]);
    w.wait_passes(1).await;
    w.next_pass().await;
    w.next_pass().await;
    let findings = w.findings(TENANT).await;
    assert_eq!(findings.len(), 1);
    let f = &findings[0];
    assert_eq!(
        (f.kind.as_str(), f.count, f.status),
        ("image", 3, records::FindingStatus::Open)
    );
    assert_eq!(f.first_seen, first_pass);
    assert_eq!(f.last_seen, w.h.clock.now());
    assert_eq!(f.actual, serde_json::json!("img:rogue"));
    let events = w.detected().await;
    assert_eq!(events.len(), 1, "a merged duplicate is not re-announced");
    let e = &events[0].1;
    assert_eq!(
        (e.kind, e.status, e.occurrences),
        (DriftKind::Image, FindingStatus::Open, 1)
    );
    assert_eq!(e.finding_hash, f.finding_hash);
    assert_eq!(e.service_id.as_deref(), Some("svc-a"));

    w.drift(image("svc-a", "img:1"));
    w.next_pass().await;
    let f = &w.findings(TENANT).await[0];
    assert_eq!(f.status, records::FindingStatus::Resolved);
    assert_eq!(f.resolved_at, Some(w.h.clock.now()));
    let events = w.detected().await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].1.status, FindingStatus::Resolved);
    w.next_pass().await;
    assert_eq!(
        w.detected().await.len(),
        2,
        "a resolved finding stays quiet"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_unmanaged_services_are_findings() {
    let mut w = world().await;
    w.drift(Drift::Delete {
        service_id: "svc-b".into(),
    });
    w.drift(Drift::Extra {
        spec: ServiceSpec::new("svc-z", ENV, PlatformKind::ContainerApps, "img:z", 1),
    });
    w.start(&[ENV]);
    w.wait_passes(1).await;
    let mut kinds: Vec<(Option<String>, DriftKind)> = w
        .detected()
        .await
        .into_iter()
        .map(|(_, d)| (d.service_id, d.kind))
        .collect();
    kinds.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kinds,
        vec![
            (Some("svc-b".into()), DriftKind::MissingResource),
            (Some("svc-z".into()), DriftKind::UnmanagedResource),
        ]
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_belong_to_the_tenant_of_their_environment() {
    let mut w = world().await;
    w.sandbox
        .inject_drift(
            &Scope::new("t2", "env-2"),
            Drift::Replicas {
                service_id: "svc-x".into(),
                replicas: 5,
            },
        )
        .expect("drift");
    w.start(&[ENV, "env-2"]);
    w.h.wait_until("t2's finding", Duration::from_secs(20), || async {
        !w.findings("t2").await.is_empty() && !w.detected().await.is_empty()
    })
    .await
    .expect("finding");
    assert!(w.findings(TENANT).await.is_empty());
    let t2 = w.findings("t2").await;
    assert_eq!(t2.len(), 1);
    assert_eq!(t2[0].environment_id, "env-2");
    let events = w.detected().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "t2");
    w.stop().await;
}

fn check(service: &str, at: chrono::DateTime<chrono::Utc>) -> Payload {
    Payload::HealthCheckCompleted(HealthCheckCompleted {
        service_id: service.into(),
        window: Window {
            start: at,
            end: at + chrono::Duration::seconds(30),
        },
        status: HealthStatus::Healthy,
        previous_status: None,
        consecutive_failed_windows: 0,
        probes: vec![],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recheck_their_environment_at_most_once_per_interval() {
    let mut w = world().await;
    w.drift(image("svc-a", "img:rogue"));
    w.start(&[]);
    let now = w.h.clock.now();
    for s in ["svc-a", "svc-b", "svc-a"] {
        w.h.publish(&testing::envelope(check(s, now), TENANT, ENV, now))
            .await
            .expect("publish");
    }
    w.h.wait_until("three handled", Duration::from_secs(20), || async {
        testing::messages_handled(&w.stats()) >= 3 && !w.detected().await.is_empty()
    })
    .await
    .expect("handled");
    assert_eq!(
        w.findings(TENANT).await[0].count,
        1,
        "one pass for three events"
    );
    w.h.clock.advance(Duration::from_secs(60));
    let later = w.h.clock.now();
    w.h.publish(&testing::envelope(
        check("svc-a", later),
        TENANT,
        ENV,
        later,
    ))
    .await
    .expect("publish");
    w.h.wait_until("fourth handled", Duration::from_secs(20), || async {
        testing::messages_handled(&w.stats()) >= 4
    })
    .await
    .expect("handled");
    assert_eq!(
        w.findings(TENANT).await[0].count,
        2,
        "the next interval passes again"
    );
    assert_eq!(w.detected().await.len(), 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_read_failures_are_retried_three_times_then_dead_lettered() {
    let mut w = world().await;
    w.sandbox.set_faults(
        Port::Compute(PlatformKind::ContainerApps),
        FaultPlan {
            fail_next: 1000,
            ..FaultPlan::default()
        },
    );
    w.start(&[]);
    let now = w.h.clock.now();
    w.h.publish(&testing::envelope(check("svc-a", now), TENANT, ENV, now))
        .await
        .expect("publish");
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
    assert!(w.findings(TENANT).await.is_empty());
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desired_state_from_a_pulumi_stack_export_is_compared_too() {
    let mut w = world().await;
    // The stack wants svc-a at img:2 (live runs img:1) and knows nothing of svc-b.
    let export = serde_json::json!({
        "version": 3,
        "deployment": {"resources": [{
            "urn": "urn:pulumi:prod::shop::azure-native:app:ContainerApp::svc-a",
            "type": "azure-native:app:ContainerApp",
            "inputs": {
                "containerAppName": "svc-a",
                "template": {"containers": [{"image": "img:2"}], "scale": {"minReplicas": 2}},
                "tags": {"fleet-environment": ENV}
            },
            "outputs": {}
        }]}
    });
    let path = w.desired.path().join("stack.json");
    std::fs::write(&path, serde_json::to_vec(&export).expect("json")).expect("write export");
    let ports = Ports::new(
        w.sandbox.computes(),
        Arc::new(fleet_cloud::PulumiExport::new(&path, None)),
        Environments::new([ENV]),
        Settings::default(),
    );
    let def = definition(&Settings::default()).expect("definition");
    let worker = w.h.worker(def, testing::config(&w.h, 3), Arc::new(ports));
    w.worker = Some(w.h.start(worker));
    w.wait_passes(1).await;
    let mut got: Vec<(
        Option<String>,
        DriftKind,
        fleet_envelope::payload::DesiredStateSource,
    )> = w
        .detected()
        .await
        .into_iter()
        .map(|(_, d)| (d.service_id, d.kind, d.desired_source))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let pulumi = fleet_envelope::payload::DesiredStateSource::Pulumi;
    assert_eq!(
        got,
        vec![
            (Some("svc-a".into()), DriftKind::Image, pulumi),
            (Some("svc-b".into()), DriftKind::UnmanagedResource, pulumi),
        ]
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_autoscaled_service_above_its_desired_replicas_is_not_drift_but_below_is() {
    let mut w = world().await;
    let policy = records::ScalingPolicy {
        id: "p-svc-a".into(),
        tenant_id: TENANT.into(),
        environment_id: ENV.into(),
        service_id: "svc-a".into(),
        min_replicas: 1,
        max_replicas: 10,
        metric: "requestsPerSecond".into(),
        target: 25.0,
        cooldown_seconds: 300,
        enabled: true,
        last_action: None,
    };
    let mut unit = fleet_store::UnitOfWork::new();
    unit.put(&policy, fleet_store::Expect::Absent)
        .expect("policy");
    w.h.store.commit(unit).await.expect("commit policy");
    // svc-a wants 2 and the scaling-policy worker scaled it out to 5; svc-b (no policy) wants 1.
    w.drift(Drift::Replicas {
        service_id: "svc-a".into(),
        replicas: 5,
    });
    w.drift(Drift::Replicas {
        service_id: "svc-b".into(),
        replicas: 3,
    });
    w.start(&[ENV]);
    w.wait_passes(1).await;
    let open: Vec<String> = w
        .findings(TENANT)
        .await
        .into_iter()
        .filter(|f| f.status == records::FindingStatus::Open)
        .map(|f| f.service_id.unwrap_or_default())
        .collect();
    assert_eq!(
        open,
        vec!["svc-b".to_string()],
        "only the unmanaged service drifted"
    );

    // Below the desired floor is drift even when autoscaled.
    w.drift(Drift::Replicas {
        service_id: "svc-a".into(),
        replicas: 1,
    });
    w.next_pass().await;
    let mut open: Vec<String> = w
        .findings(TENANT)
        .await
        .into_iter()
        .filter(|f| f.status == records::FindingStatus::Open)
        .map(|f| f.service_id.unwrap_or_default())
        .collect();
    open.sort();
    assert_eq!(open, vec!["svc-a".to_string(), "svc-b".to_string()]);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_rollout_in_flight_is_not_drift_until_its_grace_runs_out() {
    let mut w = world().await;
    // svc-a should run cfg-a v2, published a minute ago; it still runs v1 and the sync has not
    // recorded v2 for it. svc-b should run cfg-b v2, which the sync recorded as applied, yet it
    // runs v1: someone changed it back.
    let mut specs = vec![
        ServiceSpec::new("svc-a", ENV, PlatformKind::ContainerApps, "img:1", 2),
        ServiceSpec::new("svc-b", ENV, PlatformKind::Aks, "img:1", 1),
    ];
    for (spec, config) in specs.iter_mut().zip(["cfg-a", "cfg-b"]) {
        spec.configuration_id = Some(config.into());
        spec.config_version = Some(2);
    }
    fleet_sandbox::write_desired_state(w.desired.path(), &specs).expect("manifests");
    let now = w.h.clock.now();
    let mut unit = fleet_store::UnitOfWork::new();
    for (service, config, applied) in [("svc-a", "cfg-a", 1), ("svc-b", "cfg-b", 2)] {
        w.drift(Drift::Config {
            service_id: service.into(),
            configuration_id: Some(config.into()),
            version: Some(1),
        });
        let record = records::RuntimeConfiguration {
            id: config.into(),
            tenant_id: TENANT.into(),
            environment_id: ENV.into(),
            latest_version: 2,
            values: Default::default(),
            service_ids: vec![service.into()],
            applied: [(
                service.to_string(),
                records::AppliedConfiguration {
                    version: applied,
                    applied_at: now,
                },
            )]
            .into(),
            published_at: now - chrono::Duration::minutes(1),
        };
        unit.put(&record, fleet_store::Expect::Absent)
            .expect("configuration");
    }
    w.h.store.commit(unit).await.expect("commit configurations");
    let open = |findings: Vec<RuntimeDriftFinding>| -> Vec<(String, String)> {
        let mut open: Vec<_> = findings
            .into_iter()
            .filter(|f| f.status == records::FindingStatus::Open)
            .map(|f| (f.service_id.unwrap_or_default(), f.kind.to_string()))
            .collect();
        open.sort();
        open
    };

    w.start(&[ENV]);
    w.wait_passes(1).await;
    assert_eq!(
        open(w.findings(TENANT).await),
        vec![("svc-b".to_string(), "configuration".to_string())],
        "svc-a is being rolled out; svc-b went back after its sync"
    );

    // Past the grace period svc-a is still behind: now it is drift.
    let passes = (fleet_worker_drift_detection::CONFIG_ROLLOUT_GRACE.num_seconds() as u64)
        .div_ceil(PERIOD.as_secs());
    for _ in 0..passes {
        w.next_pass().await;
    }
    assert_eq!(
        open(w.findings(TENANT).await),
        vec![
            ("svc-a".to_string(), "configuration".to_string()),
            ("svc-b".to_string(), "configuration".to_string()),
        ]
    );
    w.stop().await;
}
