//! The PostgreSQL backend: replicas sharing one database through a small connection pool.

mod config;
mod migrate;
mod ops;
mod pool;
mod unit;

pub use config::PostgresOptions;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use crate::error::{StoreError, StoreErrorKind};
use crate::record::{EncodedRecord, RawRecord, RecordKind, TenantBinding};
use crate::store::Store;
use crate::unit::{OutboxRow, PurgeCounts, UnitOfWork};
use ops::PurgeTarget;
use pool::Pool;

/// How many rows one purge statement deletes at most.
const PURGE_CHUNK: i64 = 5_000;

/// Maps a driver error onto the store's kinds. Connection loss, serialization failures,
/// deadlocks and server shutdowns are transient.
pub(crate) fn pg_err(context: &str, err: tokio_postgres::Error) -> StoreError {
    let kind = match err.code() {
        Some(code) => {
            let class = &code.code()[..2];
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::QUERY_CANCELED
                || matches!(class, "08" | "53" | "57" | "58")
            {
                StoreErrorKind::Unavailable
            } else if *code == SqlState::UNIQUE_VIOLATION {
                StoreErrorKind::Conflict
            } else if class == "28" {
                StoreErrorKind::Invalid
            } else if class == "22" {
                StoreErrorKind::Corrupt
            } else {
                StoreErrorKind::Internal
            }
        }
        None if err.to_string().contains("deserializ") => StoreErrorKind::Corrupt,
        None => StoreErrorKind::Unavailable,
    };
    StoreError::with_source(kind, format!("postgres: {context}"), err)
}

/// The PostgreSQL backend.
pub struct PostgresStore {
    pool: Arc<Pool>,
    schema: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects (one connection up front, so a wrong address fails here). Does not migrate:
    /// call [`Store::migrate`].
    pub async fn connect(options: PostgresOptions) -> Result<Self, StoreError> {
        options.validate()?;
        let pool = Pool::new(options.config, options.schema.clone(), options.pool_size);
        drop(pool.get().await?);
        Ok(Self {
            pool,
            schema: options.schema,
        })
    }

