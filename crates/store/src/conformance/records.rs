//! Cases about tenant bindings, records and optimistic concurrency.

use std::sync::Arc;

use serde_json::json;

use super::t0;
use crate::records::{PlatformKind, RuntimeService, ServiceEndpoints, ServiceStatus};
use crate::{
    Expect, RecordKind, RecordWrite, Store, StoreErrorKind, StoreExt, TenantBinding, UnitOfWork,
};

fn write(id: &str, env: &str, expect: Expect, body: Option<serde_json::Value>) -> RecordWrite {
    RecordWrite {
        kind: RecordKind::Service,
        tenant_id: "t1".into(),
        environment_id: env.into(),
        id: id.into(),
        expect,
        body: body.map(Into::into),
    }
}

async fn commit_write(store: &Arc<dyn Store>, w: RecordWrite) -> Result<(), crate::StoreError> {
    let mut uow = UnitOfWork::new();
    uow.writes.push(w);
    store.commit(uow).await
}

fn service(id: &str, tenant: &str, env: &str, replicas: u32) -> RuntimeService {
    RuntimeService {
        id: id.into(),
        tenant_id: tenant.into(),
        environment_id: env.into(),
        name: format!("{id}-name"),
        platform: PlatformKind::Aks,
        resource_id: Some(format!("ns/{id}")),
        image: "registry/app:1".into(),
        replicas,
        config_version: None,
        status: ServiceStatus::Running,
        endpoints: ServiceEndpoints::default(),
        observed: None,
        labels: Default::default(),
        updated_at: t0(),
    }
}

/// `migrate()` twice in a row (and concurrently) is harmless and keeps data.
pub async fn migrate_twice_is_fine(store: Arc<dyn Store>) {
    commit_write(
        &store,
        write("s1", "e1", Expect::Absent, Some(json!({"n": 1}))),
    )
    .await
    .expect("write");
    store.migrate().await.expect("second migrate");
    let (a, b) = tokio::join!(store.migrate(), store.migrate());
    a.expect("concurrent migrate a");
    b.expect("concurrent migrate b");
    let got = store
        .get_raw(RecordKind::Service, "t1", "s1")
        .await
        .expect("read");
    assert_eq!(
        got.map(|r| r.version),
        Some(1),
        "migrating again must not lose data"
    );
}

/// A tenant binding reads back as written; a second put replaces it.
pub async fn tenant_binding_round_trip(store: Arc<dyn Store>) {
    assert_eq!(store.tenant_binding("env-1").await.expect("read"), None);
    let mut binding = TenantBinding {
        environment_id: "env-1".into(),
        tenant_id: "t1".into(),
        targets: json!({"containerapps": {"resourceGroup": "rg-1"}}),
    };
    store.put_tenant_binding(&binding).await.expect("put");
    assert_eq!(
        store.tenant_binding("env-1").await.expect("read"),
        Some(binding.clone())
    );
    binding.tenant_id = "t2".into();
    store.put_tenant_binding(&binding).await.expect("replace");
    assert_eq!(
        store.tenant_binding("env-1").await.expect("read"),
        Some(binding)
    );
    assert_eq!(store.tenant_binding("env-2").await.expect("read"), None);
}

