//! The demo scenario: drives every path of the event-flow diagram on the seeded environment.
//!
//! Each step sends the trigger a person or a scheduler would (a deploy command, a configuration
//! publish, a rotation request) or changes the world (load, an out-of-band drift), then waits
//! until the chain it starts has been settled by every running worker that consumes its events.
//! A step whose worker is not in this build is reported as skipped, never as passed.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_bus::BusSender;
use fleet_cloud::{PlatformKind, Scope, ServiceSpec};
use fleet_envelope::{Envelope, EventType, Payload};
use fleet_sandbox::{Drift, LoadProfile, Sandbox, write_desired_state};
use serde::Serialize;
use serde_json::{Value, json};

use crate::clock::FleetClock;
use crate::error::{LocalError, LocalErrorKind};
use crate::observe::{Flow, FlowEvent, Outcome};
use crate::seed::{CONFIGURATION, ENVIRONMENT, SECRET_BINDING, TENANT};
use crate::topology::TOPIC;

/// How long one step may take (real time) before the scenario reports it failed.
const STEP_TIMEOUT: Duration = Duration::from_secs(40);
// How often a step's condition is re-evaluated.
const POLL: Duration = Duration::from_millis(50);

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    /// The chain ran and settled.
    Done,
    /// A worker the step needs is not in this build.
    Skipped,
    /// The chain did not settle in time.
    Failed,
}

/// One step of the scenario, as reported in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepReport {
    /// Short name, e.g. `deploy`.
    pub name: String,
    /// How it ended.
    pub status: StepStatus,
    /// The correlationId of the chain(s) it drove.
    pub correlation_ids: Vec<String>,
    /// What happened, in one line.
    pub detail: String,
}

/// What the driver acts through.
pub struct Driver {
    /// Publishes triggers as `fleetctl`.
    pub sender: Box<dyn BusSender>,
    /// The observed flow.
    pub flow: Arc<Flow>,
    /// The sandbox cloud.
    pub sandbox: Arc<Sandbox>,
    /// The fleet clock (envelope timestamps).
    pub clock: FleetClock,
    /// Desired-state manifests directory.
    pub desired_dir: PathBuf,
    /// The desired specs, kept in step with the manifests.
    pub specs: Vec<ServiceSpec>,
    /// Event types each running worker consumes.
    pub routes: BTreeMap<String, Vec<String>>,
}

impl Driver {
    fn runs(&self, worker: &str) -> bool {
        self.routes.contains_key(worker)
    }

    /// Publishes an envelope built from `data` as a command from outside the fleet.
    pub async fn publish(
        &self,
        event_type: EventType,
        data: Value,
        subject: &str,
        correlation: &str,
    ) -> Result<Envelope, LocalError> {
        let payload = Payload::from_data(event_type, 1, &data).map_err(|e| {
            LocalError::new(
                LocalErrorKind::Scenario,
                format!("demo {event_type} payload: {e}"),
            )
        })?;
        let now = self.clock.now();
        let trace = format!("{:032x}", rand::random::<u128>() | 1);
        let env = Envelope::new(
            payload,
            TENANT,
            ENVIRONMENT,
            "/fleetctl/scenario/demo",
            correlation,
            trace,
            now,
        )
        .with_subject(subject);
        let msg = fleet_runtime::into_bus_message(fleet_runtime::outbox_message(
            &env, "fleetctl", TOPIC, now,
        ))
        .map_err(|e| LocalError::component(format!("publishing {event_type}"), e))?;
        self.sender
            .send(msg)
            .await
            .map_err(|e| LocalError::component(format!("publishing {event_type}"), e))?;
        Ok(env)
    }

    /// Whether every event of chain `correlation` has been settled by every running worker
    /// that consumes its type (a retry in flight does not count as settled).
    pub fn chain_settled(&self, correlation: &str) -> bool {
        let settled: HashSet<(String, uuid::Uuid)> = self
            .flow
            .events()
            .into_iter()
            .filter_map(|e| match e {
                FlowEvent::Settled {
                    worker,
                    message,
                    outcome,
                    ..
                } if outcome != Outcome::RetryScheduled => message.event_id.map(|id| (worker, id)),
                _ => None,
            })
            .collect();
        self.flow
            .published()
            .iter()
            .filter(|e| e.correlation_id == correlation)
            .all(|e| {
                self.routes
                    .iter()
                    .filter(|(_, types)| types.iter().any(|t| t == e.event_type.as_str()))
                    .all(|(w, _)| settled.contains(&(w.clone(), e.event_id)))
            })
    }

