//! Cases about the unit of work: atomicity, inbox dedupe, idempotency keys, group commit and
//! concurrent writers.

use std::sync::Arc;

use serde_json::json;
use tokio::sync::Barrier;

use super::{message, t0, unit};
use crate::{Expect, RecordKind, RecordWrite, Store, StoreErrorKind, UnitOfWork};

fn put(id: &str, expect: Expect, n: i64) -> RecordWrite {
    RecordWrite {
        kind: RecordKind::Configuration,
        tenant_id: "t1".into(),
        environment_id: "e1".into(),
        id: id.into(),
        expect,
        body: Some(json!({ "n": n }).into()),
    }
}

/// A unit whose record write conflicts leaves its inbox row, keys and outbox rows unwritten.
pub async fn conflicting_write_leaves_the_whole_unit_unwritten(store: Arc<dyn Store>) {
    let mut first = UnitOfWork::new();
    first.writes.push(put("c1", Expect::Absent, 1));
    store.commit(first).await.expect("seed");

    let (mut uow, event) = unit("w");
    uow.add_idempotency_key("w", "c1:v2", json!({"applied": true}), t0());
    uow.add_outbox(message("w", t0()));
    uow.writes.push(put("c2", Expect::Absent, 1)); // would succeed on its own
    uow.writes.push(put("c1", Expect::Version(7), 2)); // stale
    let err = store
        .commit(uow)
        .await
        .expect_err("stale write must fail the unit");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");

    assert!(
        !store.inbox_contains("w", event).await.expect("inbox"),
        "inbox row written"
    );
    assert_eq!(
        store.idempotency_key("w", "c1:v2").await.expect("key"),
        None,
        "key written"
    );
    assert_eq!(
        store.pending_outbox().await.expect("pending"),
        0,
        "outbox row written"
    );
    assert!(
        store
            .get_raw(RecordKind::Configuration, "t1", "c2")
            .await
            .expect("get")
            .is_none(),
        "an earlier write of the failed unit survived"
    );
}

