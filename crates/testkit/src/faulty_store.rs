//! A store wrapper that injects faults per operation: failures of a given kind, and "crash
//! after commit" (the commit lands, then the caller never hears back), the window rule 6 covers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_store::{
    OutboxRow, PurgeCounts, RawRecord, RecordKind, Store, StoreError, StoreErrorKind,
    TenantBinding, UnitOfWork,
};
use parking_lot::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

/// Store operations a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreOp {
    /// `tenant_binding`.
    TenantBinding,
    /// `inbox_contains`.
    InboxContains,
    /// `commit` and each unit of `commit_many`.
    Commit,
    /// `claim_outbox`.
    ClaimOutbox,
}

/// What a targeted call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFault {
    /// Fails with this kind without touching the store.
    Fail(StoreErrorKind),
    /// Performs the operation, then never returns (the process "died" right after it).
    HangAfter,
}

/// Wraps a store; untargeted calls pass through.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    calls: Mutex<HashMap<StoreOp, u32>>,
    plan: Mutex<HashMap<(StoreOp, u32), StoreFault>>,
    hung: AtomicU32,
    hung_notify: Notify,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("plan", &*self.plan.lock())
            .finish_non_exhaustive()
    }
}

impl FaultyStore {
    /// Wraps `inner` with an empty plan.
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            calls: Mutex::new(HashMap::new()),
            plan: Mutex::new(HashMap::new()),
            hung: AtomicU32::new(0),
            hung_notify: Notify::new(),
        })
    }

    /// Call number `n` (1-based) of `op` gets `fault`.
    pub fn inject(&self, op: StoreOp, n: u32, fault: StoreFault) {
        self.plan.lock().insert((op, n), fault);
    }

    /// Waits until a [`StoreFault::HangAfter`] call has performed its operation.
    pub async fn wait_hung(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, async {
            loop {
                let notified = self.hung_notify.notified();
                if self.hung.load(Ordering::SeqCst) > 0 {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }

    fn fault(&self, op: StoreOp) -> Option<StoreFault> {
        let n = {
            let mut calls = self.calls.lock();
            let c = calls.entry(op).or_insert(0);
            *c += 1;
            *c
        };
        self.plan.lock().get(&(op, n)).copied()
    }

    async fn hang(&self) -> ! {
        self.hung.fetch_add(1, Ordering::SeqCst);
        self.hung_notify.notify_waiters();
        std::future::pending::<()>().await;
        unreachable!("a pending future never completes")
    }
}

fn injected(kind: StoreErrorKind, op: StoreOp) -> StoreError {
    StoreError::new(kind, format!("injected fault on {op:?}"))
}

#[async_trait::async_trait]
impl Store for FaultyStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }

    async fn put_tenant_binding(&self, b: &TenantBinding) -> Result<(), StoreError> {
        self.inner.put_tenant_binding(b).await
    }

    async fn tenant_binding(
        &self,
        environment_id: &str,
    ) -> Result<Option<TenantBinding>, StoreError> {
        match self.fault(StoreOp::TenantBinding) {
            Some(StoreFault::Fail(k)) => Err(injected(k, StoreOp::TenantBinding)),
            Some(StoreFault::HangAfter) => {
                let _ = self.inner.tenant_binding(environment_id).await;
                self.hang().await
            }
            None => self.inner.tenant_binding(environment_id).await,
        }
    }

    async fn inbox_contains(&self, worker: &str, event_id: Uuid) -> Result<bool, StoreError> {
        match self.fault(StoreOp::InboxContains) {
            Some(StoreFault::Fail(k)) => Err(injected(k, StoreOp::InboxContains)),
            Some(StoreFault::HangAfter) => {
                let _ = self.inner.inbox_contains(worker, event_id).await;
                self.hang().await
            }
            None => self.inner.inbox_contains(worker, event_id).await,
        }
    }

    async fn idempotency_key(
        &self,
        worker: &str,
        key: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.inner.idempotency_key(worker, key).await
    }

    async fn get_raw(
        &self,
        kind: RecordKind,
        tenant_id: &str,
        id: &str,
    ) -> Result<Option<RawRecord>, StoreError> {
        self.inner.get_raw(kind, tenant_id, id).await
    }

    async fn list_raw(
        &self,
        kind: RecordKind,
        tenant_id: Option<&str>,
        environment_id: Option<&str>,
    ) -> Result<Vec<RawRecord>, StoreError> {
        self.inner.list_raw(kind, tenant_id, environment_id).await
    }

    async fn commit(&self, uow: UnitOfWork) -> Result<(), StoreError> {
        match self.fault(StoreOp::Commit) {
            Some(StoreFault::Fail(k)) => Err(injected(k, StoreOp::Commit)),
            Some(StoreFault::HangAfter) => {
                let _ = self.inner.commit(uow).await;
                self.hang().await
            }
            None => self.inner.commit(uow).await,
        }
    }

    async fn commit_many(&self, uows: Vec<UnitOfWork>) -> Vec<Result<(), StoreError>> {
        // Units are committed one by one here so a fault can target one of them precisely.
        let mut out = Vec::with_capacity(uows.len());
        for u in uows {
            out.push(self.commit(u).await);
        }
        out
    }

    async fn claim_outbox(
        &self,
        claimer: &str,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        match self.fault(StoreOp::ClaimOutbox) {
            Some(StoreFault::Fail(k)) => Err(injected(k, StoreOp::ClaimOutbox)),
            Some(StoreFault::HangAfter) => {
                let _ = self.inner.claim_outbox(claimer, limit, lease, now).await;
                self.hang().await
            }
            None => self.inner.claim_outbox(claimer, limit, lease, now).await,
        }
    }

    async fn mark_dispatched(&self, ids: &[Uuid], now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.mark_dispatched(ids, now).await
    }

    async fn pending_outbox(&self) -> Result<u64, StoreError> {
        self.inner.pending_outbox().await
    }

    async fn purge(
        &self,
        inbox_before: DateTime<Utc>,
        outbox_dispatched_before: DateTime<Utc>,
    ) -> Result<PurgeCounts, StoreError> {
        self.inner
            .purge(inbox_before, outbox_dispatched_before)
            .await
    }
}
