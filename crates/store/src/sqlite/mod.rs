//! The embedded SQLite backend: a file in WAL mode, one writer thread, pooled readers.

mod ops;
mod threads;
mod write;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::StoreError;
use crate::record::{EncodedRecord, RawRecord, RecordKind, TenantBinding};
use crate::store::Store;
use crate::unit::{OutboxRow, PurgeCounts, UnitOfWork};
use ops::PurgeTarget;
use threads::{Readers, Writer};

/// How many rows one purge transaction deletes at most.
const PURGE_CHUNK: usize = 5_000;

/// SQLite's `synchronous` setting: how often the WAL is flushed to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// Never fsync. Fast; a power loss can corrupt the database.
    Off,
    /// fsync at checkpoints only (the default). A power loss may lose the last commits but never
    /// corrupts the database; a process crash loses nothing.
    #[default]
    Normal,
    /// fsync the WAL on every commit: durable across power loss.
    Full,
    /// Like `Full`, and also fsync the directory after deleting a journal.
    Extra,
}

impl Synchronous {
    /// The pragma value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "OFF",
            Self::Normal => "NORMAL",
            Self::Full => "FULL",
            Self::Extra => "EXTRA",
        }
    }
}

impl FromStr for Synchronous {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(Self::Off),
            "normal" => Ok(Self::Normal),
            "full" => Ok(Self::Full),
            "extra" => Ok(Self::Extra),
            _ => Err(StoreError::invalid(format!(
                "synchronous={s:?} is not one of off, normal, full, extra"
            ))),
        }
    }
}

/// How to open a SQLite store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// The database file; `None` is a private in-memory database (lost when the store drops).
    pub path: Option<PathBuf>,
    /// The `synchronous` pragma; `Normal` unless configured.
    pub synchronous: Synchronous,
    /// Maximum reader connections (file databases only).
    pub readers: usize,
}

impl SqliteOptions {
    /// Options for a database file with the defaults.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            synchronous: Synchronous::Normal,
            readers: 4,
        }
    }

    /// Options for a private in-memory database.
    pub fn memory() -> Self {
        Self {
            path: None,
            synchronous: Synchronous::Normal,
            readers: 0,
        }
    }
}

