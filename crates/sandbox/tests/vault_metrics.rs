//! Vault versions and disable; synthetic metrics driven by load and replicas.

mod common;

use std::time::Duration;

use common::{scope, spec, world};
use fleet_cloud::{
    Aggregation, CloudErrorKind, MetricQuery, PlatformKind, SecretValue, metric_names,
};
use fleet_sandbox::{FaultPlan, LoadProfile, Port};

#[tokio::test]
async fn vault_keeps_versions_and_refuses_disabled_ones() {
    let w = world().await;
    let vault = w.sandbox.vault();
    let v1 = vault
        .set_secret(&scope(), "db-password", SecretValue::new("first"))
        .await
        .unwrap();
    w.advance(5);
    let v2 = vault
        .set_secret(&scope(), "db-password", SecretValue::new("second"))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    assert_eq!(v1.len(), 32);

    let latest = vault
        .get_secret(&scope(), "db-password", None)
        .await
        .unwrap();
    assert_eq!(
        (latest.version.as_str(), latest.value.expose()),
        (v2.as_str(), "second")
    );
    assert!(!format!("{latest:?}").contains("second"));
    let old = vault
        .get_secret(&scope(), "db-password", Some(&v1))
        .await
        .unwrap();
    assert_eq!(old.value.expose(), "first");

    vault
        .disable_version(&scope(), "db-password", &v1)
        .await
        .unwrap();
    vault
        .disable_version(&scope(), "db-password", &v1)
        .await
        .unwrap();
    let err = vault
        .get_secret(&scope(), "db-password", Some(&v1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), CloudErrorKind::Conflict);
    assert!(!err.to_string().contains("first"));
    let versions = vault.list_versions(&scope(), "db-password").await.unwrap();
    let flags: Vec<_> = versions
        .iter()
        .map(|v| (v.version.as_str(), v.enabled))
        .collect();
    assert_eq!(flags, [(v1.as_str(), false), (v2.as_str(), true)]);

    assert_eq!(
        vault
            .get_secret(&scope(), "nope", None)
            .await
            .unwrap_err()
            .kind(),
        CloudErrorKind::NotFound
    );
    assert_eq!(
        vault
            .get_secret(&scope(), "db-password", Some("zz"))
            .await
            .unwrap_err()
            .kind(),
        CloudErrorKind::NotFound
    );
    assert_eq!(
        vault
            .set_secret(&scope(), "bad name!", SecretValue::new("x"))
            .await
            .unwrap_err()
            .kind(),
        CloudErrorKind::Invalid
    );
}

#[tokio::test]
async fn vault_throttling_is_reported_with_retry_after() {
    let w = world().await;
    w.sandbox.set_faults(
        Port::Vault,
        FaultPlan {
            throttle_rate: 1.0,
            retry_after: Duration::from_secs(2),
            ..FaultPlan::default()
        },
    );
    let err = w
        .sandbox
        .vault()
        .set_secret(&scope(), "k", SecretValue::new("v"))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
}

