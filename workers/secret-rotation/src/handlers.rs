//! The rotation schedule and the `SecretRotationRequested` handler.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_cloud::Scope;
use fleet_envelope::payload::{RotationReason, SecretRotated, SecretRotationFailed};
use fleet_envelope::{Envelope, Payload};
use fleet_runtime::{Expect, HandlerContext, HandlerError, HandlerResult, Outcome, TimerTick};
use fleet_store::records::SecretBinding;
use fleet_store::{StoreExt, UnitOfWork};
use fleet_worker_support::{bad_payload, cloud_error, unexpected};

use crate::Ports;
use crate::rotate::{record_rotation, rotate, vault_name};

/// Work on one binding is serialized: `tenant/environment/secrets/<binding>`.
pub(crate) fn ordering_key(env: &Envelope) -> Option<String> {
    match env.payload().ok()? {
        Payload::SecretRotationRequested(p) => Some(format!(
            "{}/{}/secrets/{}",
            env.tenant_id, env.environment_id, p.secret_binding_id
        )),
        _ => None,
    }
}

/// The schedule: in every configured environment (as its owning tenant), disable previous
/// versions whose grace is over and rotate the bindings that are due. A binding that fails is
/// counted and retried on the next pass; the others go on.
pub async fn on_timer(_tick: &TimerTick, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let scopes = ctx.ports().environments.scopes(ctx.store()).await?;
    let now = ctx.now();
    let mut done = false;
    for scope in scopes {
        let bindings = ctx
            .store()
            .list::<SecretBinding>(&scope.tenant_id, Some(&scope.environment_id))
            .await?;
        for v in bindings {
            let version = v.version;
            let mut b = v.record;
            let mut changed = disable_expired(ctx, &scope, &mut b, now).await;
            if b.next_rotation_at.is_none_or(|at| at <= now) {
                let grace = ctx.ports().settings.grace;
                let first_failure = b.next_rotation_at.unwrap_or(now);
                match rotate(ctx, &scope, &b).await {
                    Ok(r) => {
                        let key = format!("{}/{}", b.id, r.new_version);
                        if !ctx.idempotency_key(&key).await? {
                            let disable_at = record_rotation(&mut b, &r.new_version, grace, now);
                            let previous = b.previous_version.clone();
                            announce(ctx, &scope, &b, previous, r.service_ids, disable_at)?;
                        }
                    }
                    Err(e) => {
                        fail(ctx, &scope, &mut b, &e, first_failure, now)?;
                    }
                }
                changed = true;
            }
            if changed {
                ctx.put(&b, Expect::Version(version))?;
                done = true;
            }
        }
    }
    Ok(if done { Outcome::Done } else { Outcome::NoOp })
}

/// `SecretRotationRequested`: rotate one binding now.
pub async fn on_requested(env: &Envelope, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let p = match env.payload().map_err(bad_payload)? {
        Payload::SecretRotationRequested(p) => p,
        other => return Err(unexpected(other.event_type())),
    };
    let scope = Scope::new(&env.tenant_id, &env.environment_id);
    let Some(v) = ctx.get::<SecretBinding>(&p.secret_binding_id).await? else {
        return Err(HandlerError::permanent(format!(
            "secret binding {:?} does not exist in environment {:?}",
            p.secret_binding_id, env.environment_id
        )));
    };
    let version = v.version;
    let mut b = v.record;
    let now = ctx.now();
    let compromised = p.reason == RotationReason::Compromised;
    let grace = if compromised {
        Duration::ZERO
    } else {
        p.grace_period_seconds
            .map_or(ctx.ports().settings.grace, |s| {
                Duration::from_secs(u64::from(s))
            })
    };
    match rotate(ctx, &scope, &b).await {
        Ok(r) => {
            let key = format!("{}/{}", b.id, r.new_version);
            if ctx.idempotency_key(&key).await? {
                return Ok(Outcome::NoOp);
            }
            let disable_at = record_rotation(&mut b, &r.new_version, grace, now);
            let previous = b.previous_version.clone();
            if compromised {
                // A leaked value must stop working now, not after a grace.
                disable_expired(ctx, &scope, &mut b, now).await;
            }
            ctx.put(&b, Expect::Version(version))?;
            announce(ctx, &scope, &b, previous, r.service_ids, disable_at)?;
            Ok(Outcome::Done)
        }
        Err(e) => {
            let alerted = fail(ctx, &scope, &mut b, &e, env.occurred_at, now)?;
            if alerted {
                // The alert is raised; the schedule keeps trying, so the request completes.
                ctx.put(&b, Expect::Version(version))?;
                return Ok(Outcome::Done);
            }
            // Count the failure now (the run's own writes are dropped with the error), then let
            // the runtime retry.
            let mut unit = UnitOfWork::new();
            unit.put(&b, Expect::Version(version))?;
            ctx.store().commit(unit).await?;
            Err(e)
        }
    }
}