/// Versions start at 1 and grow by one per update; list filters by tenant and environment.
pub async fn records_put_get_list_with_versions(store: Arc<dyn Store>) {
    commit_write(
        &store,
        write("s1", "e1", Expect::Absent, Some(json!({"n": 1}))),
    )
    .await
    .expect("insert");
    let r = store
        .get_raw(RecordKind::Service, "t1", "s1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        (r.version, r.environment_id.as_str(), &r.body),
        (1, "e1", &json!({"n": 1}))
    );
    commit_write(
        &store,
        write("s1", "e1", Expect::Version(1), Some(json!({"n": 2}))),
    )
    .await
    .expect("update");
    let r = store
        .get_raw(RecordKind::Service, "t1", "s1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!((r.version, &r.body), (2, &json!({"n": 2})));

    commit_write(
        &store,
        write("s2", "e2", Expect::Absent, Some(json!({"n": 3}))),
    )
    .await
    .expect("insert s2");
    let mut other_tenant = write("s3", "e1", Expect::Absent, Some(json!({"n": 4})));
    other_tenant.tenant_id = "t2".into();
    commit_write(&store, other_tenant)
        .await
        .expect("insert t2/s3");
    let mut other_kind = write("s1", "e1", Expect::Absent, Some(json!({"n": 5})));
    other_kind.kind = RecordKind::Deployment;
    commit_write(&store, other_kind)
        .await
        .expect("insert deployment s1");

    let ids = |rs: Vec<crate::RawRecord>| {
        rs.into_iter()
            .map(|r| format!("{}/{}", r.tenant_id, r.id))
            .collect::<Vec<_>>()
    };
    let all = store
        .list_raw(RecordKind::Service, None, None)
        .await
        .expect("list");
    assert_eq!(ids(all), ["t1/s1", "t1/s2", "t2/s3"]);
    let t1 = store
        .list_raw(RecordKind::Service, Some("t1"), None)
        .await
        .expect("list");
    assert_eq!(ids(t1), ["t1/s1", "t1/s2"]);
    let t1e1 = store
        .list_raw(RecordKind::Service, Some("t1"), Some("e1"))
        .await
        .expect("list");
    assert_eq!(ids(t1e1), ["t1/s1"]);
    let e1 = store
        .list_raw(RecordKind::Service, None, Some("e1"))
        .await
        .expect("list");
    assert_eq!(ids(e1), ["t1/s1", "t2/s3"]);
    assert!(
        store
            .get_raw(RecordKind::Service, "t2", "s1")
            .await
            .expect("get")
            .is_none(),
        "tenants do not share ids"
    );
}

/// Typed records go through `UnitOfWork::put` and come back equal via `StoreExt`.
pub async fn typed_records_round_trip(store: Arc<dyn Store>) {
    let a = service("svc-1", "t1", "e1", 2);
    let b = service("svc-2", "t1", "e2", 3);
    let mut uow = UnitOfWork::new();
    uow.put(&a, Expect::Absent).expect("put a");
    uow.put(&b, Expect::Absent).expect("put b");
    store.commit(uow).await.expect("commit");
    let got = store
        .get::<RuntimeService>("t1", "svc-1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!((got.version, &got.record), (1, &a));
    let listed = store
        .list::<RuntimeService>("t1", Some("e2"))
        .await
        .expect("list");
    assert_eq!(
        listed.into_iter().map(|v| v.record).collect::<Vec<_>>(),
        vec![b]
    );
    let everywhere = store
        .list_all::<RuntimeService>(None)
        .await
        .expect("list all");
    assert_eq!(everywhere.len(), 2);
}

/// Encoded reads return exactly the records, versions, bodies and order of the raw reads, for
/// every filter; a stored document that does not decode as the requested type is `Corrupt` and
/// named by its key, and a record read as another kind is `Invalid`.
pub async fn encoded_reads_match_raw_reads(store: Arc<dyn Store>) {
    commit_write(
        &store,
        write("s2", "e1", Expect::Absent, Some(json!({"n": 2}))),
    )
    .await
    .expect("insert s2");
    commit_write(
        &store,
        write("s1", "e2", Expect::Absent, Some(json!({"n": 1}))),
    )
    .await
    .expect("insert s1");
    commit_write(
        &store,
        write("s1", "e2", Expect::Version(1), Some(json!({"n": [1, "x"]}))),
    )
    .await
    .expect("update s1");
    let mut other = write(
        "s0",
        "e1",
        Expect::Absent,
        Some(json!({"n": {"deep": null}})),
    );
    other.tenant_id = "t2".into();
    commit_write(&store, other).await.expect("insert t2/s0");

    for (tenant, env) in [
        (None, None),
        (Some("t1"), None),
        (Some("t2"), None),
        (None, Some("e1")),
        (Some("t1"), Some("e2")),
        (Some("t9"), None),
    ] {
        let raw = store
            .list_raw(RecordKind::Service, tenant, env)
            .await
            .expect("list raw");
        let encoded = store
            .list_encoded(RecordKind::Service, tenant, env)
            .await
            .expect("list encoded")
            .into_iter()
            .map(|e| e.into_raw().expect("stored documents parse"))
            .collect::<Vec<_>>();
        assert_eq!(encoded, raw, "tenant {tenant:?}, environment {env:?}");
    }
    let all = store
        .list_encoded(RecordKind::Service, None, None)
        .await
        .expect("list encoded");
    assert_eq!(
        all.iter()
            .map(|e| (e.tenant_id.as_str(), e.id.as_str(), e.version))
            .collect::<Vec<_>>(),
        vec![("t1", "s1", 2), ("t1", "s2", 1), ("t2", "s0", 1)]
    );
    assert_eq!(
        all[0].body.to_value().expect("JSON"),
        json!({"n": [1, "x"]})
    );

    let one = store
        .get_encoded(RecordKind::Service, "t1", "s1")
        .await
        .expect("get encoded")
        .expect("present");
    let raw = store
        .get_raw(RecordKind::Service, "t1", "s1")
        .await
        .expect("get raw")
        .expect("present");
    assert_eq!(one.into_raw().expect("parses"), raw);
    assert!(
        store
            .get_encoded(RecordKind::Service, "t1", "nope")
            .await
            .expect("get encoded")
            .is_none()
    );
    assert!(
        store
            .get_encoded(RecordKind::Deployment, "t1", "s1")
            .await
            .expect("get encoded")
            .is_none(),
        "kinds do not share keys"
    );

    let err = store
        .list::<RuntimeService>("t1", Some("e1"))
        .await
        .expect_err("{\"n\":2} is not a RuntimeService");
    assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("service/t1/s2"), "{err}");
    let err = store
        .get::<RuntimeService>("t2", "s0")
        .await
        .expect_err("not a RuntimeService");
    assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("service/t2/s0"), "{err}");

    let encoded = store
        .get_encoded(RecordKind::Service, "t1", "s2")
        .await
        .expect("get encoded")
        .expect("present");
    let err = encoded
        .decode::<crate::records::RuntimeDeployment>()
        .expect_err("a service is not a deployment");
    assert_eq!(err.kind(), StoreErrorKind::Invalid, "{err}");
}