/// A second unit for the same (worker, event) fails with DuplicateInbox and writes nothing;
/// another worker may handle the same event.
pub async fn duplicate_inbox_is_reported_and_writes_nothing(store: Arc<dyn Store>) {
    let (first, event) = unit("w");
    store.commit(first).await.expect("first");
    assert!(store.inbox_contains("w", event).await.expect("inbox"));

    let mut again = UnitOfWork::new();
    again.set_inbox("w", event, t0());
    again.writes.push(put("c1", Expect::Any, 1));
    again.add_idempotency_key("w", "k", json!(1), t0());
    again.add_outbox(message("w", t0()));
    let err = store.commit(again).await.expect_err("duplicate");
    assert_eq!(err.kind(), StoreErrorKind::DuplicateInbox, "{err}");
    assert!(!err.is_transient());
    assert!(
        store
            .get_raw(RecordKind::Configuration, "t1", "c1")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(store.idempotency_key("w", "k").await.expect("key"), None);
    assert_eq!(store.pending_outbox().await.expect("pending"), 0);

    let mut other_worker = UnitOfWork::new();
    other_worker.set_inbox("other", event, t0());
    store
        .commit(other_worker)
        .await
        .expect("another worker's inbox is separate");
    assert!(
        !store
            .inbox_contains("w", uuid::Uuid::new_v4())
            .await
            .expect("inbox")
    );
}

/// A recorded idempotency key returns its outcome; recording it again is a conflict.
pub async fn idempotency_key_lookup_and_duplicate(store: Arc<dyn Store>) {
    let outcome = json!({"deploymentId": "d1", "step": "apply", "result": {"revision": 4}});
    let (mut uow, _) = unit("deploy");
    uow.add_idempotency_key("deploy", "d1:apply", outcome.clone(), t0());
    store.commit(uow).await.expect("commit");
    assert_eq!(
        store
            .idempotency_key("deploy", "d1:apply")
            .await
            .expect("read"),
        Some(outcome)
    );
    assert_eq!(
        store
            .idempotency_key("other", "d1:apply")
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store
            .idempotency_key("deploy", "d1:verify")
            .await
            .expect("read"),
        None
    );

    let (mut uow, event) = unit("deploy");
    uow.add_idempotency_key("deploy", "d1:apply", json!("again"), t0());
    let err = store.commit(uow).await.expect_err("duplicate key");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert!(!store.inbox_contains("deploy", event).await.expect("inbox"));
}

/// In a group commit a failing unit is rolled back alone; the others commit.
pub async fn commit_many_isolates_failing_units(store: Arc<dyn Store>) {
    let mut seed = UnitOfWork::new();
    seed.writes.push(put("c1", Expect::Absent, 1));
    store.commit(seed).await.expect("seed");

    let (mut ok_a, ev_a) = unit("w");
    ok_a.writes.push(put("a", Expect::Absent, 1));
    ok_a.add_outbox(message("w", t0()));
    let (mut bad, ev_bad) = unit("w");
    bad.writes.push(put("b", Expect::Absent, 1));
    bad.add_idempotency_key("w", "bad-key", json!(null), t0());
    bad.add_outbox(message("w", t0()));
    bad.writes.push(put("c1", Expect::Absent, 2)); // conflicts
    let (mut ok_c, ev_c) = unit("w");
    ok_c.writes.push(put("c1", Expect::Version(1), 3));
    ok_c.add_idempotency_key("w", "good-key", json!(true), t0());

    let results = store.commit_many(vec![ok_a, bad, ok_c]).await;
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_eq!(
        results[1].as_ref().map_err(|e| e.kind()),
        Err(StoreErrorKind::Conflict)
    );
    assert!(results[2].is_ok(), "{:?}", results[2]);

    assert!(store.inbox_contains("w", ev_a).await.expect("inbox"));
    assert!(!store.inbox_contains("w", ev_bad).await.expect("inbox"));
    assert!(store.inbox_contains("w", ev_c).await.expect("inbox"));
    assert!(
        store
            .get_raw(RecordKind::Configuration, "t1", "b")
            .await
            .expect("get")
            .is_none()
    );
    assert_eq!(
        store.idempotency_key("w", "bad-key").await.expect("key"),
        None
    );
    assert_eq!(
        store.idempotency_key("w", "good-key").await.expect("key"),
        Some(json!(true))
    );
    assert_eq!(store.pending_outbox().await.expect("pending"), 1);
    let c1 = store
        .get_raw(RecordKind::Configuration, "t1", "c1")
        .await
        .expect("get")
        .expect("c1");
    assert_eq!((c1.version, &c1.body), (2, &json!({"n": 3})));
    assert!(store.commit_many(Vec::new()).await.is_empty());
}

/// Two units of one batch with the same inbox row: the first wins, the second is a duplicate.
pub async fn commit_many_detects_duplicates_within_the_batch(store: Arc<dyn Store>) {
    let (first, event) = unit("w");
    let mut second = first.clone();
    second.add_outbox(message("w", t0()));
    let results = store.commit_many(vec![first, second]).await;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    assert_eq!(
        results[1].as_ref().map_err(|e| e.kind()),
        Err(StoreErrorKind::DuplicateInbox)
    );
    assert!(store.inbox_contains("w", event).await.expect("inbox"));
    assert_eq!(store.pending_outbox().await.expect("pending"), 0);
}

/// Many tasks race to update the same record from the same version: exactly one wins each
/// round, and the losers' inbox rows are not written.
pub async fn concurrent_commits_have_one_winner_per_version(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    const ROUNDS: i64 = 5;
    let mut seed = UnitOfWork::new();
    seed.writes.push(put("hot", Expect::Absent, 0));
    store.commit(seed).await.expect("seed");

    for round in 1..=ROUNDS {
        let barrier = Arc::new(Barrier::new(TASKS));
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..TASKS {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tasks.spawn(async move {
                let (mut uow, event) = unit("race");
                uow.writes
                    .push(put("hot", Expect::Version(round), task as i64));
                barrier.wait().await;
                (event, store.commit(uow).await)
            });
        }
        let mut winners = Vec::new();
        let mut losers = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (event, result) = joined.expect("task panicked");
            match result {
                Ok(()) => winners.push(event),
                Err(e) if e.kind() == StoreErrorKind::Conflict => losers.push(event),
                Err(e) => panic!("unexpected error in round {round}: {e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one commit must win"
        );
        let hot = store
            .get_raw(RecordKind::Configuration, "t1", "hot")
            .await
            .expect("get")
            .expect("hot");
        assert_eq!(hot.version, round + 1);
        for loser in losers {
            assert!(
                !store.inbox_contains("race", loser).await.expect("inbox"),
                "a loser's inbox row was written"
            );
        }
        assert!(
            store
                .inbox_contains("race", winners[0])
                .await
                .expect("inbox")
        );
    }

    // Distinct records from many tasks all commit.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let (mut uow, _) = unit("spread");
            uow.writes
                .push(put(&format!("own-{task}"), Expect::Absent, 1));
            store.commit(uow).await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined
            .expect("task panicked")
            .expect("independent commits all succeed");
    }
    let all = store
        .list_raw(RecordKind::Configuration, Some("t1"), None)
        .await
        .expect("list");
    assert_eq!(all.len(), TASKS + 1);
}

/// The same event delivered to several replicas at once commits exactly once: one unit wins,
/// the others get DuplicateInbox and leave no outbox rows behind.
pub async fn concurrent_duplicate_deliveries_commit_once(store: Arc<dyn Store>) {
    const TASKS: usize = 8;
    let event = uuid::Uuid::new_v4();
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.spawn(async move {
            let mut uow = UnitOfWork::new();
            uow.set_inbox("w", event, t0());
            uow.add_idempotency_key("w", &format!("attempt-{task}"), json!(task), t0());
            uow.add_outbox(message("w", t0()));
            barrier.wait().await;
            store.commit(uow).await
        });
    }
    let (mut won, mut duplicate) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("task panicked") {
            Ok(()) => won += 1,
            Err(e) if e.kind() == StoreErrorKind::DuplicateInbox => duplicate += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((won, duplicate), (1, TASKS - 1));
    assert_eq!(store.pending_outbox().await.expect("pending"), 1);
    let mut keys = 0;
    for task in 0..TASKS {
        keys += usize::from(
            store
                .idempotency_key("w", &format!("attempt-{task}"))
                .await
                .expect("key")
                .is_some(),
        );
    }
    assert_eq!(keys, 1, "only the winner's idempotency key is recorded");
}
