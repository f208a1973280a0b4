//! The evaluation timer and the `HealthCheckCompleted` handler.

use std::collections::HashSet;

use fleet_cloud::Scope;
use fleet_envelope::payload::{MetricReading, ScalingPolicyApplied};
use fleet_envelope::{Envelope, Payload};
use fleet_runtime::{Expect, HandlerContext, HandlerError, HandlerResult, Outcome, TimerTick};
use fleet_store::records::{
    DeploymentState, RuntimeDeployment, RuntimeService, ScalingAction, ScalingPolicy,
};
use fleet_store::{StoreExt, Versioned};
use fleet_worker_support::convert::to_cloud;
use fleet_worker_support::{bad_payload, cloud_error, unexpected};

use crate::Ports;
use crate::decide::{Decision, azure_metric, decide};

/// Events for one service are serialized: `tenant/environment/services/<id>`.
pub(crate) fn ordering_key(env: &Envelope) -> Option<String> {
    match env.payload().ok()? {
        Payload::HealthCheckCompleted(p) => Some(format!(
            "{}/{}/services/{}",
            env.tenant_id, env.environment_id, p.service_id
        )),
        _ => None,
    }
}

/// One pass over every configured environment, each as its owning tenant. A policy that cannot
/// be evaluated (a control plane or metrics failure) is skipped until the next pass, so one
/// service's trouble does not hold back the others.
pub async fn on_timer(_tick: &TimerTick, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let scopes = ctx.ports().environments.scopes(ctx.store()).await?;
    let mut done = false;
    for scope in scopes {
        let policies = ctx
            .store()
            .list::<ScalingPolicy>(&scope.tenant_id, Some(&scope.environment_id))
            .await?;
        let rolling = rolling_out(ctx, &scope).await?;
        for policy in policies {
            match evaluate(ctx, &scope, policy, &rolling).await {
                Ok(acted) => done |= acted,
                Err(e) => tracing::warn!(error = %e, %scope, "scaling policy skipped this pass"),
            }
        }
    }
    Ok(if done { Outcome::Done } else { Outcome::NoOp })
}

/// `HealthCheckCompleted`: evaluate the policies of that service now.
pub async fn on_health_check(env: &Envelope, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let service_id = match env.payload().map_err(bad_payload)? {
        Payload::HealthCheckCompleted(p) => p.service_id,
        other => return Err(unexpected(other.event_type())),
    };
    let scope = Scope::new(&env.tenant_id, &env.environment_id);
    let policies = ctx
        .store()
        .list::<ScalingPolicy>(&scope.tenant_id, Some(&scope.environment_id))
        .await?;
    let rolling = rolling_out(ctx, &scope).await?;
    let mut done = false;
    for policy in policies
        .into_iter()
        .filter(|p| p.record.service_id == service_id)
    {
        done |= evaluate(ctx, &scope, policy, &rolling).await?;
    }
    Ok(if done { Outcome::Done } else { Outcome::NoOp })
}

/// Services of `scope` with a rollout in `Applying` or `Verifying`.
async fn rolling_out(
    ctx: &HandlerContext<Ports>,
    scope: &Scope,
) -> Result<HashSet<String>, HandlerError> {
    Ok(ctx
        .store()
        .list::<RuntimeDeployment>(&scope.tenant_id, Some(&scope.environment_id))
        .await?
        .into_iter()
        .filter(|d| {
            matches!(
                d.record.state,
                DeploymentState::Applying | DeploymentState::Verifying
            )
        })
        .map(|d| d.record.service_id)
        .collect())
}

/// Evaluates one policy and acts on it; `true` when it scaled the service.
async fn evaluate(
    ctx: &mut HandlerContext<Ports>,
    scope: &Scope,
    policy: Versioned<ScalingPolicy>,
    rolling: &HashSet<String>,
) -> Result<bool, HandlerError> {
    let p = &policy.record;
    if !p.enabled {
        return Ok(false);
    }
    let Some(service) = ctx
        .store()
        .get::<RuntimeService>(&scope.tenant_id, &p.service_id)
        .await?
    else {
        return Ok(false);
    };
    let platform = to_cloud(service.record.platform);
    let now = ctx.now();
    let decision = decide(
        ctx.ports(),
        scope,
        p,
        platform,
        rolling.contains(&p.service_id),
        now,
    )
    .await
    .map_err(|e| cloud_error(&format!("evaluating policy {}", p.id), e))?;
    let (from, to, value) = match decision {
        Decision::Scale { from, to, value } => (from, to, value),
        Decision::AtTarget => return Ok(false),
        Decision::Hold(why) => {
            tracing::debug!(policy = %p.id, service = %p.service_id, reason = %why, "holding");
            return Ok(false);
        }
    };
    let since = p
        .last_action
        .as_ref()
        .map_or_else(|| "never".to_owned(), |a| a.at.to_rfc3339());
    let key = format!("{}/{to}/after/{since}", p.service_id);
    if ctx.idempotency_key(&key).await? {
        return Ok(false);
    }
    let compute = ctx
        .ports()
        .computes
        .get(platform)
        .map_err(|e| cloud_error(&format!("service {}", p.service_id), e))?;
    compute
        .scale(scope, &p.service_id, to)
        .await
        .map_err(|e| cloud_error(&format!("scaling {} to {to}", p.service_id), e))?;
    let metric = azure_metric(&p.metric);
    let direction = if to > from { "above" } else { "below" };
    let reason = format!("{metric} {value:.1} {direction} target {:.1}", p.target);
    let mut updated = p.clone();
    updated.last_action = Some(ScalingAction {
        at: now,
        from_replicas: from,
        to_replicas: to,
        metric_value: Some(value),
        reason: reason.clone(),
    });
    ctx.put(&updated, Expect::Version(policy.version))?;
    let cooldown = chrono::Duration::seconds(i64::try_from(p.cooldown_seconds).unwrap_or(0));
    let applied = ScalingPolicyApplied {
        service_id: p.service_id.clone(),
        policy_id: p.id.clone(),
        from_replicas: from,
        to_replicas: to,
        reason,
        metric: Some(MetricReading {
            name: metric,
            value,
            threshold: p.target,
        }),
        cooldown_until: Some(now + cooldown),
    };
    ctx.emit_for(
        &scope.tenant_id,
        &scope.environment_id,
        Payload::ScalingPolicyApplied(applied),
        Some(format!("services/{}", p.service_id)),
    )?;
    Ok(true)
}
