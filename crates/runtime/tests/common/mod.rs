//! Shared fixtures of the rule tests: a small worker whose handler records a note, emits one
//! event, and obeys a fault plan.

#![allow(dead_code)]

pub mod scenarios;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fleet_envelope::examples::{sample_envelope, sample_payload};
use fleet_envelope::{Envelope, EventType};
use fleet_runtime::prelude::*;
use fleet_store::{Record, RecordKind};
use fleet_testkit::FaultPlan;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub const WORKER: &str = "probe-worker";
pub const TENANT: &str = "tenant-contoso";
pub const ENVIRONMENT: &str = "env-prod-weu";
pub const INPUT: EventType = EventType::HealthCheckCompleted;
pub const OUTPUT: EventType = EventType::ScalingPolicyApplied;
/// Every test body runs under this bound.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Waits on conditions use this bound.
pub const WAIT: Duration = Duration::from_secs(20);

/// A record the test handler writes: one per handled envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub id: String,
    pub tenant_id: String,
    pub environment_id: String,
    pub event_id: String,
}

impl Record for Note {
    const KIND: RecordKind = RecordKind::Service;
    fn id(&self) -> &str {
        &self.id
    }
    fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
    fn environment_id(&self) -> &str {
        &self.environment_id
    }
}

/// What the test handler can see and what tests inspect.
#[derive(Default)]
pub struct Ports {
    pub plan: FaultPlan,
    pub runs: AtomicUsize,
    pub inside: AtomicUsize,
    pub max_inside_per_key: Mutex<std::collections::HashMap<String, usize>>,
    pub inside_per_key: Mutex<std::collections::HashMap<String, usize>>,
    pub max_inside: AtomicUsize,
    pub idempotency_key: Mutex<Option<String>>,
}

impl Ports {
    pub fn with_plan(plan: FaultPlan) -> Self {
        Ports {
            plan,
            ..Ports::default()
        }
    }
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// A fresh input envelope about `subject`, with a random id.
pub fn input(subject: &str) -> Envelope {
    let mut e = sample_envelope(INPUT).with_subject(subject);
    e.event_id = uuid::Uuid::new_v4();
    e.tenant_id = TENANT.into();
    e.environment_id = ENVIRONMENT.into();
    e
}

/// The handler: optional idempotency key, fault plan, note, one emitted event.
pub async fn handle(env: &Envelope, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    let ports = ctx.ports_arc();
    let key = ctx.ordering_key().unwrap_or_default().to_owned();
    let now_inside = ports.inside.fetch_add(1, Ordering::SeqCst) + 1;
    ports.max_inside.fetch_max(now_inside, Ordering::SeqCst);
    {
        let mut per_key = ports.inside_per_key.lock();
        let n = per_key.entry(key.clone()).or_default();
        *n += 1;
        let n = *n;
        let mut max = ports.max_inside_per_key.lock();
        let m = max.entry(key.clone()).or_default();
        *m = (*m).max(n);
    }
    let result = body(env, ctx, &ports).await;
    *ports.inside_per_key.lock().entry(key).or_default() -= 1;
    ports.inside.fetch_sub(1, Ordering::SeqCst);
    result
}

async fn body(env: &Envelope, ctx: &mut HandlerContext<Ports>, ports: &Ports) -> HandlerResult {
    ports.runs.fetch_add(1, Ordering::SeqCst);
    let key = ports.idempotency_key.lock().clone();
    if let Some(key) = key
        && ctx.idempotency_key(&key).await?
    {
        return Ok(Outcome::NoOp);
    }
    ports.plan.next().await?;
    let note = Note {
        id: env.event_id.to_string(),
        tenant_id: env.tenant_id.clone(),
        environment_id: env.environment_id.clone(),
        event_id: env.event_id.to_string(),
    };
    ctx.put(&note, Expect::Any)?;
    ctx.emit(sample_payload(OUTPUT), env.subject.clone())?;
    Ok(Outcome::Done)
}

/// The test worker's definition.
pub fn definition() -> WorkerDefinition<Ports> {
    WorkerDefinition::builder(WORKER)
        .on(INPUT, |env, ctx| Box::pin(handle(env, ctx)))
        .build()
        .expect("valid definition")
}

/// Notes in the store for the test tenant.
pub async fn notes_all(store: &Arc<dyn fleet_store::Store>) -> usize {
    notes(store).await.len()
}

/// Notes, decoded.
pub async fn notes(store: &Arc<dyn fleet_store::Store>) -> Vec<Note> {
    use fleet_store::StoreExt;
    store
        .list::<Note>(TENANT, None)
        .await
        .expect("list notes")
        .into_iter()
        .map(|v| v.record)
        .collect()
}
