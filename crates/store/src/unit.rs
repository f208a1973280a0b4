//! The unit of work: everything one handled message changes, committed atomically.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{StoreError, StoreErrorKind};
use crate::record::{Document, Record, RecordKind};

/// What a record write expects to find, so two replicas cannot both win the same update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The record must not exist. A put inserts version 1; a delete only asserts absence.
    Absent,
    /// The record must exist at exactly this version. A put stores `n + 1`; a delete removes it.
    Version(i64),
    /// No expectation: a put inserts or overwrites (bumping the version); a delete removes the
    /// record if present.
    Any,
}

/// One record write inside a unit.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    /// The record kind.
    pub kind: RecordKind,
    /// The owning tenant.
    pub tenant_id: String,
    /// The environment (ignored by deletes).
    pub environment_id: String,
    /// The record id.
    pub id: String,
    /// The optimistic-concurrency expectation.
    pub expect: Expect,
    /// The new document; `None` deletes the record.
    pub body: Option<Document>,
}

/// The inbox row that marks an event as handled by one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// The worker that handled the event.
    pub worker: String,
    /// The handled event.
    pub event_id: Uuid,
    /// When the event was received; the purge compares against it.
    pub received_at: DateTime<Utc>,
}

/// A handler-scoped idempotency key with the outcome recorded under it.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyKey {
    /// The worker owning the key space.
    pub worker: String,
    /// The key, e.g. `deploymentId:step`.
    pub key: String,
    /// What the work produced, returned to a later lookup of the same key.
    pub outcome: serde_json::Value,
    /// When the key was recorded; the purge compares against it.
    pub created_at: DateTime<Utc>,
}

/// An event to publish once the unit commits.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxMessage {
    /// The event id, also the row's primary key: inserting an id twice keeps the first row, so
    /// re-emitting a deterministic event is harmless.
    pub id: Uuid,
    /// The emitting worker.
    pub worker: String,
    /// The topic or queue to publish to.
    pub destination: String,
    /// The message body (the encoded envelope).
    pub body: Vec<u8>,
    /// The body's content type.
    pub content_type: String,
    /// Broker properties, as a JSON object document; the relay maps them onto the message.
    pub properties: Document,
    /// When the row was written.
    pub created_at: DateTime<Utc>,
}

/// An outbox row as claimed by a publisher.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// The message as written.
    pub message: OutboxMessage,
    /// Who holds the claim.
    pub claimed_by: String,
    /// When the claim lapses and another claimer may take the row.
    pub claimed_until: DateTime<Utc>,
    /// How many times the row has been claimed, this claim included.
    pub claims: i64,
}

/// Rows removed by [`crate::Store::purge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    /// Inbox rows removed.
    pub inbox: u64,
    /// Idempotency keys removed.
    pub idempotency_keys: u64,
    /// Dispatched outbox rows removed.
    pub outbox: u64,
}

/// Everything one handled message changes. [`crate::Store::commit`] writes all of it or none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitOfWork {
    /// The inbox row; when it already exists the unit fails with
    /// [`StoreErrorKind::DuplicateInbox`] and writes nothing.
    pub inbox: Option<InboxEntry>,
    /// Idempotency keys to record; an existing key fails the unit with a conflict.
    pub idempotency_keys: Vec<IdempotencyKey>,
    /// Record writes, applied in order.
    pub writes: Vec<RecordWrite>,
    /// Events to publish after the commit.
    pub outbox: Vec<OutboxMessage>,
}

impl UnitOfWork {
    /// An empty unit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the inbox row.
    pub fn set_inbox(&mut self, worker: &str, event_id: Uuid, received_at: DateTime<Utc>) {
        self.inbox = Some(InboxEntry {
            worker: worker.to_string(),
            event_id,
            received_at,
        });
    }

    /// Adds an idempotency key with its outcome.
    pub fn add_idempotency_key(
        &mut self,
        worker: &str,
        key: &str,
        outcome: serde_json::Value,
        created_at: DateTime<Utc>,
    ) {
        self.idempotency_keys.push(IdempotencyKey {
            worker: worker.to_string(),
            key: key.to_string(),
            outcome,
            created_at,
        });
    }

    /// Adds an outbox message.
    pub fn add_outbox(&mut self, message: OutboxMessage) {
        self.outbox.push(message);
    }

    /// Adds a write of `record` under `expect`.
    pub fn put<R: Record>(&mut self, record: &R, expect: Expect) -> Result<(), StoreError> {
        let body = Document::encode(record).map_err(|e| {
            StoreError::with_source(
                StoreErrorKind::Invalid,
                format!(
                    "record {}/{}/{} does not serialize",
                    R::KIND,
                    record.tenant_id(),
                    record.id()
                ),
                e,
            )
        })?;
        self.writes.push(RecordWrite {
            kind: R::KIND,
            tenant_id: record.tenant_id().to_string(),
            environment_id: record.environment_id().to_string(),
            id: record.id().to_string(),
            expect,
            body: Some(body),
        });
        Ok(())
    }

    /// Adds a delete of `record` under `expect`.
    pub fn delete<R: Record>(&mut self, record: &R, expect: Expect) -> Result<(), StoreError> {
        self.delete_by_id(R::KIND, record.tenant_id(), record.id(), expect);
        Ok(())
    }

    /// Adds a delete of the record with this key under `expect`.
    pub fn delete_by_id(&mut self, kind: RecordKind, tenant_id: &str, id: &str, expect: Expect) {
        self.writes.push(RecordWrite {
            kind,
            tenant_id: tenant_id.to_string(),
            environment_id: String::new(),
            id: id.to_string(),
            expect,
            body: None,
        });
    }

    /// True when committing the unit would write nothing.
    pub fn is_empty(&self) -> bool {
        self.inbox.is_none()
            && self.idempotency_keys.is_empty()
            && self.writes.is_empty()
            && self.outbox.is_empty()
    }
}

/// Messages shared by both backends so their errors read the same.
pub(crate) mod messages {
    use super::*;

    pub(crate) fn duplicate_inbox(entry: &InboxEntry) -> StoreError {
        StoreError::new(
            StoreErrorKind::DuplicateInbox,
            format!(
                "event {} was already handled by worker {:?}",
                entry.event_id, entry.worker
            ),
        )
    }

    pub(crate) fn duplicate_key(key: &IdempotencyKey) -> StoreError {
        StoreError::conflict(format!(
            "idempotency key {:?} of worker {:?} already exists",
            key.key, key.worker
        ))
    }

    pub(crate) fn write_conflict(write: &RecordWrite) -> StoreError {
        let what = match write.expect {
            Expect::Absent => "expected it absent, but it exists".to_string(),
            Expect::Version(n) => format!("expected version {n}, but it changed or does not exist"),
            Expect::Any => "write failed".to_string(),
        };
        StoreError::conflict(format!(
            "record {}/{}/{}: {what}",
            write.kind, write.tenant_id, write.id
        ))
    }
}
