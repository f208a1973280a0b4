//! Synchronous SQLite operations. They run on the writer thread or on a pooled reader
//! connection; nothing here touches async code.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};
use uuid::Uuid;

use crate::error::{StoreError, StoreErrorKind};
use crate::migrations::SQLITE as MIGRATIONS;
use crate::record::{RawRecord, RecordKind, TenantBinding};
use crate::unit::{Expect, OutboxMessage, OutboxRow, RecordWrite, UnitOfWork, messages};

/// Maps a SQLite error onto the store's kinds: busy/locked/IO are transient.
pub(crate) fn sql_err(context: &str, err: rusqlite::Error) -> StoreError {
    let kind = match err.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory,
        ) => StoreErrorKind::Unavailable,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreErrorKind::Corrupt,
        Some(ErrorCode::ConstraintViolation) => StoreErrorKind::Conflict,
        _ => match err {
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Internal,
        },
    };
    StoreError::with_source(kind, format!("sqlite: {context}"), err)
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn time(column: &str, micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::corrupt(format!("column {column} holds {micros}, not a time")))
}

fn json(column: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::with_source(
            StoreErrorKind::Corrupt,
            format!("column {column} is not JSON"),
            e,
        )
    })
}

fn uuid(column: &str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| {
        StoreError::with_source(
            StoreErrorKind::Corrupt,
            format!("column {column} is not a UUID"),
            e,
        )
    })
}

fn to_text(value: &serde_json::Value) -> String {
    // Serializing a `Value` cannot fail: its map keys are always strings.
    value.to_string()
}

/// Applies the missing migrations in one IMMEDIATE transaction, so two processes migrating the
/// same file serialise on SQLite's write lock and the second finds nothing to do.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| sql_err("begin migration", e))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER NOT NULL PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at INTEGER NOT NULL
        )",
    )
    .map_err(|e| sql_err("create schema_migrations", e))?;
    let applied: i64 = tx
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(|e| sql_err("read schema_migrations", e))?;
    for m in MIGRATIONS.iter().filter(|m| m.version > applied) {
        tx.execute_batch(m.sql)
            .map_err(|e| sql_err(&format!("apply migration {} ({})", m.version, m.name), e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, micros(Utc::now())],
        )
        .map_err(|e| sql_err("record migration", e))?;
    }
    tx.commit().map_err(|e| sql_err("commit migration", e))
}

pub(crate) fn put_tenant_binding(conn: &Connection, b: &TenantBinding) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO tenant_bindings (environment_id, tenant_id, targets, updated_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (environment_id) DO UPDATE SET tenant_id = excluded.tenant_id,
             targets = excluded.targets, updated_at = excluded.updated_at",
    )
    .and_then(|mut s| {
        s.execute(params![
            b.environment_id,
            b.tenant_id,
            to_text(&b.targets),
            micros(Utc::now())
        ])
    })
    .map_err(|e| sql_err("put tenant binding", e))?;
    Ok(())
}

pub(crate) fn tenant_binding(
    conn: &Connection,
    environment_id: &str,
) -> Result<Option<TenantBinding>, StoreError> {
    let row = conn
        .prepare_cached("SELECT tenant_id, targets FROM tenant_bindings WHERE environment_id = ?1")
        .and_then(|mut s| {
            s.query_row(params![environment_id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .optional()
        })
        .map_err(|e| sql_err("read tenant binding", e))?;
    row.map(|(tenant_id, targets)| {
        Ok(TenantBinding {
            environment_id: environment_id.to_string(),
            tenant_id,
            targets: json("tenant_bindings.targets", &targets)?,
        })
    })
    .transpose()
}

pub(crate) fn inbox_contains(
    conn: &Connection,
    worker: &str,
    event_id: Uuid,
) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM inbox WHERE worker = ?1 AND event_id = ?2")
        .and_then(|mut s| s.exists(params![worker, event_id.to_string()]))
        .map_err(|e| sql_err("read inbox", e))
}

pub(crate) fn idempotency_key(
    conn: &Connection,
    worker: &str,
    key: &str,
) -> Result<Option<serde_json::Value>, StoreError> {
    let outcome = conn
        .prepare_cached("SELECT outcome FROM idempotency_keys WHERE worker = ?1 AND key = ?2")
        .and_then(|mut s| {
            s.query_row(params![worker, key], |r| r.get::<_, String>(0))
                .optional()
        })
        .map_err(|e| sql_err("read idempotency key", e))?;
    outcome
        .map(|o| json("idempotency_keys.outcome", &o))
        .transpose()
}

const RECORD_COLUMNS: &str = "kind, tenant_id, environment_id, id, version, body, updated_at";

fn raw_record(r: &Row<'_>) -> rusqlite::Result<(String, String, String, String, i64, String, i64)> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

type RawRow = (String, String, String, String, i64, String, i64);

fn decode_record(row: RawRow) -> Result<RawRecord, StoreError> {
    let (kind, tenant_id, environment_id, id, version, body, updated_at) = row;
    Ok(RawRecord {
        kind: kind.parse()?,
        tenant_id,
        environment_id,
        id,
        version,
        body: json("records.body", &body)?,
        updated_at: time("records.updated_at", updated_at)?,
    })
}

pub(crate) fn get_raw(
    conn: &Connection,
    kind: RecordKind,
    tenant_id: &str,
    id: &str,
) -> Result<Option<RawRecord>, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE kind = ?1 AND tenant_id = ?2 AND id = ?3"
    );
    let row = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params![kind.as_str(), tenant_id, id], raw_record)
                .optional()
        })
        .map_err(|e| sql_err("read record", e))?;
    row.map(decode_record).transpose()
}

pub(crate) fn list_raw(
    conn: &Connection,
    kind: RecordKind,
    tenant_id: Option<&str>,
    environment_id: Option<&str>,
) -> Result<Vec<RawRecord>, StoreError> {
    // NULL parameters mean "any": one statement serves all four combinations.
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE kind = ?1
           AND (?2 IS NULL OR tenant_id = ?2) AND (?3 IS NULL OR environment_id = ?3)
         ORDER BY tenant_id, id"
    );
    let rows = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(
                params![kind.as_str(), tenant_id, environment_id],
                raw_record,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(|e| sql_err("list records", e))?;
    rows.into_iter().map(decode_record).collect()
}

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
                to_text(&m.properties),
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
            .and_then(|mut s| s.execute(params![kind, w.tenant_id, w.id, w.environment_id, to_text(body), now])),
        (Some(body), Expect::Version(v)) => conn
            .prepare_cached(
                "UPDATE records SET environment_id = ?4, version = version + 1, body = ?5, updated_at = ?6
                 WHERE kind = ?1 AND tenant_id = ?2 AND id = ?3 AND version = ?7",
            )
            .and_then(|mut s| {
                s.execute(params![kind, w.tenant_id, w.id, w.environment_id, to_text(body), now, v])
            }),
        (Some(body), Expect::Any) => conn
            .prepare_cached(
                "INSERT INTO records (kind, tenant_id, id, environment_id, version, body, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)
                 ON CONFLICT (kind, tenant_id, id) DO UPDATE SET
                     environment_id = excluded.environment_id, version = records.version + 1,
                     body = excluded.body, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| s.execute(params![kind, w.tenant_id, w.id, w.environment_id, to_text(body), now])),
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
                        properties: json("outbox.properties", &properties)?,
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
