//! The behaviour every [`Compute`] and [`Vault`] adapter must show, as one async suite: the sandbox runs it in
//! its tests and an Azure adapter runs it against its emulator, so both keep the promises the
//! workers rely on (idempotent desired state, long-running operations, tenant isolation).
//!
//! A failed check is a [`Permanent`](crate::CloudErrorKind::Permanent) error whose message names
//! the check; an adapter error is passed through as it came.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::{
    CloudError, CloudErrorKind, Compute, Operation, OperationStatus, Scope, SecretValue,
    ServiceSpec, Vault,
};

/// Lets time pass for the control plane: a fake clock's advance in the sandbox, a real sleep
/// against a live emulator.
pub type Wait<'a> = &'a (dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync);

/// Polls before giving up on an operation.
const MAX_POLLS: usize = 200;

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), CloudError> {
    if ok {
        Ok(())
    } else {
        Err(CloudError::permanent(format!("conformance: {}", what())))
    }
}

/// Polls `op` until it is terminal, letting `wait` pass the control plane's `poll_after` hint
/// (1 s when it gives none) between polls.
pub async fn settle(
    compute: &dyn Compute,
    scope: &Scope,
    mut op: Operation,
    wait: Wait<'_>,
) -> Result<Operation, CloudError> {
    for _ in 0..MAX_POLLS {
        if op.status.is_terminal() {
            return Ok(op);
        }
        wait(op.poll_after.unwrap_or(Duration::from_secs(1))).await;
        op = compute.poll(scope, &op).await?;
    }
    Err(CloudError::permanent(format!(
        "conformance: operation {} still {:?} after {MAX_POLLS} polls",
        op.id, op.status
    )))
}

async fn settled_ok(
    compute: &dyn Compute,
    scope: &Scope,
    op: Operation,
    wait: Wait<'_>,
    what: &str,
) -> Result<Operation, CloudError> {
    let done = settle(compute, scope, op, wait).await?;
    check(done.status == OperationStatus::Succeeded, || {
        format!("{what}: ended {:?} ({:?})", done.status, done.error)
    })?;
    Ok(done)
}

/// Runs the suite on `compute` with a fresh service `service_id` in `scope`; `other` is a scope
/// of another tenant that must see none of it. The service is deleted at the end.
pub async fn run_compute(
    compute: &dyn Compute,
    scope: &Scope,
    other: &Scope,
    service_id: &str,
    wait: Wait<'_>,
) -> Result<(), CloudError> {
    let platform = compute.platform();
    let mut spec = ServiceSpec::new(
        service_id,
        &scope.environment_id,
        platform,
        "conformance.example/app:1",
        2,
    );

    let created = compute.apply(scope, &spec).await?;
    check(created.changed, || {
        "creating a service must report changed".into()
    })?;
    settled_ok(compute, scope, created, wait, "create").await?;
    let live = compute.get(scope, service_id).await?;
    check(live.image == spec.image && live.replicas == 2, || {
        format!("after create: {live:?}")
    })?;
    check(
        live.platform == platform && live.environment_id == scope.environment_id,
        || format!("identity: {live:?}"),
    )?;

    let again = compute.apply(scope, &spec).await?;
    check(!again.changed, || {
        "re-applying the live spec must report changed: false".into()
    })?;
    settled_ok(compute, scope, again, wait, "idempotent apply").await?;
    check(
        compute.get(scope, service_id).await?.generation == live.generation,
        || "re-applying the live spec must not bump the generation".into(),
    )?;

    spec.image = "conformance.example/app:2".into();
    let updated = compute.apply(scope, &spec).await?;
    check(updated.changed, || "a new image must report changed".into())?;
    settled_ok(compute, scope, updated, wait, "update").await?;
    let live = compute.get(scope, service_id).await?;
    check(live.image == spec.image, || {
        format!("after update the image is {}", live.image)
    })?;

    let same = compute.scale(scope, service_id, 2).await?;
    check(!same.changed, || {
        "scaling to the current count must report changed: false".into()
    })?;
    let scaled = compute.scale(scope, service_id, 3).await?;
    check(scaled.changed, || {
        "scaling to a new count must report changed".into()
    })?;
    settled_ok(compute, scope, scaled, wait, "scale").await?;
    let live = compute.get(scope, service_id).await?;
    check(live.replicas == 3 && live.ready_replicas == 3, || {
        format!(
            "after scale: {} / {} ready",
            live.replicas, live.ready_replicas
        )
    })?;

    let values = BTreeMap::from([("MODE".to_owned(), "conformance".to_owned())]);
    let configured = compute
        .apply_config(scope, service_id, "conformance-config", 1, &values)
        .await?;
    check(configured.changed, || {
        "a new configuration version must report changed".into()
    })?;
    settled_ok(compute, scope, configured, wait, "configure").await?;
    let repeat = compute
        .apply_config(scope, service_id, "conformance-config", 1, &values)
        .await?;
    check(!repeat.changed, || {
        "re-applying a configuration version must report changed: false".into()
    })?;
    let live = compute.get(scope, service_id).await?;
    check(live.config_version == Some(1), || {
        format!("config version is {:?}", live.config_version)
    })?;

    check(
        compute
            .list(scope)
            .await?
            .iter()
            .any(|s| s.id == service_id),
        || "list must include the service".into(),
    )?;
    check(
        !compute
            .list(other)
            .await?
            .iter()
            .any(|s| s.id == service_id),
        || "another tenant's list must not include the service".into(),
    )?;
    for (what, result) in [
        ("get", compute.get(other, service_id).await.map(|_| ())),
        (
            "scale",
            compute.scale(other, service_id, 9).await.map(|_| ()),
        ),
        (
            "delete",
            compute.delete(other, service_id).await.map(|_| ()),
        ),
    ] {
        check(
            result.as_ref().err().map(CloudError::kind) == Some(CloudErrorKind::NotFound),
            || format!("{what} from another tenant must be NotFound, got {result:?}"),
        )?;
    }

    let deleted = compute.delete(scope, service_id).await?;
    settled_ok(compute, scope, deleted, wait, "delete").await?;
    let gone = compute.get(scope, service_id).await;
    check(
        gone.as_ref().err().map(CloudError::kind) == Some(CloudErrorKind::NotFound),
        || format!("after delete get must be NotFound, got {gone:?}"),
    )?;
    Ok(())
}

