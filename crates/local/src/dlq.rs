//! Dead-letter entries of every subscription, read straight from the emulator's SQLite file,
//! read-only, so a running fleet can be inspected without a second engine touching its state.
//!
//! The engine keeps one row per message (`messages`: dead-letter flag, reason, description,
//! delivery count; `contents`: properties as JSON and the body) keyed by
//! `entity << 44 | sequence number`, and names entities in `entities`.

use std::path::Path;

use fleet_envelope::Envelope;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::{LocalError, LocalErrorKind};

const SEQ_BITS: u32 = 44;

/// One dead-lettered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterEntry {
    /// The broker sequence number.
    pub sequence_number: i64,
    /// The subscription (or queue) it was dead-lettered from.
    pub subscription: String,
    /// `DeadLetterReason`.
    pub reason: String,
    /// `DeadLetterErrorDescription`.
    pub description: String,
    /// The worker that dead-lettered it (`fleet-dead-letter-worker`).
    pub worker: Option<String>,
    /// Attempts made (`fleet-attempts`, else the delivery count).
    pub attempts: u64,
    /// The envelope's `eventId`, when the body is a valid envelope.
    pub event_id: Option<Uuid>,
    /// The envelope's `eventType`, when the body is a valid envelope.
    pub event_type: Option<String>,
}

fn db_err(path: &Path, e: rusqlite::Error) -> LocalError {
    LocalError::new(
        LocalErrorKind::DataDir,
        format!("cannot read the emulator data file {}", path.display()),
    )
    .with_source(e)
}

/// Every dead-letter entry in the emulator data file at `path`, by subscription then sequence.
pub fn list(path: &Path) -> Result<Vec<DeadLetterEntry>, LocalError> {
    if !path.exists() {
        return Err(LocalError::new(
            LocalErrorKind::DataDir,
            format!("emulator data file {} does not exist", path.display()),
        ));
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| db_err(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| db_err(path, e))?;
    let mut stmt = conn
        .prepare(
            "SELECT e.path, m.id, m.delivery_count, m.dl_reason, m.dl_description, c.headers, c.body \
             FROM messages m JOIN entities e ON e.id = (m.id >> 44) \
             LEFT JOIN contents c ON c.id = m.id WHERE m.dlq = 1 ORDER BY e.path, m.id",
        )
        .map_err(|e| db_err(path, e))?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<Vec<u8>>>(5)?,
                r.get::<_, Option<Vec<u8>>>(6)?,
            ))
        })
        .map_err(|e| db_err(path, e))?;
    let mut entries = Vec::new();
    for row in rows {
        let (entity, key, delivery_count, reason, description, headers, body) =
            row.map_err(|e| db_err(path, e))?;
        let props = headers
            .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
            .and_then(|v| v.get("p").cloned())
            .unwrap_or(Value::Null);
        // Properties are stored as [tag, value] pairs.
        let prop = |name: &str| props.get(name).and_then(|p| p.get(1)).cloned();
        let env = body.as_deref().and_then(|b| Envelope::decode(b).ok());
        // `topic/subscriptions/name` (stored lower-case) or a queue name: the last segment.
        let subscription = entity.rsplit('/').next().unwrap_or_default().to_owned();
        entries.push(DeadLetterEntry {
            sequence_number: key & ((1i64 << SEQ_BITS) - 1),
            subscription,
            reason: reason.unwrap_or_default(),
            description: description.unwrap_or_default(),
            worker: prop(fleet_runtime::PROP_DEAD_LETTER_WORKER)
                .and_then(|v| v.as_str().map(str::to_owned)),
            attempts: prop(fleet_runtime::PROP_ATTEMPTS)
                .and_then(|v| v.as_u64())
                .unwrap_or(u64::try_from(delivery_count).unwrap_or(0)),
            event_id: env.as_ref().map(|e| e.event_id),
            event_type: env.map(|e| e.event_type.as_str().to_owned()),
        });
    }
    Ok(entries)
}