fn query(
    service: &str,
    metric: &str,
    aggregation: Aggregation,
    start: chrono::DateTime<chrono::Utc>,
    minutes: i64,
) -> MetricQuery {
    MetricQuery {
        service_id: service.into(),
        metric: metric.into(),
        aggregation,
        start,
        end: start + chrono::Duration::minutes(minutes),
        interval: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn cpu_falls_when_replicas_rise_and_history_keeps_past_replica_counts() {
    let w = world().await;
    let aca = w.sandbox.compute(PlatformKind::ContainerApps);
    aca.apply(
        &scope(),
        &spec("api", PlatformKind::ContainerApps, "reg/api:1", 1),
    )
    .await
    .unwrap();
    w.sandbox
        .set_load(&scope(), "api", LoadProfile::Constant { rps: 40.0 })
        .unwrap();
    let t0 = w.sandbox.now();
    w.advance(600);
    aca.scale(&scope(), "api", 4).await.unwrap();
    let t1 = w.sandbox.now();
    w.advance(600);

    let metrics = w.sandbox.metrics();
    let before = metrics
        .query(
            &scope(),
            &query(
                "api",
                metric_names::CPU_PERCENTAGE,
                Aggregation::Average,
                t0,
                10,
            ),
        )
        .await
        .unwrap();
    let after = metrics
        .query(
            &scope(),
            &query(
                "api",
                metric_names::CPU_PERCENTAGE,
                Aggregation::Average,
                t1,
                10,
            ),
        )
        .await
        .unwrap();
    assert_eq!((before.len(), after.len()), (10, 10));
    let avg =
        |ps: &[fleet_cloud::MetricPoint]| ps.iter().map(|p| p.value).sum::<f64>() / ps.len() as f64;
    assert!(
        avg(&before) > 2.0 * avg(&after),
        "cpu before {} after {}",
        avg(&before),
        avg(&after)
    );

    let per_replica = metrics
        .query(
            &scope(),
            &query(
                "api",
                metric_names::REQUESTS_PER_REPLICA,
                Aggregation::Average,
                t1,
                5,
            ),
        )
        .await
        .unwrap();
    assert!(
        per_replica.iter().all(|p| (p.value - 10.0).abs() < 1e-9),
        "{per_replica:?}"
    );
    let requests = metrics
        .query(
            &scope(),
            &query("api", metric_names::REQUESTS, Aggregation::Total, t1, 1),
        )
        .await
        .unwrap();
    assert_eq!(requests[0].value, 40.0 * 60.0);
    let count = metrics
        .query(
            &scope(),
            &query("api", metric_names::REPLICAS, Aggregation::Count, t1, 1),
        )
        .await
        .unwrap();
    assert_eq!(count[0].value, 6.0);
}

#[tokio::test]
async fn a_spike_profile_shapes_the_request_series() {
    let w = world().await;
    let aks = w.sandbox.compute(PlatformKind::Aks);
    aks.apply(&scope(), &spec("web", PlatformKind::Aks, "reg/web:1", 2))
        .await
        .unwrap();
    w.sandbox
        .set_load(
            &scope(),
            "web",
            LoadProfile::Spike {
                base_rps: 10.0,
                peak_rps: 100.0,
                after_secs: 120,
                for_secs: 60,
            },
        )
        .unwrap();
    let t0 = w.sandbox.now();
    w.advance(300);
    let series = w
        .sandbox
        .metrics()
        .query(
            &scope(),
            &query("web", metric_names::REQUESTS, Aggregation::Total, t0, 5),
        )
        .await
        .unwrap();
    let totals: Vec<f64> = series.iter().map(|p| p.value).collect();
    assert_eq!(totals, [600.0, 600.0, 6000.0, 600.0, 600.0]);
}

#[tokio::test]
async fn metric_queries_are_validated_and_tenant_scoped() {
    let w = world().await;
    let aks = w.sandbox.compute(PlatformKind::Aks);
    aks.apply(&scope(), &spec("web", PlatformKind::Aks, "reg/web:1", 2))
        .await
        .unwrap();
    let m = w.sandbox.metrics();
    let t0 = w.sandbox.now();
    let bad = m
        .query(
            &scope(),
            &query("web", "Bogus", Aggregation::Average, t0, 5),
        )
        .await
        .unwrap_err();
    assert!(bad.kind() == CloudErrorKind::Invalid && bad.to_string().contains("Bogus"));
    let empty = m
        .query(
            &scope(),
            &query("web", metric_names::REPLICAS, Aggregation::Average, t0, 0),
        )
        .await
        .unwrap_err();
    assert_eq!(empty.kind(), CloudErrorKind::Invalid);
    let other = fleet_cloud::Scope::new("tenant-b", "prod");
    let hidden = m
        .query(
            &other,
            &query("web", metric_names::REPLICAS, Aggregation::Average, t0, 5),
        )
        .await
        .unwrap_err();
    assert_eq!(hidden.kind(), CloudErrorKind::NotFound);
    // Nothing after now: the future has no samples.
    assert!(
        m.query(
            &scope(),
            &query(
                "web",
                metric_names::REPLICAS,
                Aggregation::Average,
                t0 + chrono::Duration::hours(1),
                5
            )
        )
        .await
        .unwrap()
        .is_empty()
    );
}
