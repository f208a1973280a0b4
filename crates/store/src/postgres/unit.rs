//! The unit of work on PostgreSQL, pipelined.
//!
//! Every statement is safe under READ COMMITTED with concurrent replicas: inserts use
//! `ON CONFLICT DO NOTHING` (a concurrent insert of the same key waits for the other
//! transaction, then reports zero rows), and updates carry their version in the `WHERE` clause
//! (re-checked against the committed row after a concurrent update). Each statement comes with a
//! check of its row count; a unit stands only if every check passes.
//!
//! The statements of a unit do not depend on each other's results, so they are sent as one
//! pipeline (one network round trip) and checked afterwards; a failed check rolls the unit back,
//! so sending the later statements anyway changes nothing that survives. A group commit first
//! pipelines all its units in one transaction; if any check fails it rolls back and replays the
//! units one savepoint at a time, so one unit's conflict never sinks the others.
//!
//! Consecutive inserts of a unit (puts expecting the record absent, as a first inventory pass
//! writes by the thousand) go as one `INSERT … SELECT FROM UNNEST(arrays)` per 5,000 records
//! rather than one statement each; it returns the keys it inserted, and the first write whose key
//! is missing is the conflict.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use tokio_postgres::{Client, GenericClient, Statement};

use super::pg_err;
use crate::error::StoreError;
use crate::record::Document;
use crate::unit::{Expect, RecordWrite, UnitOfWork, messages};

/// The prepared statements of a unit of work, prepared once per connection.
#[derive(Clone)]
pub(crate) struct UnitStatements {
    inbox: Statement,
    insert: Statement,
    update: Statement,
    upsert: Statement,
    exists: Statement,
    delete_version: Statement,
    delete_any: Statement,
    key: Statement,
    outbox: Statement,
    insert_many: Statement,
}

impl UnitStatements {
    pub(crate) async fn prepare(c: &Client) -> Result<Self, StoreError> {
        let (
            inbox,
            insert,
            update,
            upsert,
            exists,
            delete_version,
            delete_any,
            key,
            outbox,
            insert_many,
        ) = tokio::try_join!(
                c.prepare(
                    "INSERT INTO inbox (worker, event_id, received_at) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING"
                ),
                c.prepare(
                    "INSERT INTO records (kind, tenant_id, id, environment_id, version, body, updated_at)
                     VALUES ($1, $2, $3, $4, 1, $5::text::jsonb, $6) ON CONFLICT DO NOTHING"
                ),
                c.prepare(
                    "UPDATE records SET environment_id = $4, version = version + 1, body = $5::text::jsonb,
                         updated_at = $6
                     WHERE kind = $1 AND tenant_id = $2 AND id = $3 AND version = $7"
                ),
                c.prepare(
                    "INSERT INTO records (kind, tenant_id, id, environment_id, version, body, updated_at)
                     VALUES ($1, $2, $3, $4, 1, $5::text::jsonb, $6)
                     ON CONFLICT (kind, tenant_id, id) DO UPDATE SET
                         environment_id = excluded.environment_id, version = records.version + 1,
                         body = excluded.body, updated_at = excluded.updated_at"
                ),
                c.prepare("SELECT 1 FROM records WHERE kind = $1 AND tenant_id = $2 AND id = $3"),
                c.prepare(
                    "DELETE FROM records WHERE kind = $1 AND tenant_id = $2 AND id = $3 AND version = $4"
                ),
                c.prepare("DELETE FROM records WHERE kind = $1 AND tenant_id = $2 AND id = $3"),
                c.prepare(
                    "INSERT INTO idempotency_keys (worker, key, outcome, created_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
                ),
                c.prepare(
                    "INSERT INTO outbox (id, worker, destination, body, content_type, properties, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7) ON CONFLICT DO NOTHING"
                ),
                // Rows are inserted in array order, so a key repeated within the arrays is
                // skipped at its second occurrence, exactly as one insert after another would be.
                c.prepare(
                    "INSERT INTO records (kind, tenant_id, id, environment_id, version, body, updated_at)
                     SELECT u.kind, u.tenant_id, u.id, u.environment_id, 1, u.body::jsonb, $6::timestamptz
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
                         AS u(kind, tenant_id, id, environment_id, body)
                     ON CONFLICT DO NOTHING
                     RETURNING kind, tenant_id, id"
                ),
            )
            .map_err(|e| pg_err("prepare unit statements", e))?;
        Ok(Self {
            inbox,
            insert,
            update,
            upsert,
            exists,
            delete_version,
            delete_any,
            key,
            outbox,
            insert_many,
        })
    }
}

/// Most records one batched insert carries.
const INSERT_BATCH: usize = 5_000;

/// Inserts `writes` (all puts expecting the record absent) with one statement: one row per
/// write instead of one statement per write. The statement returns the keys it inserted; the
/// first write, in order, whose key is not among them is the conflict.
async fn insert_absent<C: GenericClient + Sync>(
    c: &C,
    s: &UnitStatements,
    writes: &[RecordWrite],
    now: &DateTime<Utc>,
) -> Result<(), StoreError> {
    let n = writes.len();
    let (mut kinds, mut tenants, mut ids, mut envs, mut bodies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for w in writes {
        kinds.push(w.kind.as_str());
        tenants.push(w.tenant_id.as_str());
        ids.push(w.id.as_str());
        envs.push(w.environment_id.as_str());
        bodies.push(w.body.as_ref().map_or("null", Document::as_str));
    }
    let rows = c
        .query(
            &s.insert_many,
            &[&kinds, &tenants, &ids, &envs, &bodies, now],
        )
        .await
        .map_err(|err| pg_err("write records", err))?;
    if rows.len() == n {
        return Ok(());
    }
    let mut inserted: HashMap<(&str, &str, &str), usize> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let key = (
            row.try_get(0).map_err(|e| pg_err("write records", e))?,
            row.try_get(1).map_err(|e| pg_err("write records", e))?,
            row.try_get(2).map_err(|e| pg_err("write records", e))?,
        );
        *inserted.entry(key).or_default() += 1;
    }
    for w in writes {
        match inserted.get_mut(&(w.kind.as_str(), w.tenant_id.as_str(), w.id.as_str())) {
            Some(left) if *left > 0 => *left -= 1,
            _ => return Err(messages::write_conflict(w)),
        }
    }
    // Fewer rows than writes, yet every write accounted for: cannot happen; fail safe.
    Err(messages::write_conflict(&writes[0]))
}

