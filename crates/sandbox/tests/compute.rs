//! Compute port behaviour: idempotent apply, long-running operations, scale, configuration,
//! secret refresh, delete, tenant isolation.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{scope, spec, world};
use fleet_cloud::{
    CloudErrorKind, OperationKind, OperationStatus, PlatformKind, ProvisioningState, Scope,
    SecretValue,
};

#[tokio::test]
async fn apply_is_a_long_running_operation_that_lands_after_simulated_time() {
    let w = world().await;
    let aca = w.sandbox.compute(PlatformKind::ContainerApps);
    let op = aca
        .apply(
            &scope(),
            &spec("orders", PlatformKind::ContainerApps, "reg/orders:1", 2),
        )
        .await
        .unwrap();
    assert_eq!(
        (op.status, op.changed, op.kind),
        (OperationStatus::InProgress, true, OperationKind::Apply)
    );
    assert_eq!(op.poll_after, Some(Duration::from_secs(45)));

    let during = aca.get(&scope(), "orders").await.unwrap();
    assert_eq!(during.provisioning_state, ProvisioningState::Creating);
    assert_eq!((during.replicas, during.ready_replicas), (2, 0));

    w.advance(44);
    assert_eq!(
        aca.poll(&scope(), &op).await.unwrap().status,
        OperationStatus::InProgress
    );
    w.advance(1);
    assert_eq!(
        aca.poll(&scope(), &op).await.unwrap().status,
        OperationStatus::Succeeded
    );
    let after = aca.get(&scope(), "orders").await.unwrap();
    assert_eq!(after.provisioning_state, ProvisioningState::Succeeded);
    assert_eq!(
        (after.image.as_str(), after.ready_replicas, after.generation),
        ("reg/orders:1", 2, 1)
    );
}

#[tokio::test]
async fn applying_the_same_spec_twice_changes_nothing() {
    let w = world().await;
    let aks = w.sandbox.compute(PlatformKind::Aks);
    let s = spec("catalog", PlatformKind::Aks, "reg/catalog:7", 3);
    let first = aks.apply(&scope(), &s).await.unwrap();
    // Re-applied while converging: the same operation, nothing new.
    let again = aks.apply(&scope(), &s).await.unwrap();
    assert_eq!(
        (again.id.as_str(), again.changed),
        (first.id.as_str(), false)
    );
    w.advance(60);
    let settled = aks.apply(&scope(), &s).await.unwrap();
    assert_eq!(
        (settled.status, settled.changed),
        (OperationStatus::Succeeded, false)
    );
    assert_eq!(aks.get(&scope(), "catalog").await.unwrap().generation, 1);

    let mut changed = s.clone();
    changed.image = "reg/catalog:8".into();
    let op = aks.apply(&scope(), &changed).await.unwrap();
    assert!(op.changed);
    assert_eq!(op.generation, 2);
    let svc = aks.get(&scope(), "catalog").await.unwrap();
    assert_eq!(
        (svc.provisioning_state, svc.ready_replicas),
        (ProvisioningState::Updating, 0)
    );
}

#[tokio::test]
async fn a_broken_image_fails_its_operation_and_never_becomes_ready() {
    let w = world().await;
    let fx = w.sandbox.compute(PlatformKind::Functions);
    let op = fx
        .apply(
            &scope(),
            &spec("billing", PlatformKind::Functions, "reg/billing:broken", 1),
        )
        .await
        .unwrap();
    w.advance(3600);
    let done = fx.poll(&scope(), &op).await.unwrap();
    assert_eq!(done.status, OperationStatus::Failed);
    assert!(
        done.error
            .as_deref()
            .is_some_and(|e| e.contains("never becomes ready")),
        "{done:?}"
    );
    let svc = fx.get(&scope(), "billing").await.unwrap();
    assert_eq!(
        (svc.provisioning_state, svc.ready_replicas),
        (ProvisioningState::Failed, 0)
    );
}

#[tokio::test]
async fn a_newer_change_cancels_the_one_in_flight() {
    let w = world().await;
    let app = w.sandbox.compute(PlatformKind::AppService);
    let first = app
        .apply(
            &scope(),
            &spec("web", PlatformKind::AppService, "reg/web:1", 1),
        )
        .await
        .unwrap();
    let second = app
        .apply(
            &scope(),
            &spec("web", PlatformKind::AppService, "reg/web:2", 1),
        )
        .await
        .unwrap();
    assert_eq!(
        app.poll(&scope(), &first).await.unwrap().status,
        OperationStatus::Canceled
    );
    w.advance(60);
    assert_eq!(
        app.poll(&scope(), &second).await.unwrap().status,
        OperationStatus::Succeeded
    );
}

