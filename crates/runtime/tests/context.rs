//! The handler context on its own: deterministic emitted ids, tenant scoping, idempotency keys.

mod common;

use std::sync::Arc;

use common::*;
use fleet_envelope::emitted_event_id;
use fleet_envelope::examples::sample_payload;
use fleet_runtime::{Expect, HandlerContext, HandlerErrorKind, SystemClock, Trigger};
use fleet_store::Store;
use fleet_testkit::MemoryStore;

fn context(store: Arc<dyn Store>, env: &fleet_envelope::Envelope) -> HandlerContext<()> {
    HandlerContext::new(
        Arc::from(WORKER),
        store,
        Arc::new(SystemClock),
        Arc::new(()),
        Trigger::Message(Arc::new(env.clone())),
        None,
    )
}

#[tokio::test]
async fn emitted_ids_are_deterministic_per_trigger_and_ordinal() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let env = input("services/svc-1");
    let ids = |mut ctx: HandlerContext<()>| {
        let a = ctx.emit(sample_payload(OUTPUT), None).unwrap();
        let b = ctx.emit(sample_payload(OUTPUT), None).unwrap();
        (a, b)
    };
    let first = ids(context(store.clone(), &env));
    let rerun = ids(context(store.clone(), &env));
    assert_eq!(first, rerun, "a re-run emits the same ids");
    assert_eq!(first.0, emitted_event_id(env.event_id, WORKER, 0));
    assert_eq!(first.1, emitted_event_id(env.event_id, WORKER, 1));
}

#[tokio::test]
async fn writes_and_emits_for_another_tenant_are_refused() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let env = input("services/svc-1");
    let mut ctx = context(store, &env);
    let foreign = Note {
        id: "n".into(),
        tenant_id: "tenant-other".into(),
        environment_id: ENVIRONMENT.into(),
        event_id: "e".into(),
    };
    let err = ctx.put(&foreign, Expect::Any).unwrap_err();
    assert_eq!(err.kind(), HandlerErrorKind::Permanent);
    let err = ctx
        .emit_for("tenant-other", ENVIRONMENT, sample_payload(OUTPUT), None)
        .unwrap_err();
    assert_eq!(err.kind(), HandlerErrorKind::Permanent);
    assert!(ctx.unit().writes.is_empty());
    assert!(ctx.emitted().is_empty());
}

#[tokio::test]
async fn an_idempotency_key_is_recorded_once_and_reported_done_afterwards() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let env = input("services/svc-1");
    let mut ctx = context(store.clone(), &env);
    assert!(!ctx.idempotency_key("k1").await.unwrap(), "new work");
    assert!(
        ctx.idempotency_key("k1").await.unwrap(),
        "same run asks again"
    );
    assert_eq!(ctx.unit().idempotency_keys.len(), 1);
    store.commit(ctx.unit().clone()).await.unwrap();
    let mut later = context(store, &input("services/svc-1"));
    assert!(
        later.idempotency_key("k1").await.unwrap(),
        "committed work is done"
    );
    assert!(later.unit().idempotency_keys.is_empty());
}
