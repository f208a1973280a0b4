//! The conformance suite: every behaviour a [`Store`] backend promises, written once and run
//! against each backend by `tests/sqlite.rs` and `tests/postgres.rs` through
//! [`store_conformance_tests!`](crate::store_conformance_tests). Cases panic on failure, like
//! tests do; each expects a freshly migrated, empty store.

mod outbox;
mod records;
mod units;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use crate::{OutboxMessage, Store, UnitOfWork};

pub use outbox::*;
pub use records::*;
pub use units::*;

/// A store under test plus what it takes to clean it up.
pub struct Harness {
    /// The store, migrated and empty.
    pub store: Arc<dyn Store>,
    cleanup: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    _keep: Option<Box<dyn Any + Send>>,
}

impl Harness {
    /// A harness around `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cleanup: None,
            _keep: None,
        }
    }

    /// Runs `cleanup` when the case passed (e.g. dropping a throw-away schema).
    pub fn with_cleanup(mut self, cleanup: impl Future<Output = ()> + Send + 'static) -> Self {
        self.cleanup = Some(Box::pin(cleanup));
        self
    }

    /// Keeps `value` (e.g. a temporary directory) alive as long as the harness.
    pub fn keep(mut self, value: impl Any + Send) -> Self {
        self._keep = Some(Box::new(value));
        self
    }

    /// Runs the cleanup.
    pub async fn finish(mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup.await;
        }
    }
}

/// Generates one `#[tokio::test]` per conformance case. `$harness` is an async fn returning
/// `Option<Harness>`; `None` skips the case (the harness prints why).
#[macro_export]
macro_rules! store_conformance_tests {
    ($harness:path) => {
        $crate::store_conformance_tests!(@cases $harness;
            migrate_twice_is_fine,
            tenant_binding_round_trip,
            records_put_get_list_with_versions,
            typed_records_round_trip,
            encoded_reads_match_raw_reads,
            many_inserts_in_one_unit_behave_like_one_after_another,
            expect_absent_conflicts_when_the_record_exists,
            expect_version_conflicts_when_stale,
            expect_any_upserts,
            delete_honours_expectations,
            conflicting_write_leaves_the_whole_unit_unwritten,
            duplicate_inbox_is_reported_and_writes_nothing,
            idempotency_key_lookup_and_duplicate,
            outbox_claim_lease_expiry_and_dispatch,
            concurrent_claimers_never_get_the_same_row,
            commit_many_isolates_failing_units,
            commit_many_detects_duplicates_within_the_batch,
            concurrent_commits_have_one_winner_per_version,
            concurrent_duplicate_deliveries_commit_once,
            purge_removes_exactly_the_old_rows,
        );
    };
    (@cases $harness:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(harness) = $harness().await else { return };
                let store = ::std::sync::Arc::clone(&harness.store);
                ::tokio::time::timeout(
                    ::std::time::Duration::from_secs(60),
                    $crate::conformance::$case(store),
                )
                .await
                .expect(concat!(stringify!($case), " did not finish within 60 s"));
                harness.finish().await;
            }
        )*
    };
}

/// The suite's fixed "now": cases pass time explicitly instead of reading a clock.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .expect("a valid fixed time")
}

/// `t0 + secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

/// A unit carrying only an inbox row for `worker` and a fresh event id.
pub fn unit(worker: &str) -> (UnitOfWork, Uuid) {
    let event = Uuid::new_v4();
    let mut uow = UnitOfWork::new();
    uow.set_inbox(worker, event, t0());
    (uow, event)
}

/// An outbox message with a fresh id, created at `created_at`.
pub fn message(worker: &str, created_at: DateTime<Utc>) -> OutboxMessage {
    OutboxMessage {
        id: Uuid::new_v4(),
        worker: worker.to_string(),
        destination: "runtime-events".to_string(),
        body: br#"{"eventType":"RuntimeInventoryUpdated"}"#.to_vec(),
        content_type: "application/json".to_string(),
        properties: crate::Document::from(serde_json::json!({"tenantId": "t1", "eventVersion": 1})),
        created_at,
    }
}
