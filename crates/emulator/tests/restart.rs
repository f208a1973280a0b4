//! Durability: stopping the engine mid-stream and reopening the data file loses nothing and
//! honours locks, lock tokens, delivery counts, schedules, deferrals, dead letters and the
//! duplicate-detection history.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fleet_bus::{BusErrorKind, DeadLetterOptions, EntityPath, Message, MessageState, ReceiveMode};
use fleet_emulator::{Clock, Emulator, EmulatorOptions, ManualClock, QueueConfig, Topology};

fn topology() -> Topology {
    let mut q = QueueConfig::new("q");
    q.settings.lock_duration = Duration::from_secs(30);
    q.settings.max_delivery_count = 5;
    q.duplicate_detection = Some(Duration::from_secs(600));
    Topology::default().with_queue(q)
}

async fn open(dir: &Path, clock: &Arc<ManualClock>) -> Emulator {
    Emulator::open(topology(), dir, clock.clone(), EmulatorOptions::default())
        .await
        .expect("engine opens")
}

const NO_WAIT: Duration = Duration::ZERO;

#[tokio::test]
async fn a_restart_loses_nothing_and_honours_locks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let engine = open(dir.path(), &clock).await;
    let q = engine.resolve_sender("q").expect("queue");
    let rq = engine
        .resolve_receiver(&EntityPath::queue("q"), false)
        .expect("queue");
    let msgs: Vec<Message> = (0..100)
        .map(|i| Message::new(format!("m{i}")).with_message_id(format!("id{i}")))
        .collect();
    let seqs = engine.send(&q, msgs).await.expect("send");
    let locked = engine
        .receive(&rq, ReceiveMode::PeekLock, 10, NO_WAIT)
        .await
        .expect("receive");
    assert_eq!(locked.len(), 10);
    for m in &locked[..5] {
        engine.complete(&rq, m.lock_token).await.expect("complete");
    }
    let scheduled = engine
        .schedule(
            &q,
            vec![Message::new("later")],
            clock.now() + chrono::Duration::minutes(5),
        )
        .await
        .expect("schedule")[0];
    let deferred = engine
        .receive(&rq, ReceiveMode::PeekLock, 2, NO_WAIT)
        .await
        .expect("receive");
    engine
        .defer(&rq, deferred[0].lock_token)
        .await
        .expect("defer");
    engine
        .dead_letter(
            &rq,
            deferred[1].lock_token,
            DeadLetterOptions::new("Broken", "bad input"),
        )
        .await
        .expect("dead-letter");
    // Stop mid-stream: no close, just drop.
    drop(engine);

    let engine = open(dir.path(), &clock).await;
    let q = engine.resolve_sender("q").expect("queue");
    let rq = engine
        .resolve_receiver(&EntityPath::queue("q"), false)
        .expect("queue");
    // Lock tokens survive: two of the five still-locked messages settle with their old tokens.
    for m in &locked[5..7] {
        engine
            .complete(&rq, m.lock_token)
            .await
            .expect("old token still valid after restart");
    }
    // Locked messages stay locked: everything else is delivered, they are not.
    let rest = engine
        .receive(&rq, ReceiveMode::PeekLock, 1000, NO_WAIT)
        .await
        .expect("receive");
    assert_eq!(rest.len(), 100 - 10 - 2, "available after restart");
    assert!(rest.iter().all(|m| {
        !locked
            .iter()
            .any(|l| l.sequence_number == m.sequence_number)
    }));
    for m in &rest {
        engine.complete(&rq, m.lock_token).await.expect("complete");
    }
    // Duplicate detection remembers ids sent before the restart.
    engine
        .send(&q, vec![Message::new("dup").with_message_id("id3")])
        .await
        .expect("send duplicate");
    assert!(
        engine
            .receive(&rq, ReceiveMode::PeekLock, 10, NO_WAIT)
            .await
            .expect("receive")
            .is_empty()
    );
    // Sequence numbers keep growing.
    let next = engine
        .send(&q, vec![Message::new("new")])
        .await
        .expect("send")[0];
    assert!(
        next > scheduled && next > *seqs.last().unwrap_or(&0),
        "sequence number {next} reused"
    );
    engine
        .receive(&rq, ReceiveMode::ReceiveAndDelete, 1, NO_WAIT)
        .await
        .expect("receive new");
    // Expired locks redeliver with the delivery count carried over.
    clock.advance(Duration::from_secs(31));
    let redelivered = engine
        .receive(&rq, ReceiveMode::PeekLock, 10, NO_WAIT)
        .await
        .expect("receive");
    let seqs_back: Vec<i64> = redelivered.iter().map(|m| m.sequence_number).collect();
    let expected: Vec<i64> = locked[7..].iter().map(|m| m.sequence_number).collect();
    assert_eq!(seqs_back, expected);
    assert!(redelivered.iter().all(|m| m.delivery_count == 2));
    // Deferred, scheduled and dead-lettered messages are where they were.
    let peeked = engine.peek(&rq, 0, 100).await.expect("peek");
    let state_of = |seq| {
        peeked
            .iter()
            .find(|m| m.sequence_number == seq)
            .map(|m| m.state)
    };
    assert_eq!(
        state_of(deferred[0].sequence_number),
        Some(MessageState::Deferred)
    );
    assert_eq!(state_of(scheduled), Some(MessageState::Scheduled));
    let dlq = engine
        .resolve_receiver(&EntityPath::queue("q"), true)
        .expect("dlq");
    let dead = engine
        .receive(&dlq, ReceiveMode::PeekLock, 10, NO_WAIT)
        .await
        .expect("receive dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].dead_letter_reason.as_deref(), Some("Broken"));
    assert_eq!(dead[0].message.body.as_ref(), b"m11");
    // And the schedule fires after the restart.
    clock.advance(Duration::from_secs(300));
    let fired = engine
        .receive(&rq, ReceiveMode::ReceiveAndDelete, 10, NO_WAIT)
        .await
        .expect("receive");
    assert!(
        fired
            .iter()
            .any(|m| m.sequence_number == scheduled && m.message.body.as_ref() == b"later")
    );
}

