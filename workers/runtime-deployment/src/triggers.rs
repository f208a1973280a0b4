//! The four triggers, each turned into rollouts of the state machine.

use fleet_cloud::{Scope, ServiceSpec};
use fleet_envelope::payload::{DeploymentReason, DriftKind, FindingStatus, SyncOutcome};
use fleet_envelope::{Envelope, Payload};
use fleet_runtime::{HandlerContext, HandlerError, HandlerResult, Outcome};
use fleet_store::records::{RuntimeService, SecretBinding};
use fleet_worker_support::convert::{from_wire, to_cloud};
use fleet_worker_support::{bad_payload, cloud_error, is_not_found, unexpected};
use serde_json::Value;

use crate::Ports;
use crate::machine::{self, Rollout};
use crate::spec::{RESTART_LABEL, deployment_id, observed_spec, record_spec};

/// Serializes work per service: `tenant/environment/services/<id>` when the trigger names one
/// service, `tenant/environment/secrets/<binding>` for a rotation (which touches several).
pub fn ordering_key(env: &Envelope) -> Option<String> {
    let entity = match env.payload().ok()? {
        Payload::RuntimeDeploymentRequested(p) => format!("services/{}", p.service_id),
        Payload::ConfigurationSynced(p) => format!("services/{}", p.service_id),
        Payload::RuntimeDriftDetected(p) => format!("services/{}", p.service_id?),
        Payload::SecretRotated(p) => format!("secrets/{}", p.secret_binding_id),
        _ => return None,
    };
    Some(format!("{}/{}/{entity}", env.tenant_id, env.environment_id))
}

fn scope(env: &Envelope) -> Scope {
    Scope::new(&env.tenant_id, &env.environment_id)
}

fn outcome(ran: bool) -> Outcome {
    if ran { Outcome::Done } else { Outcome::NoOp }
}

/// `RuntimeDeploymentRequested`: roll the requested spec out.
pub async fn on_requested(env: &Envelope, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let p = match env.payload().map_err(bad_payload)? {
        Payload::RuntimeDeploymentRequested(p) => p,
        other => return Err(unexpected(other.event_type())),
    };
    let mut spec = ServiceSpec::new(
        &p.service_id,
        &env.environment_id,
        from_wire(p.platform),
        &p.image,
        p.replicas,
    );
    spec.configuration_id = p.configuration_id.clone();
    spec.config_version = p.configuration_version;
    for binding_id in &p.secret_bindings {
        let binding = ctx.get::<SecretBinding>(binding_id).await?.ok_or_else(|| {
            HandlerError::permanent(format!(
                "secret binding {binding_id:?} does not exist in environment {:?}",
                env.environment_id
            ))
        })?;
        spec.secret_bindings
            .insert(binding_id.clone(), binding.record.secret_name);
    }
    let rollout = Rollout {
        deployment_id: p.deployment_id,
        spec,
        reason: p.reason,
        trigger: env.event_id,
    };
    Ok(outcome(machine::run(ctx, &scope(env), rollout).await?))
}

/// `ConfigurationSynced`: a configuration that needs a new revision redeploys the service.
pub async fn on_configuration_synced(
    env: &Envelope,
    ctx: &mut HandlerContext<Ports>,
) -> HandlerResult {
    let p = match env.payload().map_err(bad_payload)? {
        Payload::ConfigurationSynced(p) => p,
        other => return Err(unexpected(other.event_type())),
    };
    if p.outcome != SyncOutcome::Applied || !p.restart_required {
        return Ok(Outcome::NoOp);
    }
    let version = p.version.to_string();
    let id = deployment_id(
        "config",
        &[
            &env.tenant_id,
            &env.environment_id,
            &p.service_id,
            &p.configuration_id,
            &version,
        ],
    );
    let Some(mut spec) = current_spec(ctx, &scope(env), &p.service_id).await? else {
        return Ok(Outcome::NoOp);
    };
    spec.configuration_id = Some(p.configuration_id.clone());
    spec.config_version = Some(p.version);
    redeploy(ctx, env, id, spec, DeploymentReason::ConfigurationSynced).await
}

/// `SecretRotated`: every service bound to the secret gets a new revision.
pub async fn on_secret_rotated(env: &Envelope, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let p = match env.payload().map_err(bad_payload)? {
        Payload::SecretRotated(p) => p,
        other => return Err(unexpected(other.event_type())),
    };
    let mut ran = false;
    for service_id in &p.service_ids {
        let id = deployment_id(
            "secret",
            &[
                &env.tenant_id,
                &env.environment_id,
                &p.secret_binding_id,
                &p.new_version,
                service_id,
            ],
        );
        let Some(spec) = current_spec(ctx, &scope(env), service_id).await? else {
            continue;
        };
        ran |=
            redeploy(ctx, env, id, spec, DeploymentReason::SecretRotated).await? == Outcome::Done;
    }
    Ok(outcome(ran))
}

