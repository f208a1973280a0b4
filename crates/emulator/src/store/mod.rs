//! Durable storage on SQLite: the schema, loading at open, and the rows the engine writes.
//!
//! The engine keeps every message in memory and writes each change through the group-commit
//! [`writer`]; at open it rebuilds memory from these tables. A message row's key is one
//! integer, `entity << 44 | sequence number`, so rows live in SQLite's rowid b-tree directly.
//! Metadata (`messages`) and content (`contents`: properties and body) are separate tables
//! sharing that key: the frequent writes — lock, renew, abandon, defer — touch only small
//! metadata rows, many to a page, instead of rewriting pages full of bodies.

pub(crate) mod codec;
pub(crate) mod writer;

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, params};
use uuid::Uuid;

use crate::error::EmulatorError;

/// How hard SQLite works to keep committed data across crashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// `synchronous = NORMAL` in WAL mode: a committed operation survives a crash of the
    /// process; the last commits may be lost if the machine loses power.
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit is fsynced before it is acknowledged.
    Full,
}

impl Durability {
    /// `normal` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Full => "full",
        }
    }
}

/// Bits of a row key given to the sequence number.
const SEQ_BITS: u32 = 44;

pub(crate) fn row_key(entity: i64, seq: i64) -> i64 {
    (entity << SEQ_BITS) | (seq & ((1 << SEQ_BITS) - 1))
}

/// The mutable columns of a message row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Meta {
    pub dlq: bool,
    pub state: i64,
    pub enqueued: i64,
    pub scheduled: Option<i64>,
    pub expires: Option<i64>,
    pub delivery_count: u32,
    pub lock: Option<(Uuid, i64)>,
    pub dead_letter: Option<Arc<DeadLetterInfo>>,
}

/// Why and where a message was dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetterInfo {
    pub reason: String,
    pub description: String,
    pub source: String,
}

/// One change for the writer, in the order the engine made it.
#[derive(Debug)]
pub(crate) enum Write {
    /// A whole row (new message, or one whose properties changed).
    Put {
        entity: i64,
        seq: i64,
        meta: Meta,
        headers: Arc<Vec<u8>>,
        body: bytes::Bytes,
    },
    /// Only the mutable columns changed.
    Update { entity: i64, seq: i64, meta: Meta },
    /// The message is gone.
    Delete { entity: i64, seq: i64 },
    /// The entity's next sequence number.
    NextSeq { entity: i64, next: i64 },
    /// A message id seen by duplicate detection.
    Seen {
        entity: i64,
        message_id: String,
        at: i64,
    },
    /// Duplicate-detection history older than `before` can go.
    ForgetSeen { entity: i64, before: i64 },
    /// The whole rule set of a subscription, replacing what was stored (rule sets are small).
    /// From then on the stored set, not `Config.json`, is the subscription's rule set.
    Rules {
        entity: i64,
        rules: Vec<StoredRule>,
        at: i64,
    },
}

/// A rule as stored: its filter in the JSON of [`codec::encode_filter`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredRule {
    pub name: String,
    pub filter: String,
    pub created: Option<i64>,
}

/// A message row as loaded at open.
#[derive(Debug)]
pub(crate) struct LoadedRow {
    pub seq: i64,
    pub meta: Meta,
    pub headers: Vec<u8>,
    pub body: Vec<u8>,
}