#[tokio::test]
async fn scale_keeps_ready_replicas_serving_and_is_a_no_op_at_target() {
    let w = world().await;
    let aca = w.sandbox.compute(PlatformKind::ContainerApps);
    aca.apply(
        &scope(),
        &spec("cart", PlatformKind::ContainerApps, "reg/cart:1", 2),
    )
    .await
    .unwrap();
    w.advance(60);
    let op = aca.scale(&scope(), "cart", 5).await.unwrap();
    assert_eq!((op.kind, op.changed), (OperationKind::Scale, true));
    let during = aca.get(&scope(), "cart").await.unwrap();
    assert_eq!((during.replicas, during.ready_replicas), (5, 2));
    w.advance(10);
    assert_eq!(aca.get(&scope(), "cart").await.unwrap().ready_replicas, 5);
    let noop = aca.scale(&scope(), "cart", 5).await.unwrap();
    assert_eq!(
        (noop.status, noop.changed),
        (OperationStatus::Succeeded, false)
    );
}

#[tokio::test]
async fn config_is_applied_once_per_version() {
    let w = world().await;
    let aca = w.sandbox.compute(PlatformKind::ContainerApps);
    aca.apply(
        &scope(),
        &spec("orders", PlatformKind::ContainerApps, "reg/orders:1", 1),
    )
    .await
    .unwrap();
    w.advance(60);
    let values = BTreeMap::from([("LOG_LEVEL".to_owned(), "debug".to_owned())]);
    let op = aca
        .apply_config(&scope(), "orders", "orders-config", 3, &values)
        .await
        .unwrap();
    assert!(op.changed);
    w.advance(15);
    assert!(aca.poll(&scope(), &op).await.unwrap().succeeded());
    let svc = aca.get(&scope(), "orders").await.unwrap();
    assert_eq!(
        (svc.configuration_id.as_deref(), svc.config_version),
        (Some("orders-config"), Some(3))
    );
    let again = aca
        .apply_config(&scope(), "orders", "orders-config", 3, &values)
        .await
        .unwrap();
    assert!(!again.changed);
    let err = aca
        .apply_config(&scope(), "orders", "orders-config", 0, &values)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CloudErrorKind::Invalid);
}

#[tokio::test]
async fn secret_binding_refresh_pins_an_enabled_vault_version() {
    let w = world().await;
    let aks = w.sandbox.compute(PlatformKind::Aks);
    let vault = w.sandbox.vault();
    let mut s = spec("catalog", PlatformKind::Aks, "reg/catalog:7", 2);
    s.secret_bindings.insert("db".into(), "catalog-db".into());
    aks.apply(&scope(), &s).await.unwrap();
    w.advance(60);
    assert_eq!(
        aks.get(&scope(), "catalog").await.unwrap().secret_versions["db"].version,
        fleet_sandbox::LATEST
    );

    let v2 = vault
        .set_secret(&scope(), "catalog-db", SecretValue::new("pw-2"))
        .await
        .unwrap();
    let op = aks
        .refresh_secret_binding(&scope(), "catalog", "db", "catalog-db", &v2)
        .await
        .unwrap();
    assert_eq!((op.kind, op.changed), (OperationKind::RefreshSecret, true));
    assert_eq!(
        aks.get(&scope(), "catalog").await.unwrap().secret_versions["db"].version,
        v2
    );
    let same = aks
        .refresh_secret_binding(&scope(), "catalog", "db", "catalog-db", &v2)
        .await
        .unwrap();
    assert!(!same.changed);
    // Re-applying the spec keeps the pinned version: a deploy must not undo a rotation.
    w.advance(10);
    assert!(!aks.apply(&scope(), &s).await.unwrap().changed);

    let missing = aks
        .refresh_secret_binding(&scope(), "catalog", "db", "catalog-db", "nope")
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), CloudErrorKind::Invalid);
    vault
        .disable_version(&scope(), "catalog-db", &v2)
        .await
        .unwrap();
    let v3 = vault
        .set_secret(&scope(), "catalog-db", SecretValue::new("pw-3"))
        .await
        .unwrap();
    // A disabled version cannot be bound, even by a repeat of an earlier refresh.
    let disabled = aks
        .refresh_secret_binding(&scope(), "catalog", "db", "catalog-db", &v2)
        .await
        .unwrap_err();
    assert!(
        disabled.kind() == CloudErrorKind::Invalid && disabled.to_string().contains("disabled"),
        "{disabled}"
    );
    let op = aks
        .refresh_secret_binding(&scope(), "catalog", "db", "catalog-db", &v3)
        .await
        .unwrap();
    assert!(op.changed);
}

