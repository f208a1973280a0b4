//! `complete_many` over the in-process adapter: one transaction, one result per message, and a
//! stale token fails alone.

use std::time::Duration;

use fleet_bus::{Bus, BusErrorKind, EntityPath, Message, ReceiveOptions};
use fleet_emulator::{Emulator, EmulatorOptions, InProcessBus, ManualClock, QueueConfig, Topology};

#[tokio::test]
async fn complete_many_settles_each_message_and_reports_a_stale_token_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let topology = Topology::default().with_queue(QueueConfig::new("q"));
    let emulator = Emulator::open(
        topology,
        dir.path(),
        ManualClock::at_epoch(),
        EmulatorOptions::default(),
    )
    .await
    .expect("engine opens");
    let bus = InProcessBus::new(emulator);
    let sender = bus.sender("q").await.expect("sender");
    sender
        .send_batch((0..3).map(|i| Message::new(format!("m{i}"))).collect())
        .await
        .expect("send");
    let receiver = bus
        .receiver(&EntityPath::queue("q"), ReceiveOptions::peek_lock())
        .await
        .expect("receiver");
    let got = receiver.receive(3, Duration::ZERO).await.expect("receive");
    assert_eq!(got.len(), 3);
    receiver
        .complete(&got[0])
        .await
        .expect("complete the first alone");

    let results = receiver.complete_many(&got).await;
    let kinds: Vec<_> = results
        .iter()
        .map(|r| r.as_ref().map_err(|e| e.kind()))
        .collect();
    assert_eq!(
        kinds,
        vec![Err(BusErrorKind::MessageLockLost), Ok(&()), Ok(&())]
    );
    assert!(
        receiver.peek(Some(0), 10).await.expect("peek").is_empty(),
        "everything is completed"
    );
}
