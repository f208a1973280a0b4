//! The conformance suite on PostgreSQL, each case in its own throw-away schema.
//!
//! Needs `FLEET_TEST_POSTGRES_URL` (e.g. `postgres://fleet:fleet@127.0.0.1:5432/fleet_test`).
//! Unset: every case prints `SKIPPED (set FLEET_TEST_POSTGRES_URL)` and returns. Set but
//! unreachable: every case fails.

use std::sync::Arc;

use fleet_store::conformance::Harness;
use fleet_store::{PostgresOptions, PostgresStore, Store, StoreErrorKind};

const ENV: &str = "FLEET_TEST_POSTGRES_URL";

fn url() -> Option<String> {
    match std::env::var(ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED (set {ENV})");
            None
        }
    }
}

async fn connect_fresh_schema(url: &str) -> Arc<PostgresStore> {
    let mut options = PostgresOptions::from_url(url).expect("valid FLEET_TEST_POSTGRES_URL");
    options.schema = format!("fleet_test_{}", uuid::Uuid::new_v4().simple());
    options.pool_size = 4;
    let store = PostgresStore::connect(options)
        .await
        .unwrap_or_else(|e| panic!("{ENV} is set but PostgreSQL is unreachable: {e}"));
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

async fn harness() -> Option<Harness> {
    let url = url()?;
    let store = connect_fresh_schema(&url).await;
    let dropper = Arc::clone(&store);
    Some(Harness::new(store).with_cleanup(async move {
        dropper.drop_schema().await.expect("drop test schema");
    }))
}

fleet_store::store_conformance_tests!(harness);

/// Replicas starting together all migrate the same schema; the advisory lock serialises them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrators_on_a_new_schema_all_succeed() {
    let Some(url) = url() else { return };
    let schema = format!("fleet_test_{}", uuid::Uuid::new_v4().simple());
    let open = |schema: String| {
        let url = url.clone();
        async move {
            let mut options = PostgresOptions::from_url(&url).expect("url");
            options.schema = schema;
            let store = PostgresStore::connect(options).await.expect("connect");
            store.migrate().await.map(|()| store)
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        tasks.spawn(open(schema.clone()));
    }
    let mut stores = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        stores.push(joined.expect("task").expect("every migrator succeeds"));
    }
    assert_eq!(stores[0].pending_outbox().await.expect("tables exist"), 0);
    stores[0].drop_schema().await.expect("drop");
}

/// `open` with a `?schema=` URL lives in that schema.
#[tokio::test]
async fn open_honours_the_schema_parameter() {
    let Some(url) = url() else { return };
    let schema = format!("fleet_test_{}", uuid::Uuid::new_v4().simple());
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = fleet_store::open(&format!("{url}{sep}schema={schema}&pool_size=2"))
        .await
        .expect("open");
    assert_eq!(store.pending_outbox().await.expect("pending"), 0);
    let mut options = PostgresOptions::from_url(&url).expect("url");
    options.schema = schema;
    let handle = PostgresStore::connect(options).await.expect("connect");
    handle.drop_schema().await.expect("drop");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_the_password_stays_hidden() {
    let Err(err) =
        fleet_store::open("postgres://fleet:hunter2@127.0.0.1:1/nothing?connect_timeout=2").await
    else {
        panic!("nothing listens on port 1, yet open succeeded");
    };
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(err.is_transient());
    assert!(!format!("{err:?} {err}").contains("hunter2"), "{err:?}");
}

#[test]
fn bad_schema_names_are_rejected_by_name() {
    let err = PostgresOptions::from_url("postgres://u@h/db?schema=a;drop").expect_err("bad schema");
    assert_eq!(err.kind(), StoreErrorKind::Invalid);
    assert!(err.to_string().contains("a;drop"), "{err}");
}
