//! PostgreSQL statements for records and the outbox (the unit of work is in `unit.rs`).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::pg_err;
use super::pool::Stmts;
use crate::error::StoreError;
use crate::record::{Document, EncodedRecord};
use crate::unit::{OutboxMessage, OutboxRow};

/// Decodes a row of `kind, tenant_id, environment_id, id, version, body::text, updated_at`.
pub(crate) fn decode_record(row: &Row) -> Result<EncodedRecord, StoreError> {
    let kind: &str = row.try_get(0).map_err(|e| pg_err("decode record", e))?;
    Ok(EncodedRecord {
        kind: kind.parse()?,
        tenant_id: row.try_get(1).map_err(|e| pg_err("decode record", e))?,
        environment_id: row.try_get(2).map_err(|e| pg_err("decode record", e))?,
        id: row.try_get(3).map_err(|e| pg_err("decode record", e))?,
        version: row.try_get(4).map_err(|e| pg_err("decode record", e))?,
        body: Document::stored(row.try_get(5).map_err(|e| pg_err("decode record", e))?),
        updated_at: row.try_get(6).map_err(|e| pg_err("decode record", e))?,
    })
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
             RETURNING o.id, o.worker, o.destination, o.body, o.content_type, o.properties::text,
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
                    properties: Document::stored(r.try_get(5)?),
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
