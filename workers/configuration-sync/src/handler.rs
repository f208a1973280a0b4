//! The `ConfigurationPublished` handler.

use std::collections::BTreeMap;

use fleet_cloud::{OperationStatus, Scope};
use fleet_envelope::payload::{ConfigurationPublished, ConfigurationSynced, SyncOutcome};
use fleet_envelope::{Envelope, Payload};
use fleet_runtime::{Expect, HandlerContext, HandlerResult, Outcome};
use fleet_store::records::{AppliedConfiguration, RuntimeConfiguration, RuntimeService};
use fleet_worker_support::convert::to_cloud;
use fleet_worker_support::{await_operation, bad_payload, cloud_error, later, unexpected};

use crate::Ports;

/// The value name a by-reference configuration is applied under (the workload resolves it).
pub const REFERENCE_VALUE: &str = "FLEET_CONFIGURATION_REF";

/// Applies the published version to each target service that does not have it yet.
pub async fn on_published(env: &Envelope, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let p = match env.payload().map_err(bad_payload)? {
        Payload::ConfigurationPublished(p) => p,
        other => return Err(unexpected(other.event_type())),
    };
    let scope = Scope::new(&env.tenant_id, &env.environment_id);
    let existing = ctx.get::<RuntimeConfiguration>(&p.configuration_id).await?;
    let (mut record, expect) = match existing {
        Some(v) => (v.record, Expect::Version(v.version)),
        None => (new_record(env, &p), Expect::Absent),
    };
    let mut changed = expect == Expect::Absent;
    if p.version > record.latest_version {
        record.latest_version = p.version;
        record.values = values_json(&p);
        record.service_ids = p.service_ids.clone();
        record.published_at = env.occurred_at;
        changed = true;
    }
    let values = values_map(&p);
    for service_id in &p.service_ids {
        let previous = record.applied.get(service_id).map(|a| a.version);
        // The same version again is a no-op; an older one must not roll the service back.
        if previous.is_some_and(|v| v >= p.version) {
            continue;
        }
        let key = format!("{}/{}/v{}", p.configuration_id, service_id, p.version);
        if ctx.idempotency_key(&key).await? {
            continue;
        }
        changed = true;
        let synced = apply(ctx, &scope, &p, service_id, &values, previous).await?;
        if synced.outcome != SyncOutcome::Failed {
            record.applied.insert(
                service_id.clone(),
                AppliedConfiguration {
                    version: p.version,
                    applied_at: ctx.now(),
                },
            );
        }
        ctx.emit(
            Payload::ConfigurationSynced(synced),
            Some(format!("services/{service_id}")),
        )?;
    }
    if !changed {
        return Ok(Outcome::NoOp);
    }
    ctx.put(&record, expect)?;
    Ok(Outcome::Done)
}

/// Applies one version to one service and says what happened. Transient control-plane failures
/// are errors (the message is retried); a change the control plane rejects is a `failed` sync.
async fn apply(
    ctx: &HandlerContext<Ports>,
    scope: &Scope,
    p: &ConfigurationPublished,
    service_id: &str,
    values: &BTreeMap<String, String>,
    previous: Option<u64>,
) -> Result<ConfigurationSynced, fleet_runtime::HandlerError> {
    let mut synced = ConfigurationSynced {
        configuration_id: p.configuration_id.clone(),
        version: p.version,
        service_id: service_id.to_owned(),
        outcome: SyncOutcome::Failed,
        previous_version: previous,
        restart_required: false,
        error: None,
    };
    let Some(service) = ctx.get::<RuntimeService>(service_id).await? else {
        synced.error = Some(format!(
            "service {service_id:?} is not in the inventory of environment {:?}",
            scope.environment_id
        ));
        return Ok(synced);
    };
    let platform = to_cloud(service.record.platform);
    let ports = ctx.ports();
    let compute = ports
        .computes
        .get(platform)
        .map_err(|e| cloud_error(&format!("service {service_id}"), e))?;
    let what = format!(
        "applying configuration {} v{} to {service_id}",
        p.configuration_id, p.version
    );
    let op = compute
        .apply_config(scope, service_id, &p.configuration_id, p.version, values)
        .await
        .map_err(|e| cloud_error(&what, e))?;
    let deadline = later(ctx.now(), ports.settings.operation_timeout);
    let op = await_operation(ctx.clock().as_ref(), compute.as_ref(), scope, op, deadline).await?;
    match op.status {
        OperationStatus::Succeeded => {
            synced.outcome = if op.changed {
                SyncOutcome::Applied
            } else {
                SyncOutcome::Unchanged
            };
            // A new configuration version only reaches the processes through a new revision.
            synced.restart_required = op.changed;
        }
        // A newer change to the service (a scale, a rollout) superseded this one: nothing
        // rejected the configuration, so apply it again rather than report a failed sync.
        OperationStatus::Canceled => {
            return Err(fleet_runtime::HandlerError::transient(format!(
                "{what}: operation {} was superseded by a newer change",
                op.id
            )));
        }
        _ => {
            synced.error = Some(
                op.error
                    .unwrap_or_else(|| format!("operation {} ended {:?}", op.id, op.status)),
            );
        }
    }
    Ok(synced)
}

fn new_record(env: &Envelope, p: &ConfigurationPublished) -> RuntimeConfiguration {
    RuntimeConfiguration {
        id: p.configuration_id.clone(),
        tenant_id: env.tenant_id.clone(),
        environment_id: env.environment_id.clone(),
        latest_version: p.version,
        values: values_json(p),
        service_ids: p.service_ids.clone(),
        applied: BTreeMap::new(),
        published_at: env.occurred_at,
    }
}

fn values_map(p: &ConfigurationPublished) -> BTreeMap<String, String> {
    match (&p.values, &p.reference) {
        (Some(values), _) => values.clone(),
        (None, Some(reference)) => {
            BTreeMap::from([(REFERENCE_VALUE.to_owned(), reference.clone())])
        }
        (None, None) => BTreeMap::new(),
    }
}

fn values_json(p: &ConfigurationPublished) -> serde_json::Map<String, serde_json::Value> {
    values_map(p)
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect()
}