/// Many inserts in one unit keep the meaning of one write after another: an existing key or a
/// key inserted twice fails the unit, naming that record, and nothing of the unit is written;
/// an insert followed by an update of the same record sees the insert.
pub async fn many_inserts_in_one_unit_behave_like_one_after_another(store: Arc<dyn Store>) {
    let puts = |ids: &[String]| {
        let mut uow = UnitOfWork::new();
        uow.writes = ids
            .iter()
            .map(|id| write(id, "e1", Expect::Absent, Some(json!({"id": id}))))
            .collect();
        uow
    };
    let first: Vec<String> = (0..50).map(|i| format!("a{i:02}")).collect();
    store.commit(puts(&first)).await.expect("50 inserts");
    let listed = store
        .list_raw(RecordKind::Service, Some("t1"), None)
        .await
        .expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|r| (r.id.clone(), r.version, r.body.clone()))
            .collect::<Vec<_>>(),
        first
            .iter()
            .map(|id| (id.clone(), 1, json!({"id": id})))
            .collect::<Vec<_>>()
    );

    let mut second: Vec<String> = (0..30).map(|i| format!("b{i:02}")).collect();
    second[17] = "a10".into();
    let err = store.commit(puts(&second)).await.expect_err("a10 exists");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("service/t1/a10"), "{err}");

    let twice = vec!["c0".to_string(), "c1".into(), "c0".into(), "c2".into()];
    let err = store
        .commit(puts(&twice))
        .await
        .expect_err("c0 inserted twice");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("service/t1/c0"), "{err}");
    let ids = store
        .list_raw(RecordKind::Service, Some("t1"), None)
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.id)
        .collect::<Vec<_>>();
    assert_eq!(ids, first, "the failed units wrote nothing");

    let mut mixed = puts(&["c0".to_string(), "c1".into()]);
    mixed
        .writes
        .push(write("c0", "e2", Expect::Version(1), Some(json!({"n": 2}))));
    mixed
        .writes
        .extend(puts(&["c2".to_string(), "c3".into()]).writes);
    store.commit(mixed).await.expect("insert, update, insert");
    let c0 = store
        .get_raw(RecordKind::Service, "t1", "c0")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        (c0.version, c0.environment_id.as_str(), &c0.body),
        (2, "e2", &json!({"n": 2}))
    );
    let c3 = store
        .get_raw(RecordKind::Service, "t1", "c3")
        .await
        .expect("get")
        .expect("present");
    assert_eq!((c3.version, &c3.body), (1, &json!({"id": "c3"})));
}

