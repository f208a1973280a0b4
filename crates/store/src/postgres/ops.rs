//! PostgreSQL statements for the unit of work and the outbox. Every statement is written so it
//! is safe under READ COMMITTED with concurrent replicas: inserts use `ON CONFLICT DO NOTHING`
//! (a concurrent insert of the same key waits for the other transaction, then reports zero
//! rows), updates carry their version in the `WHERE` clause (re-checked after a concurrent
//! update commits), and claims use `FOR UPDATE SKIP LOCKED`.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::pg_err;
use super::pool::Stmts;
use crate::error::StoreError;
use crate::record::RawRecord;
use crate::unit::{Expect, OutboxMessage, OutboxRow, RecordWrite, UnitOfWork, messages};

pub(crate) fn decode_record(row: &Row) -> Result<RawRecord, StoreError> {
    let kind: String = row.try_get(0).map_err(|e| pg_err("decode record", e))?;
    Ok(RawRecord {
        kind: kind.parse()?,
        tenant_id: row.try_get(1).map_err(|e| pg_err("decode record", e))?,
        environment_id: row.try_get(2).map_err(|e| pg_err("decode record", e))?,
        id: row.try_get(3).map_err(|e| pg_err("decode record", e))?,
        version: row.try_get(4).map_err(|e| pg_err("decode record", e))?,
        body: row.try_get(5).map_err(|e| pg_err("decode record", e))?,
        updated_at: row.try_get(6).map_err(|e| pg_err("decode record", e))?,
    })
}