/// `RuntimeDriftDetected`: an open finding on what a rollout controls (image, replicas,
/// configuration, a missing service) re-applies the desired value. Unmanaged resources and other
/// settings are left to people; resolved findings need nothing.
pub async fn on_drift_detected(env: &Envelope, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let p = match env.payload().map_err(bad_payload)? {
        Payload::RuntimeDriftDetected(p) => p,
        other => return Err(unexpected(other.event_type())),
    };
    let Some(service_id) = p.service_id.clone() else {
        return Ok(Outcome::NoOp);
    };
    if p.status != FindingStatus::Open {
        return Ok(Outcome::NoOp);
    }
    let id = deployment_id(
        "drift",
        &[&env.tenant_id, &env.environment_id, &p.finding_hash],
    );
    let scope = scope(env);
    let spec = match p.kind {
        DriftKind::MissingResource => missing_spec(ctx, &scope, &service_id, &p.desired).await?,
        DriftKind::Image | DriftKind::Replicas | DriftKind::Configuration => {
            current_spec(ctx, &scope, &service_id)
                .await?
                .map(|s| overlay(s, p.kind, &p.desired))
        }
        DriftKind::Setting | DriftKind::UnmanagedResource => None,
    };
    let Some(spec) = spec else {
        return Ok(Outcome::NoOp);
    };
    redeploy(ctx, env, id, spec, DeploymentReason::DriftRemediation).await
}

async fn redeploy(
    ctx: &mut HandlerContext<Ports>,
    env: &Envelope,
    deployment_id: String,
    mut spec: ServiceSpec,
    reason: DeploymentReason,
) -> HandlerResult {
    spec.labels
        .insert(RESTART_LABEL.to_owned(), deployment_id.clone());
    let rollout = Rollout {
        deployment_id,
        spec,
        reason,
        trigger: env.event_id,
    };
    Ok(outcome(machine::run(ctx, &scope(env), rollout).await?))
}

/// What the service runs now (configuration and secrets included), with the inventory record's
/// desired image and replicas; `None` when the service is not in the inventory.
async fn current_spec(
    ctx: &HandlerContext<Ports>,
    scope: &Scope,
    service_id: &str,
) -> Result<Option<ServiceSpec>, HandlerError> {
    let Some(record) = ctx.get::<RuntimeService>(service_id).await? else {
        tracing::warn!(service_id, "service is not in the inventory; no redeploy");
        return Ok(None);
    };
    let record = record.record;
    let compute = ctx
        .ports()
        .computes
        .get(to_cloud(record.platform))
        .map_err(|e| cloud_error(&format!("service {service_id}"), e))?;
    let mut spec = match compute.get(scope, service_id).await {
        Ok(o) => observed_spec(&o),
        Err(e) if is_not_found(&e) => record_spec(&record),
        Err(e) => return Err(cloud_error(&format!("reading {service_id}"), e)),
    };
    spec.image = record.image.clone();
    spec.replicas = record.replicas;
    Ok(Some(spec))
}

/// The spec of a service that should exist but does not: the finding's desired summary, or the
/// inventory record.
async fn missing_spec(
    ctx: &HandlerContext<Ports>,
    scope: &Scope,
    service_id: &str,
    desired: &Value,
) -> Result<Option<ServiceSpec>, HandlerError> {
    let platform = desired
        .get("platform")
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let image = desired.get("image").and_then(Value::as_str);
    let replicas = desired
        .get("replicas")
        .and_then(Value::as_u64)
        .and_then(|r| u32::try_from(r).ok());
    if let (Some(platform), Some(image), Some(replicas)) = (platform, image, replicas) {
        return Ok(Some(ServiceSpec::new(
            service_id,
            &scope.environment_id,
            platform,
            image,
            replicas,
        )));
    }
    Ok(ctx
        .get::<RuntimeService>(service_id)
        .await?
        .map(|r| record_spec(&r.record)))
}

/// `spec` with the finding's desired value put back.
fn overlay(mut spec: ServiceSpec, kind: DriftKind, desired: &Value) -> ServiceSpec {
    match kind {
        DriftKind::Image => {
            if let Some(image) = desired.as_str() {
                spec.image = image.to_owned();
            }
        }
        DriftKind::Replicas => {
            if let Some(r) = desired.as_u64().and_then(|r| u32::try_from(r).ok()) {
                spec.replicas = r;
            }
        }
        DriftKind::Configuration => {
            if let Some(id) = desired.get("configurationId").and_then(Value::as_str) {
                spec.configuration_id = Some(id.to_owned());
            }
            if let Some(v) = desired.get("version").and_then(Value::as_u64) {
                spec.config_version = Some(v);
            }
        }
        _ => {}
    }
    spec
}