/// Disables the previous version when its grace is over; `true` when the binding changed.
/// Vault failures leave it for the next pass.
async fn disable_expired(
    ctx: &HandlerContext<Ports>,
    scope: &Scope,
    b: &mut SecretBinding,
    now: DateTime<Utc>,
) -> bool {
    let (Some(previous), Some(at)) = (b.previous_version.clone(), b.disable_previous_after) else {
        return false;
    };
    if at > now {
        return false;
    }
    match ctx
        .ports()
        .vault
        .disable_version(scope, &b.secret_name, &previous)
        .await
    {
        Ok(()) => {
            b.previous_version = None;
            b.disable_previous_after = None;
            true
        }
        Err(e) => {
            let e = cloud_error(&format!("disabling {} of {}", previous, b.secret_name), e);
            tracing::warn!(error = %e, binding = %b.id, "previous version stays enabled until the next pass");
            false
        }
    }
}

/// Counts a failure on the binding; emits the alert each time the count of failures in a row
/// reaches a multiple of the threshold (so a binding that keeps failing on the schedule alerts
/// again every `alert_after` failures instead of every pass). Returns whether it alerted.
fn fail(
    ctx: &mut HandlerContext<Ports>,
    scope: &Scope,
    b: &mut SecretBinding,
    e: &HandlerError,
    first_failure: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, HandlerError> {
    b.consecutive_failures += 1;
    b.last_failure = Some(e.message().to_owned());
    tracing::warn!(binding = %b.id, failures = b.consecutive_failures, error = %e, "rotation failed");
    let every = ctx.ports().settings.alert_after.max(1);
    if !b.consecutive_failures.is_multiple_of(every) {
        return Ok(false);
    }
    let alert = SecretRotationFailed {
        secret_binding_id: b.id.clone(),
        vault_secret_name: Some(b.secret_name.clone()),
        attempts: b.consecutive_failures,
        last_error: e.message().to_owned(),
        first_failure_at: first_failure.min(now),
        last_failure_at: now,
    };
    ctx.emit_for(
        &scope.tenant_id,
        &scope.environment_id,
        Payload::SecretRotationFailed(alert),
        Some(format!("secrets/{}", b.id)),
    )?;
    Ok(true)
}

fn announce(
    ctx: &mut HandlerContext<Ports>,
    scope: &Scope,
    b: &SecretBinding,
    previous_version: Option<String>,
    service_ids: Vec<String>,
    disable_at: Option<DateTime<Utc>>,
) -> Result<(), HandlerError> {
    let Some(new_version) = b.current_version.clone() else {
        return Ok(());
    };
    let rotated = SecretRotated {
        secret_binding_id: b.id.clone(),
        vault_name: vault_name(&b.vault_uri),
        vault_secret_name: b.secret_name.clone(),
        new_version,
        previous_version,
        service_ids,
        previous_version_disabled_at: disable_at,
    };
    ctx.emit_for(
        &scope.tenant_id,
        &scope.environment_id,
        Payload::SecretRotated(rotated),
        Some(format!("secrets/{}", b.id)),
    )?;
    Ok(())
}
