//! What a handler gets besides its envelope: store reads, the unit of work being built,
//! `emit`, idempotency keys, the clock, the worker's ports and the ordering key.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleet_envelope::{Envelope, Payload};
use fleet_store::{Expect, Record, Store, StoreExt, UnitOfWork, Versioned};
use uuid::Uuid;

use crate::clock::Clock;
use crate::handler_error::HandlerError;
use crate::timer::TimerTick;

/// What triggered a handler run.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A delivered (and decoded) envelope.
    Message(Arc<Envelope>),
    /// A timer window (a virtual envelope with a window-derived id).
    Timer(TimerTick),
}

impl Trigger {
    /// The event id the inbox dedupes on.
    pub fn event_id(&self) -> Uuid {
        match self {
            Trigger::Message(e) => e.event_id,
            Trigger::Timer(t) => t.event_id,
        }
    }
}

/// The per-run context handed to a handler.
///
/// Everything the handler changes is recorded in a [`UnitOfWork`] that the runtime commits
/// atomically with the inbox row and the emitted events; nothing is written before the handler
/// returns `Ok`.
pub struct HandlerContext<P> {
    // Scopes idempotency keys and emitted ids.
    worker: Arc<str>,
    // Read access; writes go through `unit` so they commit atomically.
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ports: Arc<P>,
    trigger: Trigger,
    ordering_key: Option<String>,
    // Emitted events become outbox rows at commit; kept as envelopes so tests and logs see them.
    emitted: Vec<Envelope>,
    unit: UnitOfWork,
    // Captured once so a handler sees one consistent "now" for a run.
    now: DateTime<Utc>,
}

impl<P> std::fmt::Debug for HandlerContext<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerContext")
            .field("worker", &self.worker)
            .field("event_id", &self.trigger.event_id())
            .field("ordering_key", &self.ordering_key)
            .field("emitted", &self.emitted.len())
            .finish_non_exhaustive()
    }
}

impl<P> HandlerContext<P> {
    /// A fresh context (the runtime builds these; tests of handlers may too).
    pub fn new(
        worker: Arc<str>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ports: Arc<P>,
        trigger: Trigger,
        ordering_key: Option<String>,
    ) -> Self {
        let now = clock.now();
        HandlerContext {
            worker,
            store,
            clock,
            ports,
            trigger,
            ordering_key,
            emitted: Vec::new(),
            unit: UnitOfWork::default(),
            now,
        }
    }

    /// The worker's name.
    pub fn worker(&self) -> &str {
        &self.worker
    }

    /// Read access to the store (cross-tenant reads are a bug: prefer [`Self::get`]).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The worker's ports (control-plane clients, probers...).
    pub fn ports(&self) -> &P {
        &self.ports
    }

    /// A shared handle on the ports, for spawning.
    pub fn ports_arc(&self) -> Arc<P> {
        self.ports.clone()
    }

