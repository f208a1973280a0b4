//! The engine's timer: deadlines (lock expiry, scheduled enqueue) wake receivers that are
//! already waiting — driven here by a manual clock, so no test waits for real time to pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fleet_bus::{EntityPath, Message, ReceiveMode};
use fleet_emulator::{Clock, Emulator, EmulatorOptions, ManualClock, QueueConfig, Topology};

const LONG_WAIT: Duration = Duration::from_secs(20);

async fn engine(clock: &Arc<ManualClock>, dir: &std::path::Path) -> Emulator {
    let mut q = QueueConfig::new("q");
    q.settings.lock_duration = Duration::from_secs(30);
    Emulator::open(
        Topology::default().with_queue(q),
        dir,
        clock.clone(),
        EmulatorOptions::default(),
    )
    .await
    .expect("engine opens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_expiring_wakes_a_waiting_receiver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let engine = engine(&clock, dir.path()).await;
    let q = engine.resolve_sender("q").expect("queue");
    let rq = engine
        .resolve_receiver(&EntityPath::queue("q"), false)
        .expect("queue");
    engine
        .send(&q, vec![Message::new("x")])
        .await
        .expect("send");
    let first = engine
        .receive(&rq, ReceiveMode::PeekLock, 1, Duration::ZERO)
        .await
        .expect("receive");
    assert_eq!(first.len(), 1);
    let mut waiting = {
        let (engine, rq) = (engine.clone(), rq.clone());
        tokio::spawn(async move {
            engine
                .receive(&rq, ReceiveMode::PeekLock, 1, LONG_WAIT)
                .await
        })
    };
    let started = Instant::now();
    // Still waiting: nothing is due until the clock moves.
    let early = tokio::time::timeout(Duration::from_millis(200), &mut waiting).await;
    assert!(
        early.is_err(),
        "the receive returned before anything was due: {early:?}"
    );
    clock.advance(Duration::from_secs(31));
    let again = waiting.await.expect("task").expect("receive");
    assert_eq!(again.len(), 1, "the waiting receive was not woken");
    assert_eq!(again[0].delivery_count, 2);
    assert!(
        started.elapsed() < LONG_WAIT / 2,
        "woken only by its own timeout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_message_coming_due_wakes_a_waiting_receiver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let engine = engine(&clock, dir.path()).await;
    let q = engine.resolve_sender("q").expect("queue");
    let rq = engine
        .resolve_receiver(&EntityPath::queue("q"), false)
        .expect("queue");
    let at = clock.now() + chrono::Duration::minutes(10);
    let seq = engine
        .schedule(&q, vec![Message::new("later")], at)
        .await
        .expect("schedule")[0];
    let mut waiting = {
        let (engine, rq) = (engine.clone(), rq.clone());
        tokio::spawn(async move {
            engine
                .receive(&rq, ReceiveMode::ReceiveAndDelete, 1, LONG_WAIT)
                .await
        })
    };
    let started = Instant::now();
    // Still waiting: nothing is due until the clock moves.
    let early = tokio::time::timeout(Duration::from_millis(200), &mut waiting).await;
    assert!(
        early.is_err(),
        "the receive returned before anything was due: {early:?}"
    );
    clock.advance(Duration::from_secs(600));
    let got = waiting.await.expect("task").expect("receive");
    assert_eq!(
        got.iter().map(|m| m.sequence_number).collect::<Vec<_>>(),
        vec![seq]
    );
    assert_eq!(got[0].enqueued_time, at);
    assert!(
        started.elapsed() < LONG_WAIT / 2,
        "woken only by its own timeout"
    );
}