/// Runs the vault suite on `vault` with a fresh secret `name` in `scope`; `other` is a scope of
/// another tenant that must not read it.
pub async fn run_vault(
    vault: &dyn Vault,
    scope: &Scope,
    other: &Scope,
    name: &str,
) -> Result<(), CloudError> {
    let v1 = vault
        .set_secret(scope, name, SecretValue::new("conformance-one"))
        .await?;
    let v2 = vault
        .set_secret(scope, name, SecretValue::new("conformance-two"))
        .await?;
    check(v1 != v2, || "every set must create a new version".into())?;

    let latest = vault.get_secret(scope, name, None).await?;
    check(
        latest.version == v2 && latest.value.expose() == "conformance-two" && latest.enabled,
        || format!("latest must be {v2}, got {}", latest.version),
    )?;
    let first = vault.get_secret(scope, name, Some(&v1)).await?;
    check(first.value.expose() == "conformance-one", || {
        format!("version {v1} has another value")
    })?;

    vault.disable_version(scope, name, &v1).await?;
    vault.disable_version(scope, name, &v1).await?;
    let disabled = vault.get_secret(scope, name, Some(&v1)).await;
    check(
        disabled.as_ref().err().map(CloudError::kind) == Some(CloudErrorKind::Conflict),
        || {
            format!(
                "reading a disabled version must be Conflict, got {:?}",
                disabled.as_ref().map(|b| &b.version)
            )
        },
    )?;
    let versions = vault.list_versions(scope, name).await?;
    let flags: Vec<(&str, bool)> = versions
        .iter()
        .map(|v| (v.version.as_str(), v.enabled))
        .collect();
    check(flags == [(v1.as_str(), false), (v2.as_str(), true)], || {
        format!("versions are {flags:?}")
    })?;

    let foreign = vault.get_secret(other, name, None).await;
    check(
        foreign.as_ref().err().map(CloudError::kind) == Some(CloudErrorKind::NotFound),
        || "another tenant must not read the secret".into(),
    )?;
    let missing = vault
        .get_secret(scope, name, Some("0000000000000000000000000000dead"))
        .await;
    check(
        missing.as_ref().err().map(CloudError::kind) == Some(CloudErrorKind::NotFound),
        || "an unknown version must be NotFound".into(),
    )?;
    Ok(())
}