/// Applies one unit inside the caller's transaction or savepoint; the caller rolls back on
/// error.
pub(crate) async fn apply_unit(
    c: &impl GenericClient,
    stmts: &mut Stmts,
    uow: &UnitOfWork,
) -> Result<(), StoreError> {
    if let Some(entry) = &uow.inbox {
        let stmt = stmts
            .get(
                c,
                "INSERT INTO inbox (worker, event_id, received_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .await?;
        let inserted = c
            .execute(&stmt, &[&entry.worker, &entry.event_id, &entry.received_at])
            .await
            .map_err(|e| pg_err("insert inbox row", e))?;
        if inserted == 0 {
            return Err(messages::duplicate_inbox(entry));
        }
    }
    let now = Utc::now();
    for write in &uow.writes {
        apply_write(c, stmts, write, now).await?;
    }
    for key in &uow.idempotency_keys {
        let stmt = stmts
            .get(
                c,
                "INSERT INTO idempotency_keys (worker, key, outcome, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .await?;
        let inserted = c
            .execute(
                &stmt,
                &[&key.worker, &key.key, &key.outcome, &key.created_at],
            )
            .await
            .map_err(|e| pg_err("insert idempotency key", e))?;
        if inserted == 0 {
            return Err(messages::duplicate_key(key));
        }
    }
    for m in &uow.outbox {
        let stmt = stmts
            .get(
                c,
                "INSERT INTO outbox (id, worker, destination, body, content_type, properties, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .await?;
        c.execute(
            &stmt,
            &[
                &m.id,
                &m.worker,
                &m.destination,
                &m.body,
                &m.content_type,
                &m.properties,
                &m.created_at,
            ],
        )
        .await
        .map_err(|e| pg_err("insert outbox row", e))?;
    }
    Ok(())
}

async fn apply_write(
    c: &impl GenericClient,
    stmts: &mut Stmts,
    w: &RecordWrite,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let kind = w.kind.as_str();
    let changed = match (&w.body, w.expect) {
        (Some(body), Expect::Absent) => {
            let stmt = stmts
                .get(
                    c,
                    "INSERT INTO records (kind, tenant_id, id, environment_id, version, body, updated_at)
                     VALUES ($1, $2, $3, $4, 1, $5, $6) ON CONFLICT DO NOTHING",
                )
                .await?;
            c.execute(&stmt, &[&kind, &w.tenant_id, &w.id, &w.environment_id, body, &now])
                .await
        }
        (Some(body), Expect::Version(v)) => {
            let stmt = stmts
                .get(
                    c,
                    "UPDATE records SET environment_id = $4, version = version + 1, body = $5,
                         updated_at = $6
                     WHERE kind = $1 AND tenant_id = $2 AND id = $3 AND version = $7",
                )
                .await?;
            c.execute(&stmt, &[&kind, &w.tenant_id, &w.id, &w.environment_id, body, &now, &v])
                .await
        }
        (Some(body), Expect::Any) => {
            let stmt = stmts
                .get(
                    c,
                    "INSERT INTO records (kind, tenant_id, id, environment_id, version, body, updated_at)
                     VALUES ($1, $2, $3, $4, 1, $5, $6)
                     ON CONFLICT (kind, tenant_id, id) DO UPDATE SET
                         environment_id = excluded.environment_id, version = records.version + 1,
                         body = excluded.body, updated_at = excluded.updated_at",
                )
                .await?;
            c.execute(&stmt, &[&kind, &w.tenant_id, &w.id, &w.environment_id, body, &now])
                .await
        }
        (None, Expect::Absent) => {
            let stmt = stmts
                .get(c, "SELECT 1 FROM records WHERE kind = $1 AND tenant_id = $2 AND id = $3")
                .await?;
            // Absence holds exactly when nothing exists: report it as "one row as expected".
            c.query_opt(&stmt, &[&kind, &w.tenant_id, &w.id])
                .await
                .map(|row| u64::from(row.is_none()))
        }
        (None, Expect::Version(v)) => {
            let stmt = stmts
                .get(
                    c,
                    "DELETE FROM records WHERE kind = $1 AND tenant_id = $2 AND id = $3 AND version = $4",
                )
                .await?;
            c.execute(&stmt, &[&kind, &w.tenant_id, &w.id, &v]).await
        }
        (None, Expect::Any) => {
            let stmt = stmts
                .get(c, "DELETE FROM records WHERE kind = $1 AND tenant_id = $2 AND id = $3")
                .await?;
            c.execute(&stmt, &[&kind, &w.tenant_id, &w.id]).await.map(|_| 1)
        }
    }
    .map_err(|e| pg_err("write record", e))?;
    if changed == 0 {
        return Err(messages::write_conflict(w));
    }
    Ok(())
}

pub(crate) async fn claim_outbox(
    c: &impl GenericClient,
    stmts: &mut Stmts,
    claimer: &str,
    limit: i64,
    claimed_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<OutboxRow>, StoreError> {
    // SKIP LOCKED: a row another claimer is taking right now is left to it rather than waited
    // for; the claim condition is re-checked on rows that were updated concurrently.
    let stmt = stmts
        .get(
            c,
            "UPDATE outbox o SET claimed_by = $1, claimed_until = $2, claims = o.claims + 1
             FROM (SELECT id FROM outbox
                   WHERE dispatched_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $3)
                   ORDER BY created_at, id LIMIT $4
                   FOR UPDATE SKIP LOCKED) pending
             WHERE o.id = pending.id
             RETURNING o.id, o.worker, o.destination, o.body, o.content_type, o.properties,
                       o.created_at, o.claimed_by, o.claimed_until, o.claims",
        )
        .await?;
    let rows = c
        .query(&stmt, &[&claimer, &claimed_until, &now, &limit])
        .await
        .map_err(|e| pg_err("claim outbox rows", e))?;
    let mut claimed = rows
        .iter()
        .map(|r| -> Result<OutboxRow, tokio_postgres::Error> {
            Ok(OutboxRow {
                message: OutboxMessage {
                    id: r.try_get(0)?,
                    worker: r.try_get(1)?,
                    destination: r.try_get(2)?,
                    body: r.try_get(3)?,
                    content_type: r.try_get(4)?,
                    properties: r.try_get(5)?,
                    created_at: r.try_get(6)?,
                },
                claimed_by: r.try_get(7)?,
                claimed_until: r.try_get(8)?,
                claims: r.try_get(9)?,
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pg_err("decode outbox row", e))?;
    claimed.sort_by(|a, b| {
        (a.message.created_at, a.message.id).cmp(&(b.message.created_at, b.message.id))
    });
    Ok(claimed)
}

pub(crate) async fn mark_dispatched(
    c: &impl GenericClient,
    stmts: &mut Stmts,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let stmt = stmts
        .get(
            c,
            "UPDATE outbox SET dispatched_at = $1 WHERE id = ANY($2) AND dispatched_at IS NULL",
        )
        .await?;
    c.execute(&stmt, &[&now, &ids])
        .await
        .map_err(|e| pg_err("mark dispatched", e))?;
    Ok(())
}

/// Which table a purge chunk deletes from, with its statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PurgeTarget {
    Inbox,
    IdempotencyKeys,
    Outbox,
}

impl PurgeTarget {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Self::Inbox => {
                "DELETE FROM inbox WHERE (worker, event_id) IN
                     (SELECT worker, event_id FROM inbox WHERE received_at < $1 LIMIT $2)"
            }
            Self::IdempotencyKeys => {
                "DELETE FROM idempotency_keys WHERE (worker, key) IN
                     (SELECT worker, key FROM idempotency_keys WHERE created_at < $1 LIMIT $2)"
            }
            Self::Outbox => {
                "DELETE FROM outbox WHERE id IN
                     (SELECT id FROM outbox WHERE dispatched_at < $1 LIMIT $2)"
            }
        }
    }
}
