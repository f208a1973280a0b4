//! The timer pass over every environment and the per-service event pass.

use fleet_cloud::{ObservedService, PlatformKind, Scope};
use fleet_envelope::{Envelope, Payload};
use fleet_runtime::{HandlerContext, HandlerError, HandlerResult, Outcome, TimerTick};
use fleet_store::StoreExt;
use fleet_store::records::RuntimeService;
use fleet_worker_support::convert::{from_wire, to_cloud};
use fleet_worker_support::{bad_payload, cloud_error, is_not_found, unexpected};

use crate::Ports;
use crate::reconcile::{Change, reconcile};

/// Events for one service are serialized: `tenant/environment/services/<id>`.
pub(crate) fn ordering_key(env: &Envelope) -> Option<String> {
    let service = match env.payload().ok()? {
        Payload::RuntimeDeploymentCompleted(p) => p.service_id,
        Payload::ScalingPolicyApplied(p) => p.service_id,
        _ => return None,
    };
    Some(format!(
        "{}/{}/services/{service}",
        env.tenant_id, env.environment_id
    ))
}

/// One pass over every configured environment, each as its owning tenant.
pub async fn on_timer(_tick: &TimerTick, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let scopes = ctx.ports().environments.scopes(ctx.store()).await?;
    let mut changed = false;
    for scope in scopes {
        let observed = ctx
            .ports()
            .computes
            .list_all(&scope)
            .await
            .map_err(|e| cloud_error(&format!("listing services of {scope}"), e))?;
        let records = ctx
            .store()
            .list::<RuntimeService>(&scope.tenant_id, Some(&scope.environment_id))
            .await?;
        let changes = reconcile(&scope, &records, &observed, ctx.now());
        changed |= !changes.is_empty();
        write(ctx, &scope, changes)?;
    }
    Ok(if changed {
        Outcome::Done
    } else {
        Outcome::NoOp
    })
}

/// A deployment or scale event: converge the one service it names.
pub async fn on_event(env: &Envelope, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let (service_id, platform) = match env.payload().map_err(bad_payload)? {
        Payload::RuntimeDeploymentCompleted(p) => (p.service_id, Some(from_wire(p.platform))),
        Payload::ScalingPolicyApplied(p) => (p.service_id, None),
        other => return Err(unexpected(other.event_type())),
    };
    let scope = Scope::new(&env.tenant_id, &env.environment_id);
    let record = ctx.get::<RuntimeService>(&service_id).await?;
    let platforms: Vec<PlatformKind> = match (platform, &record) {
        (Some(p), _) => vec![p],
        (None, Some(r)) => vec![to_cloud(r.record.platform)],
        (None, None) => ctx.ports().computes.platforms().collect(),
    };
    let observed = observe(ctx, &scope, &service_id, &platforms).await?;
    let records: Vec<_> = record.into_iter().collect();
    let observed: Vec<_> = observed.into_iter().collect();
    let changes = reconcile(&scope, &records, &observed, ctx.now());
    if changes.is_empty() {
        return Ok(Outcome::NoOp);
    }
    write(ctx, &scope, changes)?;
    Ok(Outcome::Done)
}

/// The service as the first platform that knows it reports it, or `None`.
async fn observe(
    ctx: &HandlerContext<Ports>,
    scope: &Scope,
    service_id: &str,
    platforms: &[PlatformKind],
) -> Result<Option<ObservedService>, HandlerError> {
    for platform in platforms {
        let compute = ctx
            .ports()
            .computes
            .get(*platform)
            .map_err(|e| cloud_error(&format!("service {service_id}"), e))?;
        match compute.get(scope, service_id).await {
            Ok(o) => return Ok(Some(o)),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(cloud_error(&format!("reading {service_id}"), e)),
        }
    }
    Ok(None)
}

fn write(
    ctx: &mut HandlerContext<Ports>,
    scope: &Scope,
    changes: Vec<Change>,
) -> Result<(), HandlerError> {
    for c in changes {
        ctx.put(&c.record, c.expect)?;
        let subject = Some(format!("services/{}", c.record.id));
        ctx.emit_for(
            &scope.tenant_id,
            &scope.environment_id,
            Payload::RuntimeInventoryUpdated(c.event),
            subject,
        )?;
    }
    Ok(())
}
