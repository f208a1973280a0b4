//! The probe timer and the per-service dependency-event evaluation.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use fleet_cloud::Scope;
use fleet_envelope::{Envelope, Payload};
use fleet_runtime::{Expect, HandlerContext, HandlerError, HandlerResult, Outcome, TimerTick};
use fleet_store::records::HealthCheckResult;
use fleet_store::{StoreExt, Versioned};
use fleet_worker_support::convert::from_wire;
use fleet_worker_support::{bad_payload, cloud_error, is_not_found, unexpected};

use crate::Ports;
use crate::probe::{ServiceProbes, probe_services};
use crate::verdict::evaluate;

/// Events for one service are serialized: `tenant/environment/services/<id>`.
pub(crate) fn ordering_key(env: &Envelope) -> Option<String> {
    let service = match env.payload().ok()? {
        Payload::RuntimeDeploymentCompleted(p) => p.service_id,
        Payload::RuntimeInventoryUpdated(p) => p.service_id,
        _ => return None,
    };
    Some(format!(
        "{}/{}/services/{service}",
        env.tenant_id, env.environment_id
    ))
}

/// One window over every configured environment, each as its owning tenant.
pub async fn on_timer(tick: &TimerTick, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let scopes = ctx.ports().environments.scopes(ctx.store()).await?;
    let mut done = false;
    for scope in scopes {
        let observed = ctx
            .ports()
            .computes
            .list_all(&scope)
            .await
            .map_err(|e| cloud_error(&format!("listing services of {scope}"), e))?;
        let ports = ctx.ports_arc();
        let probes =
            probe_services(&ports.prober, &observed, ports.settings.probe_concurrency).await;
        let previous: HashMap<String, Versioned<HealthCheckResult>> = ctx
            .store()
            .list::<HealthCheckResult>(&scope.tenant_id, Some(&scope.environment_id))
            .await?
            .into_iter()
            .map(|v| (v.record.id.clone(), v))
            .collect();
        for p in &probes {
            let prev = previous.get(&p.service_id);
            done |= record(ctx, &scope, p, prev, tick.window_start, tick.window_end)?;
        }
    }
    Ok(if done { Outcome::Done } else { Outcome::NoOp })
}

/// A deployment finished or the inventory changed: evaluate that service in the current window.
pub async fn on_event(env: &Envelope, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let (service_id, platform) = match env.payload().map_err(bad_payload)? {
        Payload::RuntimeDeploymentCompleted(p) => (p.service_id, p.platform),
        Payload::RuntimeInventoryUpdated(p) => (p.service_id, p.platform),
        other => return Err(unexpected(other.event_type())),
    };
    let scope = Scope::new(&env.tenant_id, &env.environment_id);
    let period = ctx.ports().settings.period;
    let start = fleet_runtime::window_start(ctx.now(), period);
    let end = fleet_runtime::next_window_start(start, period);
    let previous = ctx.get::<HealthCheckResult>(&service_id).await?;
    if previous
        .as_ref()
        .is_some_and(|p| p.record.window_start >= start)
    {
        return Ok(Outcome::NoOp);
    }
    let compute = ctx
        .ports()
        .computes
        .get(from_wire(platform))
        .map_err(|e| cloud_error(&format!("service {service_id}"), e))?;
    let observed = match compute.get(&scope, &service_id).await {
        Ok(o) => o,
        Err(e) if is_not_found(&e) => return Ok(Outcome::NoOp),
        Err(e) => return Err(cloud_error(&format!("reading {service_id}"), e)),
    };
    let ports = ctx.ports_arc();
    let probes = probe_services(
        &ports.prober,
        std::slice::from_ref(&observed),
        ports.settings.probe_concurrency,
    )
    .await;
    let mut done = false;
    for p in &probes {
        done |= record(ctx, &scope, p, previous.as_ref(), start, end)?;
    }
    Ok(if done { Outcome::Done } else { Outcome::NoOp })
}

/// Keeps the evaluation of `window_start` unless a result for this or a later window exists
/// (latest wins). The record's `(serviceId, windowStart)` is the idempotency key: one row per
/// service instead of one key row per service and window.
fn record(
    ctx: &mut HandlerContext<Ports>,
    scope: &Scope,
    probes: &ServiceProbes,
    previous: Option<&Versioned<HealthCheckResult>>,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    if previous.is_some_and(|p| p.record.window_start >= window_start) {
        return Ok(false);
    }
    let settings = ctx.ports().settings;
    let eval = evaluate(
        scope,
        probes,
        previous.map(|p| &p.record),
        window_start,
        window_end,
        ctx.now(),
        &settings,
    );
    let expect = previous.map_or(Expect::Absent, |p| Expect::Version(p.version));
    ctx.put(&eval.record, expect)?;
    ctx.emit_for(
        &scope.tenant_id,
        &scope.environment_id,
        Payload::HealthCheckCompleted(eval.event),
        Some(format!("services/{}", probes.service_id)),
    )?;
    Ok(true)
}
