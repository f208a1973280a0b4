//! An in-memory [`Store`] with the same semantics as the real backends (optimistic
//! concurrency, duplicate inbox detection, leased outbox claims), for fast unit tests and for
//! measuring the runtime's own CPU cost without I/O. Not durable, not shared across processes.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_store::{
    Expect, OutboxMessage, OutboxRow, PurgeCounts, RawRecord, RecordKind, Store, StoreError,
    StoreErrorKind, TenantBinding, UnitOfWork,
};
use parking_lot::Mutex;
use uuid::Uuid;

#[derive(Default)]
struct State {
    bindings: HashMap<String, TenantBinding>,
    inbox: HashMap<(String, Uuid), DateTime<Utc>>,
    keys: HashMap<(String, String), (serde_json::Value, DateTime<Utc>)>,
    records: HashMap<(RecordKind, String, String), RawRecord>,
    // Pending rows keyed like the backends order claims: (created_at, id).
    outbox: BTreeMap<(DateTime<Utc>, Uuid), OutboxEntry>,
    // eventId → key in `outbox`, so marking is not a scan.
    outbox_index: HashMap<Uuid, (DateTime<Utc>, Uuid)>,
    // Dispatched rows kept for the audit window: eventId → dispatch time.
    dispatched: HashMap<Uuid, DateTime<Utc>>,
}

struct OutboxEntry {
    message: OutboxMessage,
    claimed_by: String,
    claimed_until: Option<DateTime<Utc>>,
    claims: i64,
}

/// The in-memory store.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

