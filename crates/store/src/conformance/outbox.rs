//! Cases about the outbox (claims, leases, dispatch) and the purge.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{at, message};
use crate::{OutboxMessage, PurgeCounts, Store, UnitOfWork};

/// Claims take the oldest undispatched rows, hold them for the lease, and hand them to another
/// claimer exactly when the lease ends; dispatched rows are never claimed again.
pub async fn outbox_claim_lease_expiry_and_dispatch(store: Arc<dyn Store>) {
    let lease = Duration::from_secs(30);
    assert!(
        store
            .claim_outbox("a", 10, lease, at(0))
            .await
            .expect("claim")
            .is_empty()
    );
    let msgs: Vec<_> = (0..3).map(|i| message("w", at(i))).collect();
    let mut uow = UnitOfWork::new();
    // Written newest first: claims must still come back oldest first.
    for m in msgs.iter().rev() {
        uow.add_outbox(m.clone());
    }
    store.commit(uow).await.expect("commit");
    assert_eq!(store.pending_outbox().await.expect("pending"), 3);

    let first = store
        .claim_outbox("a", 2, lease, at(10))
        .await
        .expect("claim");
    // Properties come back as the same JSON object; PostgreSQL's `jsonb` may respace and
    // reorder its text, so they are compared as values.
    let comparable = |m: &OutboxMessage| {
        let properties = m.properties.to_value().expect("stored properties are JSON");
        let mut m = m.clone();
        m.properties = crate::Document::from(serde_json::Value::Null);
        (m, properties)
    };
    assert_eq!(
        first
            .iter()
            .map(|r| comparable(&r.message))
            .collect::<Vec<_>>(),
        msgs[..2].iter().map(comparable).collect::<Vec<_>>()
    );
    assert!(
        first
            .iter()
            .all(|r| r.claimed_by == "a" && r.claimed_until == at(40) && r.claims == 1)
    );

    let second = store
        .claim_outbox("b", 10, lease, at(20))
        .await
        .expect("claim");
    assert_eq!(
        second.iter().map(|r| r.message.id).collect::<Vec<_>>(),
        vec![msgs[2].id]
    );
    assert!(
        store
            .claim_outbox("b", 10, lease, at(39))
            .await
            .expect("claim")
            .is_empty(),
        "claims still live"
    );

    let expired = store
        .claim_outbox("b", 10, lease, at(40))
        .await
        .expect("claim");
    assert_eq!(
        expired.iter().map(|r| r.message.id).collect::<Vec<_>>(),
        vec![msgs[0].id, msgs[1].id]
    );
    assert!(expired.iter().all(|r| r.claimed_by == "b" && r.claims == 2));

    store
        .mark_dispatched(&[msgs[0].id], at(45))
        .await
        .expect("dispatch");
    store
        .mark_dispatched(&[msgs[0].id], at(99))
        .await
        .expect("dispatch again is harmless");
    store
        .mark_dispatched(&[], at(99))
        .await
        .expect("nothing to mark");
    assert_eq!(store.pending_outbox().await.expect("pending"), 2);
    let later = store
        .claim_outbox("c", 10, lease, at(1000))
        .await
        .expect("claim");
    assert_eq!(
        later.iter().map(|r| r.message.id).collect::<Vec<_>>(),
        vec![msgs[1].id, msgs[2].id]
    );
    assert!(
        store
            .claim_outbox("c", 0, lease, at(5000))
            .await
            .expect("claim")
            .is_empty()
    );

    // The first dispatch time is kept: a purge cut between the two marks removes the row.
    let purged = store.purge(at(-1), at(46)).await.expect("purge");
    assert_eq!(purged.outbox, 1);

    // Re-emitting an event with the same id keeps one row.
    let mut again = UnitOfWork::new();
    again.add_outbox(msgs[1].clone());
    store.commit(again).await.expect("re-emit");
    assert_eq!(store.pending_outbox().await.expect("pending"), 2);
}

/// Several claimers racing over the same rows never receive the same row.
pub async fn concurrent_claimers_never_get_the_same_row(store: Arc<dyn Store>) {
    const ROWS: usize = 120;
    let mut uow = UnitOfWork::new();
    for i in 0..ROWS {
        uow.add_outbox(message("w", at(i as i64)));
    }
    store.commit(uow).await.expect("commit");

    let mut tasks = tokio::task::JoinSet::new();
    for claimer in 0..4 {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let rows = store
                    .claim_outbox(
                        &format!("claimer-{claimer}"),
                        7,
                        Duration::from_secs(60),
                        at(1000),
                    )
                    .await
                    .expect("claim");
                if rows.is_empty() {
                    return mine;
                }
                mine.extend(rows.into_iter().map(|r| r.message.id));
            }
        });
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    while let Some(joined) = tasks.join_next().await {
        for id in joined.expect("claimer panicked") {
            total += 1;
            assert!(seen.insert(id), "row {id} was claimed twice");
        }
    }
    assert_eq!(total, ROWS, "every row is claimed exactly once");
}

/// The purge removes inbox rows and keys older than the cut-off and dispatched outbox rows older
/// than theirs — and nothing else (not undispatched rows, not rows at the cut-off).
pub async fn purge_removes_exactly_the_old_rows(store: Arc<dyn Store>) {
    let day = 86_400;
    let mut events = Vec::new();
    for (i, age) in [10 * day, 8 * day, 7 * day, day].into_iter().enumerate() {
        let mut uow = UnitOfWork::new();
        let event = uuid::Uuid::new_v4();
        uow.set_inbox("w", event, at(-age));
        uow.add_idempotency_key("w", &format!("k{i}"), json!(i), at(-age));
        store.commit(uow).await.expect("commit");
        events.push(event);
    }
    let old_dispatched = message("w", at(-3 * day));
    let new_dispatched = message("w", at(-3 * day));
    let old_pending = message("w", at(-30 * day));
    let mut uow = UnitOfWork::new();
    for m in [&old_dispatched, &new_dispatched, &old_pending] {
        uow.add_outbox(m.clone());
    }
    store.commit(uow).await.expect("commit");
    store
        .mark_dispatched(&[old_dispatched.id], at(-2 * 3600))
        .await
        .expect("dispatch");
    store
        .mark_dispatched(&[new_dispatched.id], at(-600))
        .await
        .expect("dispatch");

    let counts = store.purge(at(-7 * day), at(-3600)).await.expect("purge");
    assert_eq!(
        counts,
        PurgeCounts {
            inbox: 2,
            idempotency_keys: 2,
            outbox: 1
        }
    );
    let kept: Vec<bool> = {
        let mut v = Vec::new();
        for e in &events {
            v.push(store.inbox_contains("w", *e).await.expect("inbox"));
        }
        v
    };
    assert_eq!(
        kept,
        [false, false, true, true],
        "rows at the cut-off are kept"
    );
    for (i, present) in [(0, false), (1, false), (2, true), (3, true)] {
        let got = store
            .idempotency_key("w", &format!("k{i}"))
            .await
            .expect("key");
        assert_eq!(got.is_some(), present, "key k{i}");
    }
    assert_eq!(
        store.pending_outbox().await.expect("pending"),
        1,
        "undispatched rows are never purged"
    );
    let again = store.purge(at(-7 * day), at(-3600)).await.expect("purge");
    assert_eq!(again, PurgeCounts::default());
}