fn is_insert(w: &RecordWrite) -> bool {
    w.body.is_some() && w.expect == Expect::Absent
}

/// One statement of a unit and the check of its outcome.
type Check<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// The statements of `uow`, in order, as futures; none is sent until polled.
fn checks<'a, C: GenericClient + Sync>(
    c: &'a C,
    s: &'a UnitStatements,
    uow: &'a UnitOfWork,
    now: &'a DateTime<Utc>,
) -> Vec<Check<'a>> {
    let mut out: Vec<Check<'a>> = Vec::new();
    if let Some(e) = &uow.inbox {
        out.push(Box::pin(async move {
            let n = c
                .execute(&s.inbox, &[&e.worker, &e.event_id, &e.received_at])
                .await
                .map_err(|err| pg_err("insert inbox row", err))?;
            if n == 0 {
                Err(messages::duplicate_inbox(e))
            } else {
                Ok(())
            }
        }));
    }
    let mut rest = uow.writes.as_slice();
    while let Some(w) = rest.first() {
        // Consecutive inserts go as one statement per INSERT_BATCH records; the others one
        // statement each. Either way the statements run in the order of the writes.
        let run = rest.iter().take_while(|w| is_insert(w)).count();
        if run >= 2 {
            let (inserts, tail) = rest.split_at(run);
            for chunk in inserts.chunks(INSERT_BATCH) {
                out.push(Box::pin(insert_absent(c, s, chunk, now)));
            }
            rest = tail;
            continue;
        }
        rest = &rest[1..];
        out.push(Box::pin(async move {
            let kind = w.kind.as_str();
            let key: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&kind, &w.tenant_id, &w.id];
            // Documents travel as text and are cast to jsonb by the server.
            let body = w.body.as_ref().map(|b| b.as_str());
            let held = match (&body, w.expect) {
                (Some(body), Expect::Absent) => c
                    .execute(
                        &s.insert,
                        &[key[0], key[1], key[2], &w.environment_id, body, now],
                    )
                    .await
                    .map(|n| n == 1),
                (Some(body), Expect::Version(v)) => c
                    .execute(
                        &s.update,
                        &[key[0], key[1], key[2], &w.environment_id, body, now, &v],
                    )
                    .await
                    .map(|n| n == 1),
                (Some(body), Expect::Any) => c
                    .execute(
                        &s.upsert,
                        &[key[0], key[1], key[2], &w.environment_id, body, now],
                    )
                    .await
                    .map(|_| true),
                (None, Expect::Absent) => c.query_opt(&s.exists, &key).await.map(|r| r.is_none()),
                (None, Expect::Version(v)) => c
                    .execute(&s.delete_version, &[key[0], key[1], key[2], &v])
                    .await
                    .map(|n| n == 1),
                (None, Expect::Any) => c.execute(&s.delete_any, &key).await.map(|_| true),
            }
            .map_err(|err| pg_err("write record", err))?;
            if held {
                Ok(())
            } else {
                Err(messages::write_conflict(w))
            }
        }));
    }
    for k in &uow.idempotency_keys {
        out.push(Box::pin(async move {
            let n = c
                .execute(&s.key, &[&k.worker, &k.key, &k.outcome, &k.created_at])
                .await
                .map_err(|err| pg_err("insert idempotency key", err))?;
            if n == 0 {
                Err(messages::duplicate_key(k))
            } else {
                Ok(())
            }
        }));
    }
    for m in &uow.outbox {
        out.push(Box::pin(async move {
            c.execute(
                &s.outbox,
                &[
                    &m.id,
                    &m.worker,
                    &m.destination,
                    &m.body,
                    &m.content_type,
                    &m.properties.as_str(),
                    &m.created_at,
                ],
            )
            .await
            .map(|_| ())
            .map_err(|err| pg_err("insert outbox row", err))
        }));
    }
    out
}

/// The first failure in statement order: later statements of a failed transaction only report
/// that it was aborted, so the first error is the cause.
fn first_failure(results: Vec<Result<(), StoreError>>) -> Result<(), StoreError> {
    results.into_iter().find(Result::is_err).unwrap_or(Ok(()))
}

/// Runs one unit's statements as one pipeline inside the caller's transaction or savepoint.
/// On error the caller must roll back.
pub(crate) async fn apply_unit<C: GenericClient + Sync>(
    c: &C,
    s: &UnitStatements,
    uow: &UnitOfWork,
) -> Result<(), StoreError> {
    let now = Utc::now();
    first_failure(join_all(checks(c, s, uow, &now)).await)
}

/// Runs every unit's statements as one pipeline; `Ok` only if every check of every unit passed.
/// On error the caller must roll back the whole transaction.
pub(crate) async fn apply_all<C: GenericClient + Sync>(
    c: &C,
    s: &UnitStatements,
    uows: &[UnitOfWork],
) -> Result<(), StoreError> {
    let now = Utc::now();
    let all = uows.iter().flat_map(|u| checks(c, s, u, &now));
    first_failure(join_all(all).await)
}
