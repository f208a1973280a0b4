//! SQLite writes: the unit of work, group commit, outbox claims and the purge. Everything here
//! runs on the writer thread.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, TransactionBehavior, params};
use uuid::Uuid;

use super::ops::{micros, sql_err, time, to_text, uuid};
use crate::error::StoreError;
use crate::record::Document;
use crate::unit::{Expect, OutboxMessage, OutboxRow, RecordWrite, UnitOfWork, messages};

/// Applies one unit inside the caller's transaction or savepoint. On error the caller rolls
/// back, so a partial application is never visible.
pub(crate) fn apply_unit(conn: &Connection, uow: &UnitOfWork) -> Result<(), StoreError> {
    if let Some(entry) = &uow.inbox {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO inbox (worker, event_id, received_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    entry.worker,
                    entry.event_id.to_string(),
                    micros(entry.received_at)
                ])
            })
            .map_err(|e| sql_err("insert inbox row", e))?;
        if inserted == 0 {
            return Err(messages::duplicate_inbox(entry));
        }
    }
    let now = micros(Utc::now());
    for write in &uow.writes {
        apply_write(conn, write, now)?;
    }
    for key in &uow.idempotency_keys {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO idempotency_keys (worker, key, outcome, created_at)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key.worker,
                    key.key,
                    to_text(&key.outcome),
                    micros(key.created_at)
                ])
            })
            .map_err(|e| sql_err("insert idempotency key", e))?;
        if inserted == 0 {
            return Err(messages::duplicate_key(key));
        }
    }
    for m in &uow.outbox {
        conn.prepare_cached(
            "INSERT INTO outbox (id, worker, destination, body, content_type, properties, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                m.id.to_string(),
                m.worker,
                m.destination,
                m.body,
                m.content_type,
                m.properties.as_str(),
                micros(m.created_at)
            ])
        })
        .map_err(|e| sql_err("insert outbox row", e))?;
    }
    Ok(())
}

fn apply_write(conn: &Connection, w: &RecordWrite, now: i64) -> Result<(), StoreError> {
    let kind = w.kind.as_str();
    let changed = match (&w.body, w.expect) {
        (Some(body), Expect::Absent) => conn
            .prepare_cached(
                "INSERT INTO records (kind, tenant_id, id, environment_id, version, body, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![kind, w.tenant_id, w.id, w.environment_id, body.as_str(), now])),
        (Some(body), Expect::Version(v)) => conn
            .prepare_cached(
                "UPDATE records SET environment_id = ?4, version = version + 1, body = ?5, updated_at = ?6
                 WHERE kind = ?1 AND tenant_id = ?2 AND id = ?3 AND version = ?7",
            )
            .and_then(|mut s| {
                s.execute(params![kind, w.tenant_id, w.id, w.environment_id, body.as_str(), now, v])
            }),
        (Some(body), Expect::Any) => conn
            .prepare_cached(
                "INSERT INTO records (kind, tenant_id, id, environment_id, version, body, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)
                 ON CONFLICT (kind, tenant_id, id) DO UPDATE SET
                     environment_id = excluded.environment_id, version = records.version + 1,
                     body = excluded.body, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![kind, w.tenant_id, w.id, w.environment_id, body.as_str(), now])),
        (None, Expect::Absent) => conn
            .prepare_cached("SELECT 1 FROM records WHERE kind = ?1 AND tenant_id = ?2 AND id = ?3")
            .and_then(|mut s| s.exists(params![kind, w.tenant_id, w.id]))
            // Absence holds exactly when nothing exists: report it as "one row as expected".
            .map(|exists| usize::from(!exists)),
        (None, Expect::Version(v)) => conn
            .prepare_cached("DELETE FROM records WHERE kind = ?1 AND tenant_id = ?2 AND id = ?3 AND version = ?4")
            .and_then(|mut s| s.execute(params![kind, w.tenant_id, w.id, v])),
        (None, Expect::Any) => conn
            .prepare_cached("DELETE FROM records WHERE kind = ?1 AND tenant_id = ?2 AND id = ?3")
            .and_then(|mut s| s.execute(params![kind, w.tenant_id, w.id]))
            .map(|_| 1),
    }
    .map_err(|e| sql_err("write record", e))?;
    if changed == 0 {
        return Err(messages::write_conflict(w));
    }
    Ok(())
}

pub(crate) fn commit(conn: &mut Connection, uow: &UnitOfWork) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql_err("begin", e))?;
    apply_unit(&tx, uow)?;
    tx.commit().map_err(|e| sql_err("commit", e))
}

pub(crate) fn commit_many(
    conn: &mut Connection,
    uows: &[UnitOfWork],
) -> Vec<Result<(), StoreError>> {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let err = sql_err("begin", e);
            return uows.iter().map(|_| Err(err.flattened())).collect();
        }
    };
    let mut results = Vec::with_capacity(uows.len());
    for uow in uows {
        results.push(apply_in_savepoint(&tx, uow));
    }
    if let Err(e) = tx.commit() {
        let err = sql_err("commit", e);
        return uows.iter().map(|_| Err(err.flattened())).collect();
    }
    results
}