#[tokio::test]
async fn an_old_token_after_expiry_and_restart_is_lock_lost_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::at_epoch();
    let engine = open(dir.path(), &clock).await;
    let q = engine.resolve_sender("q").expect("queue");
    let rq = engine
        .resolve_receiver(&EntityPath::queue("q"), false)
        .expect("queue");
    engine
        .send(&q, vec![Message::new("x")])
        .await
        .expect("send");
    let first = engine
        .receive(&rq, ReceiveMode::PeekLock, 1, NO_WAIT)
        .await
        .expect("receive");
    drop(engine);
    clock.advance(Duration::from_secs(60));
    let engine = open(dir.path(), &clock).await;
    let rq = engine
        .resolve_receiver(&EntityPath::queue("q"), false)
        .expect("queue");
    let err = engine
        .complete(&rq, first[0].lock_token)
        .await
        .expect_err("stale token");
    assert_eq!(err.kind(), BusErrorKind::MessageLockLost);
    let err = engine
        .abandon(&rq, first[0].lock_token, BTreeMap::new())
        .await
        .expect_err("stale token");
    assert_eq!(err.kind(), BusErrorKind::MessageLockLost);
    let again = engine
        .receive(&rq, ReceiveMode::PeekLock, 1, NO_WAIT)
        .await
        .expect("receive");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_count, 2);
}

#[tokio::test]
async fn a_data_file_of_another_schema_version_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("bus.sqlite3");
    let conn = rusqlite::Connection::open(&file).expect("sqlite");
    conn.execute_batch("PRAGMA user_version = 99")
        .expect("set version");
    drop(conn);
    let err = Emulator::open(
        topology(),
        &file,
        ManualClock::at_epoch(),
        EmulatorOptions::default(),
    )
    .await
    .expect_err("refused");
    assert_eq!(err.kind(), fleet_emulator::EmulatorErrorKind::Storage);
    assert!(
        err.to_string().contains("bus.sqlite3") && err.to_string().contains("99"),
        "{err}"
    );
}