    /// The clock; [`Self::now`] is the instant the run started.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The instant this run started.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// What triggered this run.
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }

    /// The ordering key this run holds (no other run with it is in flight in this replica).
    pub fn ordering_key(&self) -> Option<&str> {
        self.ordering_key.as_deref()
    }

    /// The tenant the run acts for; `None` for timers, which span tenants.
    pub fn tenant_id(&self) -> Option<&str> {
        match &self.trigger {
            Trigger::Message(e) => Some(&e.tenant_id),
            Trigger::Timer(_) => None,
        }
    }

    /// A record of the envelope's tenant.
    pub async fn get<R: Record>(&self, id: &str) -> Result<Option<Versioned<R>>, HandlerError> {
        let tenant = self.tenant_id().ok_or_else(|| {
            HandlerError::permanent("a timer run has no tenant: use get_for(tenant, id)")
        })?;
        Ok(self.store.get::<R>(tenant, id).await?)
    }

    /// A record of `tenant`; for message runs `tenant` must be the envelope's.
    pub async fn get_for<R: Record>(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<Versioned<R>>, HandlerError> {
        self.check_tenant(tenant)?;
        Ok(self.store.get::<R>(tenant, id).await?)
    }

    /// Records a write, committed with everything else when the handler succeeds.
    pub fn put<R: Record>(&mut self, record: &R, expect: Expect) -> Result<(), HandlerError> {
        self.check_tenant(record.tenant_id())?;
        self.unit.put(record, expect)?;
        Ok(())
    }

    /// Records a deletion.
    pub fn delete<R: Record>(&mut self, record: &R, expect: Expect) -> Result<(), HandlerError> {
        self.check_tenant(record.tenant_id())?;
        self.unit.delete(record, expect)?;
        Ok(())
    }

    /// The unit of work built so far.
    pub fn unit(&self) -> &UnitOfWork {
        &self.unit
    }

    /// `true` when work under `key` was already done (the handler should skip it); otherwise
    /// records the key so it commits together with this run's changes and returns `false`.
    pub async fn idempotency_key(&mut self, key: &str) -> Result<bool, HandlerError> {
        self.idempotency_key_with(key, serde_json::Value::Null)
            .await
    }

    /// Like [`Self::idempotency_key`], storing `outcome` with the key for later inspection.
    pub async fn idempotency_key_with(
        &mut self,
        key: &str,
        outcome: serde_json::Value,
    ) -> Result<bool, HandlerError> {
        if self.unit.idempotency_keys.iter().any(|k| k.key == key) {
            return Ok(true);
        }
        if self
            .store
            .idempotency_key(&self.worker, key)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        self.unit
            .add_idempotency_key(&self.worker, key, outcome, self.now);
        Ok(false)
    }

    /// Emits an event caused by the triggering envelope (same tenant, environment, traceId and
    /// correlationId). Its id is deterministic: a re-run emits the same ids in the same order.
    pub fn emit(
        &mut self,
        payload: Payload,
        subject: Option<String>,
    ) -> Result<Uuid, HandlerError> {
        match &self.trigger {
            Trigger::Message(env) => {
                let ordinal = self.next_ordinal()?;
                let event = env.caused(&self.worker, ordinal, payload, subject, self.now);
                Ok(self.push(event))
            }
            Trigger::Timer(_) => Err(HandlerError::permanent(
                "a timer run has no tenant: use emit_for(tenant, environment, payload, subject)",
            )),
        }
    }

    /// Emits an event for an explicit tenant and environment (timer runs, which span tenants).
    /// For message runs the tenant must be the envelope's.
    pub fn emit_for(
        &mut self,
        tenant_id: &str,
        environment_id: &str,
        payload: Payload,
        subject: Option<String>,
    ) -> Result<Uuid, HandlerError> {
        self.check_tenant(tenant_id)?;
        let ordinal = self.next_ordinal()?;
        let parent = match &self.trigger {
            Trigger::Message(env) => {
                let mut p = (**env).clone();
                p.environment_id = environment_id.to_owned();
                p
            }
            Trigger::Timer(tick) => {
                crate::pipeline::timer_envelope(tick, tenant_id, environment_id, &self.worker)
            }
        };
        let event = parent.caused(&self.worker, ordinal, payload, subject, self.now);
        Ok(self.push(event))
    }

    /// Events emitted so far in this run.
    pub fn emitted(&self) -> &[Envelope] {
        &self.emitted
    }

    /// Hands the unit of work and the emitted events to the runtime.
    pub(crate) fn into_parts(self) -> (UnitOfWork, Vec<Envelope>) {
        (self.unit, self.emitted)
    }

    fn next_ordinal(&self) -> Result<u32, HandlerError> {
        u32::try_from(self.emitted.len())
            .map_err(|_| HandlerError::permanent("too many emitted events"))
    }

    fn push(&mut self, mut event: Envelope) -> Uuid {
        // Consumers parent their span on the span that handled the trigger (rule 8).
        if let Some(span_id) = fleet_telemetry::current_traceparent()
            .and_then(|tp| tp.split('-').nth(2).map(str::to_owned))
        {
            event.span_id = Some(span_id);
        }
        let id = event.event_id;
        self.emitted.push(event);
        id
    }

    fn check_tenant(&self, tenant: &str) -> Result<(), HandlerError> {
        match self.tenant_id() {
            Some(own) if own != tenant => Err(HandlerError::permanent(format!(
                "cross-tenant access refused: the envelope's tenant is {own:?}, not {tenant:?}"
            ))),
            _ => Ok(()),
        }
    }
}