/// The SQLite backend.
///
/// All writes go through one dedicated thread, in arrival order; reads of a file database use
/// separate connections (WAL lets them run beside the writer). An in-memory database has a
/// single connection, so its reads queue behind writes on the writer thread.
pub struct SqliteStore {
    writer: Writer,
    readers: Option<Arc<Readers>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database. Does not migrate: call [`Store::migrate`].
    pub async fn open(options: SqliteOptions) -> Result<Self, StoreError> {
        let SqliteOptions {
            path,
            synchronous,
            readers,
        } = options;
        tokio::task::spawn_blocking(move || match path {
            Some(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::with_source(
                            crate::StoreErrorKind::Unavailable,
                            format!("sqlite: cannot create directory {}", dir.display()),
                            e,
                        )
                    })?;
                }
                let conn = threads::open_connection(&path, synchronous, false)?;
                let checkpointer = threads::spawn_checkpointer(path.clone(), synchronous)?;
                Ok(Self {
                    writer: Writer::spawn(conn, Some(checkpointer))?,
                    readers: Some(Readers::new(path, synchronous, readers)),
                })
            }
            None => {
                let conn = rusqlite::Connection::open_in_memory()
                    .map_err(|e| ops::sql_err("open in-memory database", e))?;
                threads::configure(&conn, synchronous, false, false)?;
                Ok(Self {
                    writer: Writer::spawn(conn, None)?,
                    readers: None,
                })
            }
        })
        .await
        .map_err(|e| {
            StoreError::with_source(
                crate::StoreErrorKind::Internal,
                "sqlite: open task failed",
                e,
            )
        })?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.readers {
            Some(readers) => readers.run(f).await,
            None => self.writer.run(move |conn| f(conn)).await,
        }
    }

    async fn purge_table(
        &self,
        target: PurgeTarget,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            // One writer job per chunk: other commits interleave between chunks.
            let n = self
                .writer
                .run(move |conn| ops::purge_chunk(conn, target, before, PURGE_CHUNK))
                .await?;
            total += n;
            if n < PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.writer.run(ops::migrate).await
    }

    async fn put_tenant_binding(&self, b: &TenantBinding) -> Result<(), StoreError> {
        let b = b.clone();
        self.writer
            .run(move |c| ops::put_tenant_binding(c, &b))
            .await
    }

    async fn tenant_binding(
        &self,
        environment_id: &str,
    ) -> Result<Option<TenantBinding>, StoreError> {
        let env = environment_id.to_string();
        self.read(move |c| ops::tenant_binding(c, &env)).await
    }

    async fn inbox_contains(&self, worker: &str, event_id: Uuid) -> Result<bool, StoreError> {
        let worker = worker.to_string();
        self.read(move |c| ops::inbox_contains(c, &worker, event_id))
            .await
    }

    async fn idempotency_key(
        &self,
        worker: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let (worker, key) = (worker.to_string(), key.to_string());
        self.read(move |c| ops::idempotency_key(c, &worker, &key))
            .await
    }

    async fn get_raw(
        &self,
        kind: RecordKind,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<RawRecord>, StoreError> {
        let (tenant, id) = (tenant_id.to_string(), id.to_string());
        self.read(move |c| ops::get_encoded(c, kind, &tenant, &id))
            .await?
            .map(EncodedRecord::into_raw)
            .transpose()
    }

    async fn get_encoded(
        &self,
        kind: RecordKind,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<EncodedRecord>, StoreError> {
        let (tenant, id) = (tenant_id.to_string(), id.to_string());
        self.read(move |c| ops::get_encoded(c, kind, &tenant, &id))
            .await
    }

    async fn list_raw(
        &self,
        kind: RecordKind,
        tenant_id: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<Vec<RawRecord>, StoreError> {
        let tenant = tenant_id.map(str::to_string);
        let env = environment_id.map(str::to_string);
        self.read(move |c| ops::list_encoded(c, kind, tenant.as_deref(), env.as_deref()))
            .await?
            .into_iter()
            .map(EncodedRecord::into_raw)
            .collect()
    }

    async fn list_encoded(
        &self,
        kind: RecordKind,
        tenant_id: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<Vec<EncodedRecord>, StoreError> {
        let tenant = tenant_id.map(str::to_string);
        let env = environment_id.map(str::to_string);
        self.read(move |c| ops::list_encoded(c, kind, tenant.as_deref(), env.as_deref()))
            .await
    }

    async fn commit(&self, uow: UnitOfWork) -> Result<(), StoreError> {
        if uow.is_empty() {
            return Ok(());
        }
        self.writer.commit(uow).await
    }

    async fn commit_many(&self, uows: Vec<UnitOfWork>) -> Vec<Result<(), StoreError>> {
        if uows.is_empty() {
            return Vec::new();
        }
        let n = uows.len();
        match self
            .writer
            .run(move |c| Ok(ops::commit_many(c, &uows)))
            .await
        {
            Ok(results) => results,
            Err(err) => (0..n).map(|_| Err(err.flattened())).collect(),
        }
    }

    async fn claim_outbox(
        &self,
        claimer: &str,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let until = crate::lease_end(now, lease)?;
        let claimer = claimer.to_string();
        self.writer
            .run(move |c| ops::claim_outbox(c, &claimer, limit, until, now))
            .await
    }

    async fn mark_dispatched(&self, ids: &[Uuid], now: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        self.writer
            .run(move |c| ops::mark_dispatched(c, &ids, now))
            .await
    }

    async fn pending_outbox(&self) -> Result<u64, StoreError> {
        self.read(ops::pending_outbox).await
    }

    async fn purge(
        &self,
        inbox_before: DateTime<Utc>,
        outbox_dispatched_before: DateTime<Utc>,
    ) -> Result<PurgeCounts, StoreError> {
        Ok(PurgeCounts {
            inbox: self.purge_table(PurgeTarget::Inbox, inbox_before).await?,
            idempotency_keys: self
                .purge_table(PurgeTarget::IdempotencyKeys, inbox_before)
                .await?,
            outbox: self
                .purge_table(PurgeTarget::Outbox, outbox_dispatched_before)
                .await?,
        })
    }
}
