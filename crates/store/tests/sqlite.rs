//! The conformance suite on SQLite (a fresh file per case), plus what only a file database can
//! show: persistence across reopen and several store handles sharing one file.

use std::sync::Arc;
use std::time::Duration;

use fleet_store::conformance::{self, Harness};
use fleet_store::{RecordKind, SqliteOptions, SqliteStore, Store, StoreErrorKind, Synchronous};

async fn harness() -> Option<Harness> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let store = fleet_store::open(&url).await.expect("open sqlite store");
    Some(Harness::new(store).keep(dir))
}

fleet_store::store_conformance_tests!(harness);

mod memory {
    use super::*;

    async fn harness() -> Option<Harness> {
        Some(Harness::new(
            fleet_store::open("sqlite::memory:").await.expect("open"),
        ))
    }

    fleet_store::store_conformance_tests!(harness);
}

#[tokio::test]
async fn records_survive_reopening_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!(
        "sqlite://{}?synchronous=full",
        dir.path().join("nested/store.db").display()
    );
    let (mut uow, event) = conformance::unit("w");
    uow.writes.push(fleet_store::RecordWrite {
        kind: RecordKind::Service,
        tenant_id: "t1".into(),
        environment_id: "e1".into(),
        id: "s1".into(),
        expect: fleet_store::Expect::Absent,
        body: Some(serde_json::json!({"replicas": 3}).into()),
    });
    uow.add_outbox(conformance::message("w", conformance::t0()));
    {
        let store = fleet_store::open(&url).await.expect("open");
        store.commit(uow).await.expect("commit");
    }
    let store = fleet_store::open(&url).await.expect("reopen");
    assert!(store.inbox_contains("w", event).await.expect("inbox"));
    let r = store
        .get_raw(RecordKind::Service, "t1", "s1")
        .await
        .expect("get")
        .expect("present");
    assert_eq!((r.version, r.body), (1, serde_json::json!({"replicas": 3})));
    assert_eq!(store.pending_outbox().await.expect("pending"), 1);
}

/// Two store handles on one file behave like two processes: the file's write lock serialises
/// them, and claims still never overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_handles_on_one_file_never_claim_the_same_row() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("shared.db");
    let a: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::file(&path))
            .await
            .expect("open a"),
    );
    a.migrate().await.expect("migrate a");
    let b: Arc<dyn Store> = Arc::new(
        SqliteStore::open(SqliteOptions::file(&path))
            .await
            .expect("open b"),
    );
    b.migrate().await.expect("migrate b (already done)");

    let mut uow = fleet_store::UnitOfWork::new();
    for i in 0..200 {
        uow.add_outbox(conformance::message("w", conformance::at(i)));
    }
    a.commit(uow).await.expect("commit");

    let claim_all = |store: Arc<dyn Store>, name: &'static str| async move {
        let mut ids = Vec::new();
        loop {
            let rows = store
                .claim_outbox(name, 9, Duration::from_secs(60), conformance::at(500))
                .await
                .expect("claim");
            if rows.is_empty() {
                return ids;
            }
            ids.extend(rows.into_iter().map(|r| r.message.id));
        }
    };
    let (ids_a, ids_b) = tokio::join!(
        tokio::spawn(claim_all(Arc::clone(&a), "a")),
        tokio::spawn(claim_all(Arc::clone(&b), "b"))
    );
    let (ids_a, ids_b) = (ids_a.expect("a"), ids_b.expect("b"));
    let mut all: Vec<_> = ids_a.iter().chain(&ids_b).collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        (total, all.len()),
        (200, 200),
        "each row claimed exactly once"
    );
}

#[tokio::test]
async fn an_unopenable_path_is_reported_as_unavailable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a directory").expect("write");
    let err = SqliteStore::open(SqliteOptions {
        path: Some(blocker.join("store.db")),
        synchronous: Synchronous::Normal,
        readers: 1,
    })
    .await
    .expect_err("a path under a regular file cannot be opened");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().contains("store.db") || err.to_string().contains("file"),
        "{err}"
    );
}