fn apply_in_savepoint(conn: &Connection, uow: &UnitOfWork) -> Result<(), StoreError> {
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut s| s.execute([]))
            .map(|_| ())
    };
    run("SAVEPOINT unit").map_err(|e| sql_err("savepoint", e))?;
    match apply_unit(conn, uow) {
        Ok(()) => run("RELEASE unit").map_err(|e| sql_err("release savepoint", e)),
        Err(err) => {
            run("ROLLBACK TO unit")
                .and_then(|()| run("RELEASE unit"))
                .map_err(|e| sql_err("roll back savepoint", e))?;
            Err(err)
        }
    }
}

pub(crate) fn claim_outbox(
    conn: &mut Connection,
    claimer: &str,
    limit: usize,
    claimed_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<OutboxRow>, StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql_err("begin", e))?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = tx
        .prepare_cached(
            "UPDATE outbox SET claimed_by = ?1, claimed_until = ?2, claims = claims + 1
             WHERE id IN (SELECT id FROM outbox
                          WHERE dispatched_at IS NULL AND (claimed_until IS NULL OR claimed_until <= ?3)
                          ORDER BY created_at, id LIMIT ?4)
             RETURNING id, worker, destination, body, content_type, properties, created_at,
                       claimed_by, claimed_until, claims",
        )
        .and_then(|mut s| {
            s.query_map(params![claimer, micros(claimed_until), micros(now), limit], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, i64>(8)?,
                    r.get::<_, i64>(9)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| sql_err("claim outbox rows", e))?;
    tx.commit().map_err(|e| sql_err("commit claim", e))?;
    let mut claimed = rows
        .into_iter()
        .map(
            |(
                id,
                worker,
                destination,
                body,
                content_type,
                properties,
                created_at,
                by,
                until,
                claims,
            )| {
                Ok(OutboxRow {
                    message: OutboxMessage {
                        id: uuid("outbox.id", &id)?,
                        worker,
                        destination,
                        body,
                        content_type,
                        properties: Document::stored(properties),
                        created_at: time("outbox.created_at", created_at)?,
                    },
                    claimed_by: by,
                    claimed_until: time("outbox.claimed_until", until)?,
                    claims,
                })
            },
        )
        .collect::<Result<Vec<_>, StoreError>>()?;
    // RETURNING yields rows in no particular order; publishers expect oldest first.
    claimed.sort_by(|a, b| {
        (a.message.created_at, a.message.id).cmp(&(b.message.created_at, b.message.id))
    });
    Ok(claimed)
}

pub(crate) fn mark_dispatched(
    conn: &mut Connection,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql_err("begin", e))?;
    {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE outbox SET dispatched_at = ?1 WHERE id = ?2 AND dispatched_at IS NULL",
            )
            .map_err(|e| sql_err("mark dispatched", e))?;
        for id in ids {
            stmt.execute(params![micros(now), id.to_string()])
                .map_err(|e| sql_err("mark dispatched", e))?;
        }
    }
    tx.commit().map_err(|e| sql_err("commit dispatch marks", e))
}

pub(crate) fn pending_outbox(conn: &Connection) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM outbox WHERE dispatched_at IS NULL")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(|e| sql_err("count pending outbox rows", e))?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// Which table a purge chunk deletes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PurgeTarget {
    Inbox,
    IdempotencyKeys,
    Outbox,
}

/// Deletes at most `chunk` old rows in one short transaction, so a large purge never holds the
/// write lock for long. Returns how many rows went.
pub(crate) fn purge_chunk(
    conn: &Connection,
    target: PurgeTarget,
    before: DateTime<Utc>,
    chunk: usize,
) -> Result<u64, StoreError> {
    let sql = match target {
        PurgeTarget::Inbox => {
            "DELETE FROM inbox WHERE (worker, event_id) IN
                 (SELECT worker, event_id FROM inbox WHERE received_at < ?1 LIMIT ?2)"
        }
        PurgeTarget::IdempotencyKeys => {
            "DELETE FROM idempotency_keys WHERE (worker, key) IN
                 (SELECT worker, key FROM idempotency_keys WHERE created_at < ?1 LIMIT ?2)"
        }
        PurgeTarget::Outbox => {
            "DELETE FROM outbox WHERE id IN
                 (SELECT id FROM outbox WHERE dispatched_at < ?1 LIMIT ?2)"
        }
    };
    let limit = i64::try_from(chunk).unwrap_or(i64::MAX);
    let n = conn
        .prepare_cached(sql)
        .and_then(|mut s| s.execute(params![micros(before), limit]))
        .map_err(|e| sql_err("purge", e))?;
    Ok(n as u64)
}