/// Bumped whenever the tables change incompatibly; a data file of another version is refused.
/// (Tables added with `IF NOT EXISTS`, like the rule tables, are compatible: an older data file
/// gains them empty.)
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS entities (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    next_seq INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    dlq INTEGER NOT NULL,
    state INTEGER NOT NULL,
    enqueued INTEGER NOT NULL,
    scheduled INTEGER,
    expires INTEGER,
    delivery_count INTEGER NOT NULL,
    locked_until INTEGER,
    lock_token BLOB,
    dl_reason TEXT,
    dl_description TEXT,
    dl_source TEXT
);
CREATE TABLE IF NOT EXISTS contents (
    id INTEGER PRIMARY KEY,
    headers BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_ids (
    entity INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    seen INTEGER NOT NULL,
    PRIMARY KEY (entity, message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rule_sets (
    entity INTEGER PRIMARY KEY,
    changed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rules (
    entity INTEGER NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    filter TEXT NOT NULL,
    created INTEGER,
    PRIMARY KEY (entity, position)
) WITHOUT ROWID;
";

/// Opens (creating if needed) the data file with the pragmas of `durability`.
pub(crate) fn open(path: &Path, durability: Durability) -> Result<Connection, EmulatorError> {
    let display = path.display().to_string();
    let fail = |what: &'static str| {
        let display = display.clone();
        move |e| EmulatorError::storage(format!("{what} {display}"), e)
    };
    let conn = Connection::open(path).map_err(fail("cannot open"))?;
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA temp_store = MEMORY; \
         PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 0; PRAGMA busy_timeout = 5000;"
    ))
    .map_err(fail("cannot configure"))?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(fail("cannot read the schema version of"))?;
    if version != 0 && version != SCHEMA_VERSION {
        return Err(EmulatorError::new(
            crate::error::EmulatorErrorKind::Storage,
            format!(
                "{display} has schema version {version}, this emulator reads version {SCHEMA_VERSION}; \
                 use a fresh data directory"
            ),
        ));
    }
    conn.execute_batch(SCHEMA)
        .map_err(fail("cannot create the schema in"))?;
    conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
        .map_err(fail("cannot record the schema version in"))?;
    Ok(conn)
}

/// A second connection to the data file, for the checkpointer thread.
pub(crate) fn open_side(path: &Path) -> Result<Connection, EmulatorError> {
    let conn = Connection::open(path)
        .map_err(|e| EmulatorError::storage(format!("cannot open {}", path.display()), e))?;
    conn.execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(|e| EmulatorError::storage(format!("cannot configure {}", path.display()), e))?;
    Ok(conn)
}

/// The storage id and next sequence number of the entity at `path`, registering it if new.
pub(crate) fn entity_id(conn: &Connection, path: &str) -> Result<(i64, i64), EmulatorError> {
    conn.execute(
        "INSERT OR IGNORE INTO entities (path) VALUES (?1)",
        params![path],
    )
    .map_err(|e| EmulatorError::storage(format!("cannot register entity {path}"), e))?;
    conn.query_row(
        "SELECT id, next_seq FROM entities WHERE path = ?1",
        params![path],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .map_err(|e| EmulatorError::storage(format!("cannot read entity {path}"), e))
}

/// Every stored message of the entity with storage id `entity`.
pub(crate) fn load_messages(
    conn: &Connection,
    entity: i64,
) -> Result<Vec<LoadedRow>, EmulatorError> {
    let fail = |e| EmulatorError::storage(format!("cannot load messages of entity {entity}"), e);
    let mut stmt = conn
        .prepare(
            "SELECT id, dlq, state, enqueued, scheduled, expires, delivery_count, locked_until, lock_token, \
             dl_reason, dl_description, dl_source, c.headers, c.body FROM messages m JOIN contents c USING (id) \
             WHERE id >= ?1 AND id < ?2 ORDER BY id",
        )
        .map_err(fail)?;
    let rows = stmt
        .query_map(params![row_key(entity, 0), row_key(entity + 1, 0)], |r| {
            let key: i64 = r.get(0)?;
            let locked_until: Option<i64> = r.get(7)?;
            let token: Option<Vec<u8>> = r.get(8)?;
            let reason: Option<String> = r.get(9)?;
            let lock = match (token.and_then(|t| Uuid::from_slice(&t).ok()), locked_until) {
                (Some(token), Some(until)) => Some((token, until)),
                _ => None,
            };
            Ok(LoadedRow {
                seq: key & ((1 << SEQ_BITS) - 1),
                meta: Meta {
                    dlq: r.get(1)?,
                    state: r.get(2)?,
                    enqueued: r.get(3)?,
                    scheduled: r.get(4)?,
                    expires: r.get(5)?,
                    delivery_count: r.get(6)?,
                    lock,
                    dead_letter: match reason {
                        Some(reason) => Some(Arc::new(DeadLetterInfo {
                            reason,
                            description: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
                            source: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
                        })),
                        None => None,
                    },
                },
                headers: r.get(12)?,
                body: r.get(13)?,
            })
        })
        .map_err(fail)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(fail)
}

/// The duplicate-detection history of `entity` at or after `since`.
pub(crate) fn load_seen(
    conn: &Connection,
    entity: i64,
    since: i64,
) -> Result<Vec<(String, i64)>, EmulatorError> {
    let fail = |e| {
        EmulatorError::storage(
            format!("cannot load duplicate-detection history of entity {entity}"),
            e,
        )
    };
    let mut stmt = conn
        .prepare(
            "SELECT message_id, seen FROM seen_ids WHERE entity = ?1 AND seen >= ?2 ORDER BY seen",
        )
        .map_err(fail)?;
    let rows = stmt
        .query_map(params![entity, since], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(fail)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(fail)
}

/// The rule set of `entity` stored by run-time rule management, in order; `None` when its rules
/// were never changed at run time (then `Config.json` defines them).
pub(crate) fn load_rules(
    conn: &Connection,
    entity: i64,
) -> Result<Option<Vec<StoredRule>>, EmulatorError> {
    let fail = |e| EmulatorError::storage(format!("cannot load the rules of entity {entity}"), e);
    let managed: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM rule_sets WHERE entity = ?1)",
            params![entity],
            |r| r.get(0),
        )
        .map_err(fail)?;
    if !managed {
        return Ok(None);
    }
    let mut stmt = conn
        .prepare("SELECT name, filter, created FROM rules WHERE entity = ?1 ORDER BY position")
        .map_err(fail)?;
    let rows = stmt
        .query_map(params![entity], |r| {
            Ok(StoredRule {
                name: r.get(0)?,
                filter: r.get(1)?,
                created: r.get(2)?,
            })
        })
        .map_err(fail)?;
    rows.collect::<Result<Vec<_>, _>>().map(Some).map_err(fail)
}
