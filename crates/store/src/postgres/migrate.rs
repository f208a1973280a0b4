//! Schema migrations on PostgreSQL, guarded by an advisory lock.

use tokio_postgres::Client;

use super::pg_err;
use crate::error::StoreError;
use crate::migrations::POSTGRES as MIGRATIONS;

/// A stable 64-bit key for the migration advisory lock, per schema, so migrators of different
/// schemas do not wait for each other.
fn migration_lock_key(schema: &str) -> i64 {
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in "fleet-store:migrate:".bytes().chain(schema.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Creates the schema if needed and applies the missing migrations in one transaction.
pub(crate) async fn migrate(client: &mut Client, schema: &str) -> Result<(), StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| pg_err("begin migration", e))?;
    // Replicas starting together all migrate; the lock makes them take turns, and the
    // later ones find nothing left to apply.
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&migration_lock_key(schema)],
    )
    .await
    .map_err(|e| pg_err("take migration lock", e))?;
    let exists = tx
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(|e| pg_err("look up schema", e))?
        .is_some();
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA \"{}\"", schema))
            .await
            .map_err(|e| pg_err(&format!("create schema {:?}", schema), e))?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version BIGINT NOT NULL PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(|e| pg_err("create schema_migrations", e))?;
    let applied: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .and_then(|r| r.try_get(0))
        .map_err(|e| pg_err("read schema_migrations", e))?;
    for m in MIGRATIONS.iter().filter(|m| m.version > applied) {
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| pg_err(&format!("apply migration {} ({})", m.version, m.name), e))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await
        .map_err(|e| pg_err("record migration", e))?;
    }
    tx.commit().await.map_err(|e| pg_err("commit migration", e))
}