/// `Expect::Absent` on an existing record is a conflict and leaves it unchanged.
pub async fn expect_absent_conflicts_when_the_record_exists(store: Arc<dyn Store>) {
    commit_write(
        &store,
        write("s1", "e1", Expect::Absent, Some(json!({"n": 1}))),
    )
    .await
    .expect("insert");
    let err = commit_write(
        &store,
        write("s1", "e1", Expect::Absent, Some(json!({"n": 2}))),
    )
    .await
    .expect_err("second insert must conflict");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert!(!err.is_transient());
    let r = store
        .get_raw(RecordKind::Service, "t1", "s1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!((r.version, &r.body), (1, &json!({"n": 1})));
}

/// `Expect::Version(n)` with a stale or missing version is a conflict.
pub async fn expect_version_conflicts_when_stale(store: Arc<dyn Store>) {
    commit_write(
        &store,
        write("s1", "e1", Expect::Absent, Some(json!({"n": 1}))),
    )
    .await
    .expect("insert");
    commit_write(
        &store,
        write("s1", "e1", Expect::Version(1), Some(json!({"n": 2}))),
    )
    .await
    .expect("update");
    let err = commit_write(
        &store,
        write("s1", "e1", Expect::Version(1), Some(json!({"n": 3}))),
    )
    .await
    .expect_err("stale version must conflict");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    let err = commit_write(
        &store,
        write("missing", "e1", Expect::Version(1), Some(json!({}))),
    )
    .await
    .expect_err("updating a missing record must conflict");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    let r = store
        .get_raw(RecordKind::Service, "t1", "s1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!((r.version, &r.body), (2, &json!({"n": 2})));
}

/// `Expect::Any` inserts at version 1, then overwrites and bumps the version.
pub async fn expect_any_upserts(store: Arc<dyn Store>) {
    commit_write(
        &store,
        write("s1", "e1", Expect::Any, Some(json!({"n": 1}))),
    )
    .await
    .expect("insert");
    commit_write(
        &store,
        write("s1", "e2", Expect::Any, Some(json!({"n": 2}))),
    )
    .await
    .expect("overwrite");
    let r = store
        .get_raw(RecordKind::Service, "t1", "s1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        (r.version, r.environment_id.as_str(), &r.body),
        (2, "e2", &json!({"n": 2}))
    );
}

/// Deletes check their expectation: stale versions conflict, `Any` tolerates absence,
/// `Absent` asserts absence.
pub async fn delete_honours_expectations(store: Arc<dyn Store>) {
    commit_write(
        &store,
        write("s1", "e1", Expect::Absent, Some(json!({"n": 1}))),
    )
    .await
    .expect("insert");
    commit_write(
        &store,
        write("s1", "e1", Expect::Version(1), Some(json!({"n": 2}))),
    )
    .await
    .expect("update");
    let err = commit_write(&store, write("s1", "", Expect::Version(1), None))
        .await
        .expect_err("stale delete");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    let err = commit_write(&store, write("s1", "", Expect::Absent, None))
        .await
        .expect_err("present");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    commit_write(&store, write("s1", "", Expect::Version(2), None))
        .await
        .expect("delete");
    assert!(
        store
            .get_raw(RecordKind::Service, "t1", "s1")
            .await
            .expect("get")
            .is_none()
    );
    commit_write(&store, write("s1", "", Expect::Any, None))
        .await
        .expect("deleting nothing with Any");
    commit_write(&store, write("s1", "", Expect::Absent, None))
        .await
        .expect("absent holds");
    // A deleted record can be created again, starting over at version 1.
    commit_write(
        &store,
        write("s1", "e1", Expect::Absent, Some(json!({"n": 3}))),
    )
    .await
    .expect("re-insert");
    let r = store
        .get_raw(RecordKind::Service, "t1", "s1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(r.version, 1);

    let svc = service("svc-9", "t1", "e1", 1);
    let mut uow = UnitOfWork::new();
    uow.put(&svc, Expect::Absent).expect("put");
    store.commit(uow).await.expect("insert typed");
    let mut uow = UnitOfWork::new();
    uow.delete(&svc, Expect::Version(1)).expect("delete");
    store.commit(uow).await.expect("delete typed");
    assert!(
        store
            .get::<RuntimeService>("t1", "svc-9")
            .await
            .expect("get")
            .is_none()
    );
}
