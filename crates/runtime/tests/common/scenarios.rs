//! Scenarios shared by the SQLite and PostgreSQL rule tests: the backend changes, the
//! observable outcome must not.

use std::sync::Arc;
use std::time::Duration;

use fleet_envelope::emitted_event_id;
use fleet_envelope::examples::sample_payload;
use fleet_runtime::prelude::*;
use fleet_store::Store;
use fleet_testkit::{FaultyStore, Harness, StoreFault, StoreOp};

use super::*;

/// Rule 4 with two replicas sharing store and subscription: the same event delivered twice
/// (possibly to both replicas at once) is handled and committed once.
pub async fn duplicate_delivery_runs_once_across_replicas(h: &Harness) {
    let a = h.start(h.worker(definition(), h.config(), Arc::new(Ports::default())));
    let b = h.start(h.worker(definition(), h.config(), Arc::new(Ports::default())));
    let env = input("services/svc-dup");
    for _ in 0..3 {
        h.publish(&env).await.unwrap();
    }
    let (sa, sb) = (a.stats.clone(), b.stats.clone());
    h.wait_until("three deliveries settled", WAIT, || {
        let (x, y) = (sa.snapshot(), sb.snapshot());
        async move { x.handled + y.handled + x.dedupe_hits + y.dedupe_hits == 3 }
    })
    .await
    .unwrap();
    assert_eq!(
        sa.snapshot().handled + sb.snapshot().handled,
        1,
        "exactly one commit"
    );
    h.wait_until("the event is published", WAIT, || async {
        h.emitted().await.unwrap().len() == 1
    })
    .await
    .unwrap();
    a.stop(WAIT).await.unwrap();
    b.stop(WAIT).await.unwrap();
    assert_eq!(notes(&h.store).await.len(), 1);
    let emitted = h.emitted().await.unwrap();
    assert_eq!(emitted.len(), 1);
    assert_eq!(
        emitted[0].event_id,
        emitted_event_id(env.event_id, WORKER, 0)
    );
    assert!(h.dead_letters().await.unwrap().is_empty());
}

/// Rule 6: the process dies right after the commit (before settling and publishing). A fresh
/// replica gets the redelivery, recognises it as done, and its relay publishes the committed
/// outbox row exactly once, with the deterministic id.
pub async fn crash_after_commit_publishes_outbox_once(h: &Harness) {
    let faulty = FaultyStore::new(h.store.clone());
    faulty.inject(StoreOp::Commit, 1, StoreFault::HangAfter);
    let mut config = h.config();
    // Keep the doomed replica's relay from sweeping: only the survivor may publish.
    config.relay_interval = Duration::from_secs(3600);
    let faulty_store: Arc<dyn Store> = faulty.clone();
    let doomed_ports = Arc::new(Ports::default());
    let doomed = h.start(h.worker_on(definition(), config, doomed_ports, faulty_store));
    let env = input("services/svc-crash");
    h.publish(&env).await.unwrap();
    assert!(faulty.wait_hung(WAIT).await, "the commit happened");
    assert_eq!(h.store.pending_outbox().await.unwrap(), 1);
    doomed.crash();
    assert!(
        h.emitted().await.unwrap().is_empty(),
        "nothing was published before the crash"
    );

    let survivor_ports = Arc::new(Ports::default());
    let survivor = h.start(h.worker(definition(), h.config(), survivor_ports));
    // The crashed replica's lock runs out; the broker redelivers to the survivor.
    h.clock.advance(Duration::from_secs(61));
    let stats = survivor.stats.clone();
    h.wait_until("the redelivery is deduplicated", WAIT, || {
        let s = stats.snapshot();
        async move { s.dedupe_hits == 1 }
    })
    .await
    .unwrap();
    h.wait_until("the outbox row is published", WAIT, || async {
        h.store.pending_outbox().await.unwrap() == 0 && h.emitted().await.unwrap().len() == 1
    })
    .await
    .unwrap();
    survivor.stop(WAIT).await.unwrap();
    assert_eq!(stats.snapshot().handled, 0, "the handler did not run again");
    let emitted = h.emitted().await.unwrap();
    assert_eq!(emitted.len(), 1, "published exactly once");
    assert_eq!(
        emitted[0].event_id,
        emitted_event_id(env.event_id, WORKER, 0)
    );
    assert_eq!(notes(&h.store).await.len(), 1);
    assert!(h.dead_letters().await.unwrap().is_empty());
}

async fn on_sweep(tick: &TimerTick, ctx: &mut HandlerContext<Ports>) -> HandlerResult {
    ctx.ports()
        .runs
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let note = Note {
        id: format!("sweep-{}", tick.window_start.timestamp()),
        tenant_id: TENANT.into(),
        environment_id: ENVIRONMENT.into(),
        event_id: tick.event_id.to_string(),
    };
    ctx.put(&note, Expect::Absent)?;
    ctx.emit_for(
        TENANT,
        ENVIRONMENT,
        sample_payload(OUTPUT),
        Some("timers/sweep".into()),
    )?;
    Ok(Outcome::Done)
}

/// The timer worker: one 30-second timer writing a note per window and emitting one event.
pub fn timer_definition() -> WorkerDefinition<Ports> {
    WorkerDefinition::builder(WORKER)
        .timer("sweep", Duration::from_secs(30), |tick, ctx| {
            Box::pin(on_sweep(tick, ctx))
        })
        .build()
        .expect("valid definition")
}

/// Rule 10: two replicas sharing a store fire the same windows; each window's effects (record,
/// emitted event) happen once.
pub async fn timer_window_runs_once_across_replicas(h: &Harness) {
    let a = h.start(h.worker(timer_definition(), h.config(), Arc::new(Ports::default())));
    let b = h.start(h.worker(timer_definition(), h.config(), Arc::new(Ports::default())));
    let (sa, sb) = (a.stats.clone(), b.stats.clone());
    for window in 1..=2u64 {
        h.wait_until("both replicas ran the window", WAIT, || {
            let n = sa.snapshot().timer_runs + sb.snapshot().timer_runs;
            async move { n == 2 * window }
        })
        .await
        .unwrap();
        h.wait_until("the window's event is published", WAIT, || async {
            h.emitted().await.unwrap().len() as u64 == window
        })
        .await
        .unwrap();
        assert_eq!(notes(&h.store).await.len() as u64, window);
        h.clock.advance(Duration::from_secs(30));
    }
    a.stop(WAIT).await.unwrap();
    b.stop(WAIT).await.unwrap();
    let emitted = h.emitted().await.unwrap();
    assert!(emitted.len() >= 2);
    let ids: std::collections::HashSet<_> = emitted.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), emitted.len(), "no window emitted twice");
}
