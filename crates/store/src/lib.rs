//! `fleet-store`: Fleet's platform store.
//!
//! Start at [`Store`]: the one trait the runtime and the workers use, held as `Arc<dyn Store>`
//! and obtained from [`open`] with a URL (`sqlite://path/to/file.db`, `sqlite::memory:`,
//! `postgres://…`). It keeps
//!
//! - platform records (the typed structs in [`records`]) as versioned JSON documents, read
//!   through [`StoreExt::get`] / [`StoreExt::list`];
//! - tenant bindings (which tenant owns an environment) for the runtime's tenant guard;
//! - the inbox, idempotency keys and outbox that make delivery exactly-once in effect.
//!
//! Everything a handled message changes goes into one [`UnitOfWork`] and is committed
//! atomically by [`Store::commit`], with optimistic concurrency ([`Expect`]) so replicas sharing
//! a database cannot both win the same update. Two backends implement the trait —
//! [`SqliteStore`] (embedded default) and [`PostgresStore`] (replicas sharing state) — and both
//! pass the same conformance suite.

mod error;
mod migrations;
mod open;
mod postgres;
mod record;
pub mod records;
mod sqlite;
mod store;
mod unit;

#[doc(hidden)]
pub mod conformance;

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use error::{StoreError, StoreErrorKind};
pub use open::{StoreUrl, open, open_unmigrated};
pub use postgres::{PostgresOptions, PostgresStore};
pub use record::{
    Document, EncodedRecord, ObjectWriter, RawRecord, Record, RecordKind, TenantBinding, Versioned,
};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use store::{Store, StoreExt};
pub use unit::{
    Expect, IdempotencyKey, InboxEntry, OutboxMessage, OutboxRow, PurgeCounts, RecordWrite,
    UnitOfWork,
};

/// `now + lease`, or an `Invalid` error naming the lease when it does not fit a timestamp.
pub(crate) fn lease_end(now: DateTime<Utc>, lease: Duration) -> Result<DateTime<Utc>, StoreError> {
    chrono::Duration::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| StoreError::invalid(format!("outbox lease of {lease:?} is too long")))
}
