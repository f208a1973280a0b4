//! The Bus conformance suite against the in-process adapter, one test per check, each on its
//! own engine and data file.

use std::sync::Arc;
use std::time::Duration;

use fleet_bus::Bus;
use fleet_bus::conformance::{self, CHECKS};
use fleet_emulator::{Emulator, EmulatorOptions, InProcessBus, SystemClock, Topology};

async fn run(check: &str) {
    let t = conformance::Topology::default();
    let topology = Topology::from_json(&t.config_json()).expect("the suite's Config.json parses");
    let dir = tempfile::tempdir().expect("temp dir");
    let emulator = Emulator::open(
        topology,
        dir.path(),
        Arc::new(SystemClock),
        EmulatorOptions::default(),
    )
    .await
    .expect("engine opens");
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new(emulator));
    tokio::time::timeout(
        Duration::from_secs(60),
        conformance::run_one(bus.as_ref(), &t, check),
    )
    .await
    .unwrap_or_else(|_| panic!("{check} timed out"))
    .unwrap_or_else(|e| panic!("{e}"));
}

macro_rules! conformance_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run(stringify!($name)).await;
            }
        )*

        #[test]
        fn every_check_of_the_suite_has_a_test() {
            let here = [$(stringify!($name)),*];
            for (name, _) in CHECKS {
                assert!(here.contains(name), "check {name} has no test here");
            }
        }
    };
}

conformance_tests!(
    round_trip_preserves_the_message,
    unknown_entity_is_entity_not_found,
    abandon_redelivers_with_modified_properties,
    settling_with_a_stale_or_foreign_token_is_lock_lost,
    expired_lock_redelivers_with_a_higher_delivery_count,
    max_delivery_count_dead_letters,
    dead_letter_keeps_body_and_properties,
    defer_then_receive_deferred,
    schedule_then_cancel,
    scheduled_message_arrives_when_due,
    renew_lock_extends_the_lock,
    topic_fans_out_by_filter,
    duplicate_detection_drops_a_repeated_message_id,
    receive_and_delete_removes_the_message,
    peek_does_not_lock,
    batch_is_atomic_and_size_limited,
    expired_message_is_dead_lettered,
    prefetch_locks_ahead,
    receivers_are_woken_by_sends,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_passes_in_sequence_on_one_engine() {
    let t = conformance::Topology::default();
    let topology = Topology::from_json(&t.config_json()).expect("the suite's Config.json parses");
    let dir = tempfile::tempdir().expect("temp dir");
    let emulator = Emulator::open(
        topology,
        dir.path(),
        Arc::new(SystemClock),
        EmulatorOptions::default(),
    )
    .await
    .expect("engine opens");
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new(emulator));
    tokio::time::timeout(Duration::from_secs(120), conformance::run_all(bus, &t))
        .await
        .expect("suite finishes")
        .unwrap_or_else(|e| panic!("{e}"));
}
