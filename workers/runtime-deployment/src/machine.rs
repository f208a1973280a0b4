//! The deployment state machine:
//! `Requested → Applying(apply) → Verifying(verify: the readiness gate) → Succeeded`, or on a
//! failed step `Failed → RolledBack` (step `rollback`) when a previous revision exists.
//!
//! Progress is checkpointed after every transition straight to the store, with the idempotency
//! key `deploymentId/step` committed together with the step's success. A retried or redelivered
//! trigger therefore resumes where the last attempt stopped and never re-applies a completed
//! step. The final state and the `RuntimeDeploymentCompleted` event commit atomically with the
//! trigger's inbox row through the handler context.

use chrono::{DateTime, Utc};
use fleet_cloud::{Compute, ObservedService, ProvisioningState, Scope, ServiceSpec};
use fleet_envelope::Payload;
use fleet_envelope::payload::{DeploymentOutcome, DeploymentReason, RuntimeDeploymentCompleted};
use fleet_runtime::{Expect, HandlerContext, HandlerError};
use fleet_store::UnitOfWork;
use fleet_store::records::{
    DeploymentState, DeploymentStep, RuntimeDeployment, RuntimeService, StepStatus,
};
use fleet_worker_support::convert::{to_stored, to_wire};
use fleet_worker_support::{await_operation, cloud_error, is_not_found, later};
use uuid::Uuid;

use crate::Ports;
use crate::spec::{observed_record, rollback_spec, to_record};

/// Step that applies the new spec.
pub const APPLY: &str = "apply";
/// Step that waits for the new revision to be ready (the readiness gate).
pub const VERIFY: &str = "verify";
/// Step that restores the previous revision.
pub const ROLLBACK: &str = "rollback";

/// One rollout to run.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// The deployment id (with a step name, the idempotency key).
    pub deployment_id: String,
    /// What to apply.
    pub spec: ServiceSpec,
    /// Why (carried into the record's audit fields).
    pub reason: DeploymentReason,
    /// The triggering event.
    pub trigger: Uuid,
}

