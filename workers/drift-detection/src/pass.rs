//! One detection pass over an environment, and the triggers that run it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use fleet_cloud::{DesiredSource, DriftItem, DriftKind, ObservedService, Scope, diff};
use fleet_envelope::payload::{
    DesiredStateSource, DriftKind as WireKind, FindingStatus as WireStatus, RuntimeDriftDetected,
};
use fleet_envelope::{Envelope, Payload};
use fleet_runtime::{
    Expect, HandlerContext, HandlerError, HandlerErrorKind, HandlerResult, Outcome, TimerTick,
};
use fleet_store::records::{
    FindingStatus, RuntimeConfiguration, RuntimeDriftFinding, ScalingPolicy,
};
use fleet_store::{StoreExt, Versioned};
use fleet_worker_support::cloud_error;

use crate::Ports;

/// Passes of one environment are serialized: `tenant/environment/drift`.
pub(crate) fn ordering_key(env: &Envelope) -> Option<String> {
    Some(format!("{}/{}/drift", env.tenant_id, env.environment_id))
}

/// Every configured environment, each as its owning tenant. A transient failure retries the
/// window; a broken desired state in one environment (bad manifest) is logged and skipped so
/// the other environments are still checked.
pub async fn on_timer(_tick: &TimerTick, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let scopes = ctx.ports().environments.scopes(ctx.store()).await?;
    let mut done = false;
    for scope in scopes {
        match run_pass(ctx, &scope).await {
            Ok(changed) => done |= changed,
            Err(e) if e.kind() == HandlerErrorKind::Permanent => {
                tracing::error!(error = %e, %scope, "drift pass skipped")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(if done { Outcome::Done } else { Outcome::NoOp })
}

/// A deployment, health or inventory event: re-check its environment, at most once per
/// `event_interval` (the idempotency key is the environment and the interval's start).
pub async fn on_event(env: &Envelope, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let interval = ctx.ports().settings.event_interval;
    let slot = fleet_runtime::window_start(ctx.now(), interval);
    let key = format!("pass/{}/{}", env.environment_id, slot.to_rfc3339());
    if ctx.idempotency_key(&key).await? {
        return Ok(Outcome::NoOp);
    }
    let scope = Scope::new(&env.tenant_id, &env.environment_id);
    run_pass(ctx, &scope).await?;
    // The pass key itself is a write, so the run is never a bare no-op.
    Ok(Outcome::Done)
}

/// Diffs desired and live state of `scope` and merges the result into its findings; `true`
/// when a finding changed.
pub async fn run_pass(
    ctx: &mut HandlerContext<Ports>,
    scope: &Scope,
) -> Result<bool, HandlerError> {
    let ports = ctx.ports_arc();
    let desired = ports
        .desired
        .read(scope)
        .await
        .map_err(|e| cloud_error(&format!("reading the desired state of {scope}"), e))?;
    let observed = ports
        .computes
        .list_all(scope)
        .await
        .map_err(|e| cloud_error(&format!("listing services of {scope}"), e))?;
    let autoscaled: HashSet<String> = ctx
        .store()
        .list::<ScalingPolicy>(&scope.tenant_id, Some(&scope.environment_id))
        .await?
        .into_iter()
        .filter(|v| v.record.enabled)
        .map(|v| v.record.service_id)
        .collect();
    let configurations: HashMap<String, RuntimeConfiguration> = ctx
        .store()
        .list::<RuntimeConfiguration>(&scope.tenant_id, Some(&scope.environment_id))
        .await?
        .into_iter()
        .map(|v| (v.record.id.clone(), v.record))
        .collect();
    let items = without_autoscaled_replicas(diff(&desired, &observed), &autoscaled);
    let items = without_configuration_rollouts(items, &configurations, ctx.now());
    let live: HashMap<&str, &ObservedService> =
        observed.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut findings: HashMap<String, Versioned<RuntimeDriftFinding>> = ctx
        .store()
        .list::<RuntimeDriftFinding>(&scope.tenant_id, Some(&scope.environment_id))
        .await?
        .into_iter()
        .map(|v| (v.record.id.clone(), v))
        .collect();
    let now = ctx.now();
    let source = wire_source(ports.desired.source());
    let mut changed = false;
    for item in &items {
        let resource = live.get(item.service_id.as_str()).map_or_else(
            || format!("{}/{}", scope.environment_id, item.service_id),
            |o| o.resource_id.clone(),
        );
        match findings.remove(&item.finding_hash) {
            Some(v) if v.record.status == FindingStatus::Open => {
                let mut f = v.record;
                f.count += 1;
                // A timer pass runs at its window's time, which can be earlier than an event
                // pass that already saw the finding: lastSeen never moves backwards.
                f.last_seen = f.last_seen.max(now);
                ctx.put(&f, Expect::Version(v.version))?;
            }
            Some(v) => {
                let mut f = v.record;
                f.count += 1;
                f.last_seen = f.last_seen.max(now);
                f.status = FindingStatus::Open;
                f.resolved_at = None;
                ctx.put(&f, Expect::Version(v.version))?;
                announce(ctx, scope, &f, item.kind, source)?;
            }
            None => {
                let f = new_finding(scope, item, resource, now);
                ctx.put(&f, Expect::Absent)?;
                announce(ctx, scope, &f, item.kind, source)?;
            }
        }
        changed = true;
    }
    for (_, v) in findings {
        if v.record.status != FindingStatus::Open {
            continue;
        }
        let mut f = v.record;
        f.status = FindingStatus::Resolved;
        f.resolved_at = Some(now);
        ctx.put(&f, Expect::Version(v.version))?;
        let kind = cloud_kind(&f.kind);
        announce(ctx, scope, &f, kind, source)?;
        changed = true;
    }
    Ok(changed)
}

fn new_finding(
    scope: &Scope,
    item: &DriftItem,
    resource: String,
    now: DateTime<Utc>,
) -> RuntimeDriftFinding {
    RuntimeDriftFinding {
        id: item.finding_hash.clone(),
        tenant_id: scope.tenant_id.clone(),
        environment_id: scope.environment_id.clone(),
        finding_hash: item.finding_hash.clone(),
        service_id: Some(item.service_id.clone()),
        resource,
        kind: item.kind.as_str().to_owned(),
        desired: item.desired.clone(),
        actual: item.actual.clone(),
        count: 1,
        first_seen: now,
        last_seen: now,
        status: FindingStatus::Open,
        resolved_at: None,
    }
}

fn announce(
    ctx: &mut HandlerContext<Ports>,
    scope: &Scope,
    f: &RuntimeDriftFinding,
    kind: DriftKind,
    source: DesiredStateSource,
) -> Result<(), HandlerError> {
    let event = RuntimeDriftDetected {
        finding_id: f.id.clone(),
        finding_hash: f.finding_hash.clone(),
        service_id: f.service_id.clone(),
        resource_id: f.resource.clone(),
        kind: wire_kind(kind),
        desired: f.desired.clone(),
        actual: f.actual.clone(),
        desired_source: source,
        status: match f.status {
            FindingStatus::Open => WireStatus::Open,
            FindingStatus::Resolved => WireStatus::Resolved,
        },
        occurrences: u32::try_from(f.count).unwrap_or(u32::MAX).max(1),
        first_seen_at: f.first_seen,
        last_seen_at: f.last_seen,
    };
    let subject = f.service_id.as_ref().map(|s| format!("services/{s}"));
    ctx.emit_for(
        &scope.tenant_id,
        &scope.environment_id,
        Payload::RuntimeDriftDetected(event),
        subject,
    )?;
    Ok(())
}

fn wire_source(s: DesiredSource) -> DesiredStateSource {
    match s {
        DesiredSource::Git => DesiredStateSource::Git,
        DesiredSource::Pulumi => DesiredStateSource::Pulumi,
    }
}

fn wire_kind(k: DriftKind) -> WireKind {
    match k {
        DriftKind::Missing => WireKind::MissingResource,
        DriftKind::Extra => WireKind::UnmanagedResource,
        DriftKind::Platform => WireKind::Setting,
        DriftKind::Image => WireKind::Image,
        DriftKind::Replicas => WireKind::Replicas,
        DriftKind::Configuration => WireKind::Configuration,
    }
}

fn cloud_kind(stored: &str) -> DriftKind {
    match stored {
        "missing" => DriftKind::Missing,
        "extra" => DriftKind::Extra,
        "platform" => DriftKind::Platform,
        "image" => DriftKind::Image,
        "replicas" => DriftKind::Replicas,
        _ => DriftKind::Configuration,
    }
}

/// Drops replica drift of services a scaling policy manages when they run at least the desired
/// count: for them the desired replicas are the floor the scaling-policy worker builds on, so
/// reporting its scale-outs as drift would make remediation undo them. Fewer replicas than
/// desired is still drift.
/// How long after a configuration version is published a service targeted by it may still run
/// an older version without that being drift: the configuration-sync worker is applying it,
/// retries included. A service still behind after this is drift.
pub const CONFIG_ROLLOUT_GRACE: chrono::Duration = chrono::Duration::minutes(15);

/// Drops configuration differences that are a rollout in flight: the desired version is the
/// configuration's latest, published less than [`CONFIG_ROLLOUT_GRACE`] ago, the service is one
/// of its targets, and neither the service nor the sync record has reached it yet. A service
/// the sync recorded as done but running something else is drift at once.
fn without_configuration_rollouts(
    items: Vec<DriftItem>,
    configurations: &HashMap<String, RuntimeConfiguration>,
    now: DateTime<Utc>,
) -> Vec<DriftItem> {
    items
        .into_iter()
        .filter(|item| {
            if item.kind != DriftKind::Configuration {
                return true;
            }
            let (Some(id), Some(version)) = (
                item.desired["configurationId"].as_str(),
                item.desired["version"].as_u64(),
            ) else {
                return true;
            };
            let Some(config) = configurations.get(id) else {
                return true;
            };
            let live_behind = item.actual["configurationId"]
                .as_str()
                .is_none_or(|a| a == id)
                && item.actual["version"].as_u64().is_none_or(|v| v < version);
            let sync_behind = config
                .applied
                .get(&item.service_id)
                .is_none_or(|a| a.version < version);
            let rolling_out = config.latest_version == version
                && config.service_ids.contains(&item.service_id)
                && live_behind
                && sync_behind
                && now - config.published_at < CONFIG_ROLLOUT_GRACE;
            !rolling_out
        })
        .collect()
}

fn without_autoscaled_replicas(
    items: Vec<DriftItem>,
    autoscaled: &HashSet<String>,
) -> Vec<DriftItem> {
    items
        .into_iter()
        .filter(|item| {
            if item.kind != DriftKind::Replicas || !autoscaled.contains(&item.service_id) {
                return true;
            }
            match (item.desired.as_u64(), item.actual.as_u64()) {
                (Some(desired), Some(actual)) => actual < desired,
                _ => true,
            }
        })
        .collect()
}
