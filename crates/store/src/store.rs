//! The `Store` port and its typed extension.

use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::StoreError;
use crate::record::{EncodedRecord, RawRecord, Record, RecordKind, TenantBinding, Versioned};
use crate::unit::{OutboxRow, PurgeCounts, UnitOfWork};

/// The platform store: records, tenant bindings, inbox, idempotency keys and outbox.
///
/// Both backends ([`crate::SqliteStore`], [`crate::PostgresStore`]) pass the same conformance
/// suite; callers hold an `Arc<dyn Store>` and never know which one they have.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates or upgrades the schema. Idempotent, and safe to run from several processes at
    /// once.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Inserts or replaces the binding of `b.environment_id`.
    async fn put_tenant_binding(&self, b: &TenantBinding) -> Result<(), StoreError>;

    /// The binding of an environment, if any.
    async fn tenant_binding(
        &self,
        environment_id: &str,
    ) -> Result<Option<TenantBinding>, StoreError>;

    /// True when `worker` has already committed a unit for `event_id`.
    async fn inbox_contains(&self, worker: &str, event_id: Uuid) -> Result<bool, StoreError>;

    /// The outcome recorded under an idempotency key, if the key exists.
    async fn idempotency_key(
        &self,
        worker: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError>;

    /// One record, undecoded.
    async fn get_raw(
        &self,
        kind: RecordKind,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<RawRecord>, StoreError>;

    /// Records of a kind, optionally narrowed to a tenant and/or an environment, ordered by
    /// (tenant, id).
    async fn list_raw(
        &self,
        kind: RecordKind,
        tenant_id: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<Vec<RawRecord>, StoreError>;

    /// One record with its document still encoded, for decoding straight into a typed record.
    /// The default goes through [`Store::get_raw`]; the backends read the stored text directly.
    async fn get_encoded(
        &self,
        kind: RecordKind,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<EncodedRecord>, StoreError> {
        Ok(self
            .get_raw(kind, tenant_id, id)
            .await?
            .map(EncodedRecord::from))
    }

    /// [`Store::list_raw`] with the documents still encoded: the same records in the same order,
    /// for decoding straight into typed records ([`StoreExt::list`]). The default goes through
    /// `list_raw`; the backends read the stored text directly.
    async fn list_encoded(
        &self,
        kind: RecordKind,
        tenant_id: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<Vec<EncodedRecord>, StoreError> {
        Ok(self
            .list_raw(kind, tenant_id, environment_id)
            .await?
            .into_iter()
            .map(EncodedRecord::from)
            .collect())
    }

    /// Commits the unit atomically: all or nothing. Fails with kind `Conflict` when an
    /// [`crate::Expect`] does not hold or an idempotency key exists, and with `DuplicateInbox`
    /// when the inbox row exists (the event was already handled, perhaps by another replica).
    async fn commit(&self, uow: UnitOfWork) -> Result<(), StoreError>;

    /// Group commit: one durable transaction for all units, each unit atomic on its own (a
    /// failing unit is rolled back to its savepoint and the others still commit). Results are in
    /// the order of `uows`.
    async fn commit_many(&self, uows: Vec<UnitOfWork>) -> Vec<Result<(), StoreError>>;

    /// Claims up to `limit` outbox rows that are not dispatched and not under a live claim,
    /// oldest first, leasing them to `claimer` until `now + lease`. Two claimers never hold the
    /// same row at the same time.
    async fn claim_outbox(
        &self,
        claimer: &str,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboxRow>, StoreError>;

    /// Marks rows as published. Rows already dispatched keep their first dispatch time.
    async fn mark_dispatched(&self, ids: &[Uuid], now: DateTime<Utc>) -> Result<(), StoreError>;

    /// How many outbox rows are not yet dispatched.
    async fn pending_outbox(&self) -> Result<u64, StoreError>;

    /// Janitor: removes inbox rows received and idempotency keys created before `inbox_before`,
    /// and outbox rows dispatched before `outbox_dispatched_before`. Undispatched outbox rows are
    /// never purged.
    async fn purge(
        &self,
        inbox_before: DateTime<Utc>,
        outbox_dispatched_before: DateTime<Utc>,
    ) -> Result<PurgeCounts, StoreError>;
}

/// Typed record access over any [`Store`], including `dyn Store`.
#[async_trait::async_trait]
pub trait StoreExt: Store {
    /// One record, decoded.
    async fn get<R: Record>(
        &self,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<Versioned<R>>, StoreError> {
        match self.get_encoded(R::KIND, tenant_id, id).await? {
            Some(encoded) => encoded.decode().map(Some),
            None => Ok(None),
        }
    }

    /// Records of `R`'s kind in a tenant, optionally narrowed to an environment.
    async fn list<R: Record>(
        &self,
        tenant_id: &str,
        environment_id: Option<&str>,
    ) -> Result<Vec<Versioned<R>>, StoreError> {
        self.list_encoded(R::KIND, Some(tenant_id), environment_id)
            .await?
            .iter()
            .map(EncodedRecord::decode)
            .collect()
    }

    /// Records of `R`'s kind across all tenants (for control loops that sweep every tenant's
    /// records), optionally narrowed to an environment.
    async fn list_all<R: Record>(
        &self,
        environment_id: Option<&str>,
    ) -> Result<Vec<Versioned<R>>, StoreError> {
        self.list_encoded(R::KIND, None, environment_id)
            .await?
            .iter()
            .map(EncodedRecord::decode)
            .collect()
    }
}

impl<S: Store + ?Sized> StoreExt for S {}
