//! The benchmark behind `fleetctl bench bus` pushes every message through and reports sane
//! figures in both modes.

use fleet_emulator::Durability;
use fleet_emulator::bench::{BenchOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_mode_completes_every_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = BenchOptions {
        messages: 2_000,
        durability: Durability::Normal,
        rate: None,
        batch: 50,
    };
    let report = run(options, dir.path()).await.expect("bench runs");
    assert_eq!(report.messages, 2_000);
    assert_eq!(report.mode, "throughput");
    assert!(
        report.msgs_per_sec > 0.0 && report.p50_ms <= report.p99_ms,
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_mode_sends_at_the_rate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = BenchOptions {
        messages: 500,
        durability: Durability::Full,
        rate: Some(1_000),
        batch: 50,
    };
    let report = run(options, dir.path()).await.expect("bench runs");
    assert_eq!(report.mode, "latency");
    assert_eq!(report.durability, "full");
    // 500 messages at 1000/s cannot finish in much under half a second.
    assert!(report.seconds >= 0.45, "{report:?}");
}