    /// The schema the store lives in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Drops the store's schema and everything in it. For tests and tooling that create
    /// throw-away schemas; refuses to drop `public`.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        if self.schema == "public" {
            return Err(StoreError::invalid("refusing to drop schema \"public\""));
        }
        let conn = self.pool.get().await?;
        conn.client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ))
            .await
            .map_err(|e| pg_err("drop schema", e))
    }

    async fn purge_table(
        &self,
        target: PurgeTarget,
        before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        let stmt = stmts.get(client, target.sql()).await?;
        let mut total = 0;
        loop {
            // Each chunk is its own short transaction, so a large purge never holds many locks.
            let n = client
                .execute(&stmt, &[&before, &PURGE_CHUNK])
                .await
                .map_err(|e| pg_err("purge", e))?;
            total += n;
            if n < PURGE_CHUNK as u64 {
                return Ok(total);
            }
        }
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        migrate::migrate(&mut conn.client, &self.schema).await
    }

    async fn put_tenant_binding(&self, b: &TenantBinding) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        let stmt = stmts
            .get(
                client,
                "INSERT INTO tenant_bindings (environment_id, tenant_id, targets, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (environment_id) DO UPDATE SET tenant_id = excluded.tenant_id,
                     targets = excluded.targets, updated_at = excluded.updated_at",
            )
            .await?;
        client
            .execute(
                &stmt,
                &[&b.environment_id, &b.tenant_id, &b.targets, &Utc::now()],
            )
            .await
            .map_err(|e| pg_err("put tenant binding", e))?;
        Ok(())
    }

    async fn tenant_binding(
        &self,
        environment_id: &str,
    ) -> Result<Option<TenantBinding>, StoreError> {
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        let stmt = stmts
            .get(
                client,
                "SELECT tenant_id, targets FROM tenant_bindings WHERE environment_id = $1",
            )
            .await?;
        let row = client
            .query_opt(&stmt, &[&environment_id])
            .await
            .map_err(|e| pg_err("read tenant binding", e))?;
        row.map(|r| {
            Ok(TenantBinding {
                environment_id: environment_id.to_string(),
                tenant_id: r
                    .try_get(0)
                    .map_err(|e| pg_err("decode tenant binding", e))?,
                targets: r
                    .try_get(1)
                    .map_err(|e| pg_err("decode tenant binding", e))?,
            })
        })
        .transpose()
    }

    async fn inbox_contains(&self, worker: &str, event_id: Uuid) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        let stmt = stmts
            .get(
                client,
                "SELECT 1 FROM inbox WHERE worker = $1 AND event_id = $2",
            )
            .await?;
        let row = client
            .query_opt(&stmt, &[&worker, &event_id])
            .await
            .map_err(|e| pg_err("read inbox", e))?;
        Ok(row.is_some())
    }

    async fn idempotency_key(
        &self,
        worker: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        let stmt = stmts
            .get(
                client,
                "SELECT outcome FROM idempotency_keys WHERE worker = $1 AND key = $2",
            )
            .await?;
        let row = client
            .query_opt(&stmt, &[&worker, &key])
            .await
            .map_err(|e| pg_err("read idempotency key", e))?;
        row.map(|r| {
            r.try_get(0)
                .map_err(|e| pg_err("decode idempotency key", e))
        })
        .transpose()
    }

    async fn get_raw(
        &self,
        kind: RecordKind,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<RawRecord>, StoreError> {
        self.get_encoded(kind, tenant_id, id)
            .await?
            .map(EncodedRecord::into_raw)
            .transpose()
    }

    async fn list_raw(
        &self,
        kind: RecordKind,
        tenant_id: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<Vec<RawRecord>, StoreError> {
        self.list_encoded(kind, tenant_id, environment_id)
            .await?
            .into_iter()
            .map(EncodedRecord::into_raw)
            .collect()
    }

    async fn get_encoded(
        &self,
        kind: RecordKind,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<EncodedRecord>, StoreError> {
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        // `body::text`: the document comes back as text and is decoded once, by the caller.
        let stmt = stmts
            .get(
                client,
                "SELECT kind, tenant_id, environment_id, id, version, body::text, updated_at
                 FROM records WHERE kind = $1 AND tenant_id = $2 AND id = $3",
            )
            .await?;
        let row = client
            .query_opt(&stmt, &[&kind.as_str(), &tenant_id, &id])
            .await
            .map_err(|e| pg_err("read record", e))?;
        row.as_ref().map(ops::decode_record).transpose()
    }

    async fn list_encoded(
        &self,
        kind: RecordKind,
        tenant_id: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<Vec<EncodedRecord>, StoreError> {
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        let stmt = stmts
            .get(
                client,
                "SELECT kind, tenant_id, environment_id, id, version, body::text, updated_at
                 FROM records WHERE kind = $1
                   AND ($2::text IS NULL OR tenant_id = $2) AND ($3::text IS NULL OR environment_id = $3)
                 ORDER BY tenant_id, id",
            )
            .await?;
        let rows = client
            .query(&stmt, &[&kind.as_str(), &tenant_id, &environment_id])
            .await
            .map_err(|e| pg_err("list records", e))?;
        rows.iter().map(ops::decode_record).collect()
    }

    async fn commit(&self, uow: UnitOfWork) -> Result<(), StoreError> {
        if uow.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        let statements = stmts.unit(client).await?;
        let tx = client.transaction().await.map_err(|e| pg_err("begin", e))?;
        match unit::apply_unit(&tx, &statements, &uow).await {
            Ok(()) => tx.commit().await.map_err(|e| pg_err("commit", e)),
            Err(err) => {
                // The unit's error is the news; a failed rollback also closes the transaction.
                let _ = tx.rollback().await;
                Err(err)
            }
        }
    }

    async fn commit_many(&self, uows: Vec<UnitOfWork>) -> Vec<Result<(), StoreError>> {
        if uows.is_empty() {
            return Vec::new();
        }
        let fail_all = |err: StoreError| -> Vec<Result<(), StoreError>> {
            uows.iter().map(|_| Err(err.flattened())).collect()
        };
        let mut conn = match self.pool.get().await {
            Ok(conn) => conn,
            Err(err) => return fail_all(err),
        };
        let pool::Conn { client, stmts } = &mut *conn;
        let statements = match stmts.unit(client).await {
            Ok(s) => s,
            Err(err) => return fail_all(err),
        };

        // Fast path: every unit in one pipeline, one transaction.
        let tx = match client.transaction().await {
            Ok(tx) => tx,
            Err(e) => return fail_all(pg_err("begin", e)),
        };
        match unit::apply_all(&tx, &statements, &uows).await {
            Ok(()) => {
                return match tx.commit().await {
                    Ok(()) => uows.iter().map(|_| Ok(())).collect(),
                    Err(e) => fail_all(pg_err("commit", e)),
                };
            }
            Err(err) if err.is_transient() => {
                let _ = tx.rollback().await;
                return fail_all(err);
            }
            Err(_) => {
                if let Err(e) = tx.rollback().await {
                    return fail_all(pg_err("roll back", e));
                }
            }
        }

        // Some unit failed a check: replay one savepoint per unit to find out which.
        let mut tx = match client.transaction().await {
            Ok(tx) => tx,
            Err(e) => return fail_all(pg_err("begin", e)),
        };
        let mut results = Vec::with_capacity(uows.len());
        for uow in &uows {
            let sp = match tx.savepoint("unit").await {
                Ok(sp) => sp,
                Err(e) => return fail_all(pg_err("savepoint", e)),
            };
            match unit::apply_unit(&sp, &statements, uow).await {
                Ok(()) => {
                    if let Err(e) = sp.commit().await {
                        return fail_all(pg_err("release savepoint", e));
                    }
                    results.push(Ok(()));
                }
                Err(err) => {
                    if let Err(e) = sp.rollback().await {
                        return fail_all(pg_err("roll back savepoint", e));
                    }
                    results.push(Err(err));
                }
            }
        }
        match tx.commit().await {
            Ok(()) => results,
            Err(e) => fail_all(pg_err("commit", e)),
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
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        ops::claim_outbox(client, stmts, claimer, limit, until, now).await
    }

    async fn mark_dispatched(&self, ids: &[Uuid], now: DateTime<Utc>) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        ops::mark_dispatched(client, stmts, ids, now).await
    }

    async fn pending_outbox(&self) -> Result<u64, StoreError> {
        let mut conn = self.pool.get().await?;
        let pool::Conn { client, stmts } = &mut *conn;
        let stmt = stmts
            .get(
                client,
                "SELECT COUNT(*) FROM outbox WHERE dispatched_at IS NULL",
            )
            .await?;
        let n: i64 = client
            .query_one(&stmt, &[])
            .await
            .and_then(|r| r.try_get(0))
            .map_err(|e| pg_err("count pending outbox rows", e))?;
        Ok(u64::try_from(n).unwrap_or_default())
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