#[tokio::test]
async fn delete_lands_after_simulated_time() {
    let w = world().await;
    let app = w.sandbox.compute(PlatformKind::AppService);
    app.apply(
        &scope(),
        &spec("web", PlatformKind::AppService, "reg/web:1", 1),
    )
    .await
    .unwrap();
    w.advance(60);
    let op = app.delete(&scope(), "web").await.unwrap();
    assert_eq!(
        app.get(&scope(), "web").await.unwrap().provisioning_state,
        ProvisioningState::Deleting
    );
    w.advance(10);
    assert!(app.poll(&scope(), &op).await.unwrap().succeeded());
    assert_eq!(
        app.get(&scope(), "web").await.unwrap_err().kind(),
        CloudErrorKind::NotFound
    );
    assert!(app.list(&scope()).await.unwrap().is_empty());
    assert_eq!(
        app.delete(&scope(), "web").await.unwrap_err().kind(),
        CloudErrorKind::NotFound
    );
}

#[tokio::test]
async fn another_tenant_sees_nothing_of_a_service() {
    let w = world().await;
    let aca = w.sandbox.compute(PlatformKind::ContainerApps);
    let op = aca
        .apply(
            &scope(),
            &spec("orders", PlatformKind::ContainerApps, "reg/orders:1", 1),
        )
        .await
        .unwrap();
    let intruder = Scope::new("tenant-b", "prod");
    assert_eq!(
        aca.get(&intruder, "orders").await.unwrap_err().kind(),
        CloudErrorKind::NotFound
    );
    assert!(aca.list(&intruder).await.unwrap().is_empty());
    assert_eq!(
        aca.scale(&intruder, "orders", 9).await.unwrap_err().kind(),
        CloudErrorKind::NotFound
    );
    assert_eq!(
        aca.delete(&intruder, "orders").await.unwrap_err().kind(),
        CloudErrorKind::NotFound
    );
    assert_eq!(
        aca.poll(&intruder, &op).await.unwrap_err().kind(),
        CloudErrorKind::NotFound
    );
    let vault = w.sandbox.vault();
    vault
        .set_secret(&scope(), "api-key", SecretValue::new("k"))
        .await
        .unwrap();
    assert_eq!(
        vault
            .get_secret(&intruder, "api-key", None)
            .await
            .unwrap_err()
            .kind(),
        CloudErrorKind::NotFound
    );
    assert_eq!(aca.get(&scope(), "orders").await.unwrap().replicas, 1);
}

#[tokio::test]
async fn each_platform_sees_only_its_services_and_specs_must_match_scope_and_platform() {
    let w = world().await;
    let aks = w.sandbox.compute(PlatformKind::Aks);
    let aca = w.sandbox.compute(PlatformKind::ContainerApps);
    aks.apply(&scope(), &spec("catalog", PlatformKind::Aks, "reg/c:1", 1))
        .await
        .unwrap();
    assert_eq!(
        aca.get(&scope(), "catalog").await.unwrap_err().kind(),
        CloudErrorKind::NotFound
    );
    let wrong_platform = aca
        .apply(&scope(), &spec("catalog", PlatformKind::Aks, "reg/c:1", 1))
        .await
        .unwrap_err();
    assert_eq!(wrong_platform.kind(), CloudErrorKind::Invalid);
    let taken = aca
        .apply(
            &scope(),
            &spec("catalog", PlatformKind::ContainerApps, "reg/c:1", 1),
        )
        .await
        .unwrap_err();
    assert_eq!(taken.kind(), CloudErrorKind::Conflict);
    let mut other_env = spec("x", PlatformKind::Aks, "reg/x:1", 1);
    other_env.environment_id = "staging".into();
    assert_eq!(
        aks.apply(&scope(), &other_env).await.unwrap_err().kind(),
        CloudErrorKind::Invalid
    );
    let all = w.sandbox.computes().list_all(&scope()).await.unwrap();
    assert_eq!(all.len(), 1);
}
