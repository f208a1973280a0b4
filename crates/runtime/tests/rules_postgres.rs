//! The rules where replicas share state (4, 6, 10), on PostgreSQL: each test gets its own
//! schema. Without `FLEET_TEST_POSTGRES_URL` they print `SKIPPED (set FLEET_TEST_POSTGRES_URL)`
//! and pass; with it pointing at no server they fail.

mod common;

use common::scenarios;
use common::*;
use fleet_testkit::Harness;

async fn harness() -> Option<Harness> {
    let h = Harness::postgres(WORKER, &[INPUT])
        .await
        .expect("PostgreSQL harness")?;
    h.bind_tenant(ENVIRONMENT, TENANT).await.expect("bind");
    Some(h)
}

#[tokio::test]
async fn rule_4_duplicate_delivery_runs_once_across_two_replicas_on_postgres() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let Some(h) = harness().await else { return };
        scenarios::duplicate_delivery_runs_once_across_replicas(&h).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn rule_6_crash_after_commit_publishes_outbox_once_with_same_ids_on_postgres() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let Some(h) = harness().await else { return };
        scenarios::crash_after_commit_publishes_outbox_once(&h).await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn rule_10_timer_window_runs_once_across_two_replicas_on_postgres() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let Some(h) = harness().await else { return };
        scenarios::timer_window_runs_once_across_replicas(&h).await;
    })
    .await
    .expect("test timed out");
}
