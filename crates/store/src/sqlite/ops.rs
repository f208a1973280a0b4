//! Synchronous SQLite reads, migrations and the conversions both halves share (writes are in
//! `write.rs`). They run on the writer thread or a pooled reader; nothing here is async.

use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};
use uuid::Uuid;

use crate::error::{StoreError, StoreErrorKind};
use crate::migrations::SQLITE as MIGRATIONS;
use crate::record::{Document, EncodedRecord, RecordKind, TenantBinding};

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

pub(crate) use super::write::{
    PurgeTarget, claim_outbox, commit, commit_many, mark_dispatched, pending_outbox, purge_chunk,
};

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(super) fn time(column: &str, micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::corrupt(format!("column {column} holds {micros}, not a time")))
}

pub(super) fn json(column: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::with_source(
            StoreErrorKind::Corrupt,
            format!("column {column} is not JSON"),
            e,
        )
    })
}

pub(super) fn uuid(column: &str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| {
        StoreError::with_source(
            StoreErrorKind::Corrupt,
            format!("column {column} is not a UUID"),
            e,
        )
    })
}

pub(super) fn to_text(value: &serde_json::Value) -> String {
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

/// Builds a record from a row of [`RECORD_COLUMNS`]. The document text is copied once, into the
/// record; nothing is parsed here.
fn encoded_record(r: &Row<'_>) -> rusqlite::Result<Result<EncodedRecord, StoreError>> {
    let kind = r.get_ref(0)?.as_str().map(str::parse::<RecordKind>);
    let kind =
        kind.map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))?;
    let tenant_id = r.get(1)?;
    let environment_id = r.get(2)?;
    let id = r.get(3)?;
    let version = r.get(4)?;
    let body = Document::stored(r.get(5)?);
    let updated_at = r.get(6)?;
    Ok(kind.and_then(|kind| {
        Ok(EncodedRecord {
            kind,
            tenant_id,
            environment_id,
            id,
            version,
            body,
            updated_at: time("records.updated_at", updated_at)?,
        })
    }))
}

pub(crate) fn get_encoded(
    conn: &Connection,
    kind: RecordKind,
    tenant_id: &str,
    id: &str,
) -> Result<Option<EncodedRecord>, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE kind = ?1 AND tenant_id = ?2 AND id = ?3"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params![kind.as_str(), tenant_id, id], encoded_record)
                .optional()
        })
        .map_err(|e| sql_err("read record", e))?
        .transpose()
}

pub(crate) fn list_encoded(
    conn: &Connection,
    kind: RecordKind,
    tenant_id: Option<&str>,
    environment_id: Option<&str>,
) -> Result<Vec<EncodedRecord>, StoreError> {
    // NULL parameters mean "any": one statement serves all four combinations.
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records WHERE kind = ?1
           AND (?2 IS NULL OR tenant_id = ?2) AND (?3 IS NULL OR environment_id = ?3)
         ORDER BY tenant_id, id"
    );
    let mut stmt = conn
        .prepare_cached(&sql)
        .map_err(|e| sql_err("list records", e))?;
    let mut rows = stmt
        .query(params![kind.as_str(), tenant_id, environment_id])
        .map_err(|e| sql_err("list records", e))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(|e| sql_err("list records", e))? {
        out.push(encoded_record(row).map_err(|e| sql_err("list records", e))??);
    }
    Ok(out)
}