/// Runs `rollout` to its end. Returns `false` when the deployment had already finished (a no-op:
/// nothing written, nothing emitted).
pub async fn run(
    ctx: &mut HandlerContext<Ports>,
    scope: &Scope,
    rollout: Rollout,
) -> Result<bool, HandlerError> {
    let compute = ctx
        .ports()
        .computes
        .get(rollout.spec.platform)
        .map_err(|e| cloud_error(&format!("service {}", rollout.spec.id), e))?;
    let mut t = match ctx.get::<RuntimeDeployment>(&rollout.deployment_id).await? {
        Some(v) if finished(&v.record) => return Ok(false),
        Some(v) => Tracker {
            record: v.record,
            version: Some(v.version),
        },
        None => {
            let previous = match compute.get(scope, &rollout.spec.id).await {
                Ok(o) => Some(observed_record(&o)),
                Err(e) if is_not_found(&e) => None,
                Err(e) => return Err(cloud_error(&format!("reading {}", rollout.spec.id), e)),
            };
            tracing::info!(
                deployment_id = %rollout.deployment_id,
                service_id = %rollout.spec.id,
                reason = ?rollout.reason,
                "rollout requested"
            );
            let mut t = Tracker {
                record: new_record(scope, &rollout, previous, ctx.now()),
                version: None,
            };
            t.checkpoint(ctx, None).await?;
            t
        }
    };
    t.record.attempts += 1;
    let spec = &rollout.spec;
    let mut failure: Option<(&'static str, String)> = None;
    let mut revision: Option<String> = None;

    if !t.done(ctx, APPLY).await? {
        t.begin(APPLY, DeploymentState::Applying, ctx.now());
        t.checkpoint(ctx, None).await?;
        let what = format!("applying {} to {}", spec.image, spec.id);
        let op = compute
            .apply(scope, spec)
            .await
            .map_err(|e| cloud_error(&what, e))?;
        let deadline = later(ctx.now(), ctx.ports().settings.operation_timeout);
        let op =
            await_operation(ctx.clock().as_ref(), compute.as_ref(), scope, op, deadline).await?;
        if op.succeeded() {
            t.end(APPLY, StepStatus::Succeeded, None, ctx.clock().now());
            t.checkpoint(ctx, Some(APPLY)).await?;
        } else {
            let error = op
                .error
                .unwrap_or_else(|| format!("operation {} ended {:?}", op.id, op.status));
            t.end(
                APPLY,
                StepStatus::Failed,
                Some(error.clone()),
                ctx.clock().now(),
            );
            failure = Some((APPLY, error));
        }
    }

    if failure.is_none() && !t.done(ctx, VERIFY).await? {
        t.begin(VERIFY, DeploymentState::Verifying, ctx.clock().now());
        t.checkpoint(ctx, None).await?;
        match readiness_gate(ctx, compute.as_ref(), scope, spec).await? {
            Ok(o) => {
                revision = Some(o.generation.to_string());
                t.end(VERIFY, StepStatus::Succeeded, None, ctx.clock().now());
                t.checkpoint(ctx, Some(VERIFY)).await?;
            }
            Err(error) => {
                t.end(
                    VERIFY,
                    StepStatus::Failed,
                    Some(error.clone()),
                    ctx.clock().now(),
                );
                failure = Some((VERIFY, error));
            }
        }
    }

    let outcome = match &failure {
        None => {
            t.record.state = DeploymentState::Succeeded;
            DeploymentOutcome::Succeeded
        }
        Some((_, error)) => {
            t.record.state = DeploymentState::Failed;
            t.record.failure_reason = Some(error.clone());
            t.record.current_step = None;
            t.checkpoint(ctx, None).await?;
            roll_back(ctx, &mut t, compute.as_ref(), scope, spec).await?
        }
    };
    if revision.is_none() && outcome != DeploymentOutcome::Failed {
        revision = compute
            .get(scope, &spec.id)
            .await
            .ok()
            .map(|o| o.generation.to_string());
    }
    finish(ctx, t, &rollout, outcome, failure, revision).await?;
    Ok(true)
}

/// Restores the previous revision when there is one; `Failed` when there is none or the
/// restore itself fails.
async fn roll_back(
    ctx: &mut HandlerContext<Ports>,
    t: &mut Tracker,
    compute: &dyn Compute,
    scope: &Scope,
    spec: &ServiceSpec,
) -> Result<DeploymentOutcome, HandlerError> {
    let Some(previous) = t.record.previous_spec.clone() else {
        return Ok(DeploymentOutcome::Failed);
    };
    if t.done(ctx, ROLLBACK).await? {
        return Ok(DeploymentOutcome::RolledBack);
    }
    t.begin(ROLLBACK, DeploymentState::Failed, ctx.clock().now());
    t.checkpoint(ctx, None).await?;
    let target = rollback_spec(&previous, spec);
    let op = compute
        .apply(scope, &target)
        .await
        .map_err(|e| cloud_error(&format!("rolling {} back", spec.id), e))?;
    let deadline = later(ctx.clock().now(), ctx.ports().settings.operation_timeout);
    let op = await_operation(ctx.clock().as_ref(), compute, scope, op, deadline).await?;
    if op.succeeded() {
        t.end(ROLLBACK, StepStatus::Succeeded, None, ctx.clock().now());
        t.record.state = DeploymentState::RolledBack;
        t.checkpoint(ctx, Some(ROLLBACK)).await?;
        Ok(DeploymentOutcome::RolledBack)
    } else {
        let error = op
            .error
            .unwrap_or_else(|| "rollback did not finish".to_owned());
        t.end(ROLLBACK, StepStatus::Failed, Some(error), ctx.clock().now());
        Ok(DeploymentOutcome::Failed)
    }
}

/// Waits until the control plane runs `spec` with every replica ready. `Ok(Err(reason))` when
/// the revision fails or the gate times out.
async fn readiness_gate(
    ctx: &HandlerContext<Ports>,
    compute: &dyn Compute,
    scope: &Scope,
    spec: &ServiceSpec,
) -> Result<Result<ObservedService, String>, HandlerError> {
    let settings = ctx.ports().settings;
    let clock = ctx.clock().as_ref();
    let deadline = later(clock.now(), settings.readiness_timeout);
    loop {
        let o = compute
            .get(scope, &spec.id)
            .await
            .map_err(|e| cloud_error(&format!("checking readiness of {}", spec.id), e))?;
        if o.provisioning_state == ProvisioningState::Failed {
            return Ok(Err(format!(
                "revision {} failed to provision",
                o.generation
            )));
        }
        let ready = o.image == spec.image
            && o.provisioning_state == ProvisioningState::Succeeded
            && o.ready_replicas >= spec.replicas;
        if ready {
            return Ok(Ok(o));
        }
        let now = clock.now();
        if now >= deadline {
            return Ok(Err(format!(
                "readiness gate timed out after {} s: {} of {} replicas ready",
                settings.readiness_timeout.as_secs(),
                o.ready_replicas,
                spec.replicas
            )));
        }
        clock
            .sleep_until(later(now, settings.readiness_poll).min(deadline))
            .await;
    }
}

/// Writes the final state, the service's new desired state (on success) and the event.
async fn finish(
    ctx: &mut HandlerContext<Ports>,
    mut t: Tracker,
    rollout: &Rollout,
    outcome: DeploymentOutcome,
    failure: Option<(&'static str, String)>,
    revision: Option<String>,
) -> Result<(), HandlerError> {
    let now = ctx.clock().now();
    t.record.completed_at = Some(now);
    t.record.updated_at = now;
    t.record.current_step = None;
    ctx.put(&t.record, t.expect())?;
    let spec = &rollout.spec;
    if outcome == DeploymentOutcome::Succeeded
        && let Some(mut svc) = ctx.get::<RuntimeService>(&spec.id).await?
    {
        let r = &mut svc.record;
        r.image = spec.image.clone();
        r.replicas = spec.replicas;
        r.config_version = spec.config_version.or(r.config_version);
        r.platform = to_stored(spec.platform);
        r.updated_at = now;
        ctx.put(&svc.record, Expect::Version(svc.version))?;
    }
    let (failed_step, error) = match failure {
        Some((step, error)) => (Some(step.to_owned()), Some(error)),
        None => (None, None),
    };
    let completed = RuntimeDeploymentCompleted {
        deployment_id: rollout.deployment_id.clone(),
        service_id: spec.id.clone(),
        platform: to_wire(spec.platform),
        image: spec.image.clone(),
        replicas: spec.replicas,
        outcome,
        revision,
        failed_step,
        error,
        started_at: t.record.requested_at,
        completed_at: now,
    };
    ctx.emit(
        Payload::RuntimeDeploymentCompleted(completed),
        Some(format!("services/{}", spec.id)),
    )?;
    Ok(())
}

fn finished(r: &RuntimeDeployment) -> bool {
    r.state.is_terminal() || (r.state == DeploymentState::Failed && r.completed_at.is_some())
}

fn new_record(
    scope: &Scope,
    rollout: &Rollout,
    previous: Option<fleet_store::records::DeploymentSpec>,
    now: DateTime<Utc>,
) -> RuntimeDeployment {
    let step = |name: &str| DeploymentStep {
        name: name.to_owned(),
        status: StepStatus::Pending,
        attempts: 0,
        started_at: None,
        completed_at: None,
        error: None,
    };
    RuntimeDeployment {
        id: rollout.deployment_id.clone(),
        tenant_id: scope.tenant_id.clone(),
        environment_id: scope.environment_id.clone(),
        service_id: rollout.spec.id.clone(),
        state: DeploymentState::Requested,
        current_step: None,
        steps: vec![step(APPLY), step(VERIFY)],
        spec: to_record(&rollout.spec, Default::default()),
        previous_spec: previous,
        attempts: 0,
        requested_by_event: Some(rollout.trigger),
        failure_reason: None,
        requested_at: now,
        updated_at: now,
        completed_at: None,
    }
}

/// The deployment record and the version last written, for checkpoints.
struct Tracker {
    record: RuntimeDeployment,
    // None until the first write.
    version: Option<i64>,
}

impl Tracker {
    fn expect(&self) -> Expect {
        self.version.map_or(Expect::Absent, Expect::Version)
    }

    fn key(&self, step: &str) -> String {
        format!("{}/{step}", self.record.id)
    }

    /// Whether `step` already completed (its idempotency key exists).
    async fn done(&self, ctx: &HandlerContext<Ports>, step: &str) -> Result<bool, HandlerError> {
        Ok(ctx
            .store()
            .idempotency_key(ctx.worker(), &self.key(step))
            .await?
            .is_some())
    }

    fn index(&mut self, step: &str) -> usize {
        if let Some(i) = self.record.steps.iter().position(|s| s.name == step) {
            return i;
        }
        self.record.steps.push(DeploymentStep {
            name: step.to_owned(),
            status: StepStatus::Pending,
            attempts: 0,
            started_at: None,
            completed_at: None,
            error: None,
        });
        self.record.steps.len() - 1
    }

    fn begin(&mut self, step: &str, state: DeploymentState, now: DateTime<Utc>) {
        let i = self.index(step);
        self.record.state = state;
        self.record.current_step = Some(i);
        self.record.updated_at = now;
        let s = &mut self.record.steps[i];
        s.status = StepStatus::Running;
        s.attempts += 1;
        s.started_at.get_or_insert(now);
        s.error = None;
    }

    fn end(&mut self, step: &str, status: StepStatus, error: Option<String>, now: DateTime<Utc>) {
        let i = self.index(step);
        self.record.updated_at = now;
        let s = &mut self.record.steps[i];
        s.status = status;
        s.completed_at = Some(now);
        s.error = error;
    }

    /// Writes the record now (and, with `step`, that step's idempotency key in the same
    /// transaction), outside the handler's unit of work, so progress survives a retry.
    async fn checkpoint(
        &mut self,
        ctx: &HandlerContext<Ports>,
        step: Option<&str>,
    ) -> Result<(), HandlerError> {
        let mut unit = UnitOfWork::new();
        unit.put(&self.record, self.expect())?;
        if let Some(step) = step {
            let outcome = serde_json::json!({ "deploymentId": self.record.id, "step": step });
            unit.add_idempotency_key(ctx.worker(), &self.key(step), outcome, ctx.clock().now());
        }
        ctx.store().commit(unit).await?;
        self.version = Some(self.version.map_or(1, |v| v + 1));
        Ok(())
    }
}