fn apply(state: &mut State, uow: UnitOfWork) -> Result<(), StoreError> {
    if let Some(entry) = &uow.inbox
        && state
            .inbox
            .contains_key(&(entry.worker.clone(), entry.event_id))
    {
        return Err(StoreError::new(
            StoreErrorKind::DuplicateInbox,
            format!("event {} already handled", entry.event_id),
        ));
    }
    for k in &uow.idempotency_keys {
        if state.keys.contains_key(&(k.worker.clone(), k.key.clone())) {
            return Err(StoreError::conflict(format!(
                "idempotency key {:?} already exists",
                k.key
            )));
        }
    }
    // Each write's expectation holds against the records as the unit's earlier writes left
    // them, as in the real backends (a key put twice with `Expect::Absent` conflicts).
    let mut pending: HashMap<(RecordKind, String, String), Option<i64>> = HashMap::new();
    for w in &uow.writes {
        let key = (w.kind, w.tenant_id.clone(), w.id.clone());
        let current = match pending.get(&key) {
            Some(version) => *version,
            None => state.records.get(&key).map(|r| r.version),
        };
        let ok = match (w.expect, current) {
            (Expect::Any, _) => true,
            (Expect::Absent, c) => c.is_none(),
            (Expect::Version(v), Some(c)) => c == v,
            (Expect::Version(_), None) => false,
        };
        if !ok {
            return Err(StoreError::conflict(format!(
                "record {}/{}/{}: expectation failed",
                w.kind, w.tenant_id, w.id
            )));
        }
        let next = w.body.as_ref().map(|_| current.map_or(1, |v| v + 1));
        pending.insert(key, next);
    }
    // Documents are parsed before anything changes, so the unit stays all-or-nothing.
    let bodies = uow
        .writes
        .iter()
        .map(|w| w.body.as_ref().map(|b| b.to_value()).transpose())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::invalid(format!("a record document is not JSON: {e}")))?;
    let now = Utc::now();
    if let Some(entry) = uow.inbox {
        state
            .inbox
            .insert((entry.worker, entry.event_id), entry.received_at);
    }
    for k in uow.idempotency_keys {
        state
            .keys
            .insert((k.worker, k.key), (k.outcome, k.created_at));
    }
    for (w, body) in uow.writes.into_iter().zip(bodies) {
        let key = (w.kind, w.tenant_id.clone(), w.id.clone());
        match body {
            None => {
                state.records.remove(&key);
            }
            Some(body) => {
                let version = state.records.get(&key).map(|r| r.version + 1).unwrap_or(1);
                let raw = RawRecord {
                    kind: w.kind,
                    tenant_id: w.tenant_id,
                    environment_id: w.environment_id,
                    id: w.id,
                    version,
                    body,
                    updated_at: now,
                };
                state.records.insert(key, raw);
            }
        }
    }
    for message in uow.outbox {
        let key = (message.created_at, message.id);
        state.outbox_index.insert(message.id, key);
        let entry = OutboxEntry {
            message,
            claimed_by: String::new(),
            claimed_until: None,
            claims: 0,
        };
        state.outbox.insert(key, entry);
    }
    Ok(())
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn put_tenant_binding(&self, b: &TenantBinding) -> Result<(), StoreError> {
        self.state
            .lock()
            .bindings
            .insert(b.environment_id.clone(), b.clone());
        Ok(())
    }

    async fn tenant_binding(
        &self,
        environment_id: &str,
    ) -> Result<Option<TenantBinding>, StoreError> {
        Ok(self.state.lock().bindings.get(environment_id).cloned())
    }

    async fn inbox_contains(&self, worker: &str, event_id: Uuid) -> Result<bool, StoreError> {
        Ok(self
            .state
            .lock()
            .inbox
            .contains_key(&(worker.to_owned(), event_id)))
    }

    async fn idempotency_key(
        &self,
        worker: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self
            .state
            .lock()
            .keys
            .get(&(worker.to_owned(), key.to_owned()))
            .map(|(v, _)| v.clone()))
    }

    async fn get_raw(
        &self,
        kind: RecordKind,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<RawRecord>, StoreError> {
        Ok(self
            .state
            .lock()
            .records
            .get(&(kind, tenant_id.to_owned(), id.to_owned()))
            .cloned())
    }

    async fn list_raw(
        &self,
        kind: RecordKind,
        tenant_id: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<Vec<RawRecord>, StoreError> {
        let state = self.state.lock();
        let mut out: Vec<RawRecord> = state
            .records
            .values()
            .filter(|r| r.kind == kind)
            .filter(|r| tenant_id.is_none_or(|t| r.tenant_id == t))
            .filter(|r| environment_id.is_none_or(|e| r.environment_id == e))
            .cloned()
            .collect();
        out.sort_by(|a, b| (&a.tenant_id, &a.id).cmp(&(&b.tenant_id, &b.id)));
        Ok(out)
    }

    async fn commit(&self, uow: UnitOfWork) -> Result<(), StoreError> {
        apply(&mut self.state.lock(), uow)
    }

    async fn commit_many(&self, uows: Vec<UnitOfWork>) -> Vec<Result<(), StoreError>> {
        let mut state = self.state.lock();
        uows.into_iter().map(|u| apply(&mut state, u)).collect()
    }

    async fn claim_outbox(
        &self,
        claimer: &str,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let mut state = self.state.lock();
        let mut out = Vec::new();
        for entry in state.outbox.values_mut() {
            if out.len() >= limit {
                break;
            }
            if entry.claimed_until.is_some_and(|u| u > now) {
                continue;
            }
            entry.claimed_by = claimer.to_owned();
            entry.claimed_until = Some(until);
            entry.claims += 1;
            out.push(OutboxRow {
                message: entry.message.clone(),
                claimed_by: entry.claimed_by.clone(),
                claimed_until: until,
                claims: entry.claims,
            });
        }
        Ok(out)
    }

    async fn mark_dispatched(&self, ids: &[Uuid], now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut state = self.state.lock();
        for id in ids {
            if let Some(key) = state.outbox_index.remove(id) {
                state.outbox.remove(&key);
                state.dispatched.insert(*id, now);
            }
        }
        Ok(())
    }

    async fn pending_outbox(&self) -> Result<u64, StoreError> {
        Ok(self.state.lock().outbox.len() as u64)
    }

    async fn purge(
        &self,
        inbox_before: DateTime<Utc>,
        outbox_dispatched_before: DateTime<Utc>,
    ) -> Result<PurgeCounts, StoreError> {
        let mut state = self.state.lock();
        let (i, k, o) = (state.inbox.len(), state.keys.len(), state.dispatched.len());
        state.inbox.retain(|_, at| *at >= inbox_before);
        state.keys.retain(|_, (_, at)| *at >= inbox_before);
        state
            .dispatched
            .retain(|_, at| *at >= outbox_dispatched_before);
        Ok(PurgeCounts {
            inbox: (i - state.inbox.len()) as u64,
            idempotency_keys: (k - state.keys.len()) as u64,
            outbox: (o - state.dispatched.len()) as u64,
        })
    }
}