    /// The first published envelope matching `pred`.
    pub fn find(&self, pred: impl Fn(&Envelope) -> bool) -> Option<Envelope> {
        self.flow.published().into_iter().find(|e| pred(e))
    }

    async fn wait_for<T>(&self, mut cond: impl FnMut() -> Option<T>) -> Option<T> {
        let start = Instant::now();
        loop {
            if let Some(v) = cond() {
                return Some(v);
            }
            if start.elapsed() > STEP_TIMEOUT {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for an event of `event_type` matching `pred`, then for its chain to settle.
    async fn chain(
        &self,
        event_type: EventType,
        pred: impl Fn(&Envelope) -> bool,
    ) -> Result<Envelope, String> {
        let found = self
            .wait_for(|| self.find(|e| e.event_type == event_type && pred(e)))
            .await
            .ok_or_else(|| format!("no {event_type} within {}s", STEP_TIMEOUT.as_secs()))?;
        self.wait_for(|| self.chain_settled(&found.correlation_id).then_some(()))
            .await
            .ok_or_else(|| {
                format!(
                    "the chain of correlationId {} did not settle within {}s",
                    found.correlation_id,
                    STEP_TIMEOUT.as_secs()
                )
            })?;
        Ok(found)
    }

    fn desire(&mut self, spec: ServiceSpec) -> Result<(), LocalError> {
        write_desired_state(&self.desired_dir, std::slice::from_ref(&spec))
            .map_err(|e| LocalError::component("writing the desired state", e))?;
        self.specs.retain(|s| s.id != spec.id);
        self.specs.push(spec);
        Ok(())
    }
}

fn report(name: &str, result: Result<Vec<String>, String>, done: &str) -> StepReport {
    match result {
        Ok(ids) => StepReport {
            name: name.to_owned(),
            status: StepStatus::Done,
            correlation_ids: ids,
            detail: done.to_owned(),
        },
        Err(why) => StepReport {
            name: name.to_owned(),
            status: StepStatus::Failed,
            correlation_ids: Vec::new(),
            detail: why,
        },
    }
}

fn skipped(name: &str, worker: &str) -> StepReport {
    StepReport {
        name: name.to_owned(),
        status: StepStatus::Skipped,
        correlation_ids: Vec::new(),
        detail: format!("the {worker} worker is not in this build"),
    }
}

/// Runs every step in order and reports each.
pub async fn run_demo(driver: &mut Driver) -> Result<Vec<StepReport>, LocalError> {
    Ok(vec![
        deploy(driver).await?,
        health_and_scaling(driver).await?,
        configuration(driver).await?,
        secret_rotation(driver).await?,
        drift(driver).await?,
    ])
}

/// Deploy command → RuntimeDeploymentRequested → rollout → RuntimeDeploymentCompleted →
/// inventory and drift detection.
async fn deploy(d: &mut Driver) -> Result<StepReport, LocalError> {
    if !d.runs("runtime-deployment") {
        return Ok(skipped("deploy", "runtime-deployment"));
    }
    let image = "fleetdemo.azurecr.io/payments:1.0.0";
    let mut spec = ServiceSpec::new(
        "payments",
        ENVIRONMENT,
        PlatformKind::ContainerApps,
        image,
        2,
    );
    spec.labels.insert("app".into(), "payments".into());
    // GitOps order: the manifest changes first, so drift detection agrees with the rollout.
    d.desire(spec)?;
    let correlation = "demo-deploy";
    d.publish(
        EventType::RuntimeDeploymentRequested,
        json!({"deploymentId": "demo-payments-1", "serviceId": "payments", "platform": "containerapps",
               "image": image, "replicas": 2, "reason": "manual", "requestedBy": "fleetctl up --scenario demo"}),
        "services/payments",
        correlation,
    )
    .await?;
    let r = d
        .chain(EventType::RuntimeDeploymentCompleted, |e| {
            e.correlation_id == correlation
        })
        .await
        .map(|_| vec![correlation.to_owned()]);
    Ok(report(
        "deploy",
        r,
        "payments rolled out on Container Apps; inventory and drift detection saw it",
    ))
}

/// Timer → runtime-health → HealthCheckCompleted → scaling-policy → ScalingPolicyApplied →
/// inventory. Load on `cart` is raised so its policy has something to do.
async fn health_and_scaling(d: &mut Driver) -> Result<StepReport, LocalError> {
    if !d.runs("runtime-health") {
        return Ok(skipped("health-and-scaling", "runtime-health"));
    }
    d.sandbox
        .set_load(
            &Scope::new(TENANT, ENVIRONMENT),
            "cart",
            LoadProfile::Constant { rps: 400.0 },
        )
        .map_err(|e| LocalError::component("raising the load on cart", e))?;
    let health = d.chain(EventType::HealthCheckCompleted, |_| true).await;
    let r = match health {
        Err(why) => Err(why),
        Ok(h) if !d.runs("scaling-policy") => Ok(vec![h.correlation_id]),
        Ok(h) => d
            .chain(EventType::ScalingPolicyApplied, |e| {
                e.subject.as_deref() == Some("services/cart") || e.data["serviceId"] == "cart"
            })
            .await
            .map(|s| vec![h.correlation_id, s.correlation_id]),
    };
    Ok(report(
        "health-and-scaling",
        r,
        "a health window ran on the timer; cart scaled out under load",
    ))
}

/// ConfigurationPublished → configuration-sync → ConfigurationSynced → redeploy.
async fn configuration(d: &mut Driver) -> Result<StepReport, LocalError> {
    if !d.runs("configuration-sync") {
        return Ok(skipped("configuration", "configuration-sync"));
    }
    if let Some(mut spec) = d.specs.iter().find(|s| s.id == "orders-api").cloned() {
        spec.config_version = Some(2);
        d.desire(spec)?;
    }
    let correlation = "demo-configuration";
    d.publish(
        EventType::ConfigurationPublished,
        json!({"configurationId": CONFIGURATION, "version": 2, "serviceIds": ["orders-api"],
               "values": {"LOG_LEVEL": "debug"}}),
        &format!("configurations/{CONFIGURATION}"),
        correlation,
    )
    .await?;
    let r = d
        .chain(EventType::ConfigurationSynced, |e| {
            e.correlation_id == correlation
        })
        .await
        .map(|_| vec![correlation.to_owned()]);
    Ok(report(
        "configuration",
        r,
        "orders-config v2 synced to orders-api, which was redeployed",
    ))
}

/// SecretRotationRequested → secret-rotation → SecretRotated → redeploy.
async fn secret_rotation(d: &mut Driver) -> Result<StepReport, LocalError> {
    if !d.runs("secret-rotation") {
        return Ok(skipped("secret-rotation", "secret-rotation"));
    }
    let correlation = "demo-secret-rotation";
    d.publish(
        EventType::SecretRotationRequested,
        json!({"secretBindingId": SECRET_BINDING, "reason": "manual",
               "requestedBy": "fleetctl up --scenario demo", "gracePeriodSeconds": 300}),
        &format!("secrets/{SECRET_BINDING}"),
        correlation,
    )
    .await?;
    let r = d
        .chain(EventType::SecretRotated, |e| {
            e.correlation_id == correlation
        })
        .await
        .map(|_| vec![correlation.to_owned()]);
    Ok(report(
        "secret-rotation",
        r,
        "the db secret got a new version; bound services were redeployed",
    ))
}

/// An out-of-band image change → drift-detection → RuntimeDriftDetected → remediation.
async fn drift(d: &mut Driver) -> Result<StepReport, LocalError> {
    if !d.runs("drift-detection") {
        return Ok(skipped("drift", "drift-detection"));
    }
    d.sandbox
        .inject_drift(
            &Scope::new(TENANT, ENVIRONMENT),
            Drift::Image {
                service_id: "search".into(),
                image: "fleetdemo.azurecr.io/search:3.9.1-hotfix".into(),
            },
        )
        .map_err(|e| LocalError::component("injecting drift", e))?;
    let r = d
        .chain(EventType::RuntimeDriftDetected, |e| {
            e.data["serviceId"] == "search" && e.data["status"] == "open"
        })
        .await
        .map(|f| vec![f.correlation_id]);
    Ok(report(
        "drift",
        r,
        "the hand-edited image of search was found and rolled back to the desired one",
    ))
}
