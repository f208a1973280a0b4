//! The Bus conformance suite against `ServiceBusBus` over AMQP: the emulator engine behind the
//! AMQP listener on loopback, one test per check (through `conformance::run_one`, which drains
//! the entities first), each on its own engine and address.

#![allow(clippy::large_futures)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use fleet_amqp::ListenerOptions;
use fleet_bus::Bus;
use fleet_bus::conformance::{self, CHECKS};
use support::{Harness, conformance_topology};

/// Checks the AMQP listener cannot pass yet, with the listener gap that stops them. The adapter
/// sends what Service Bus expects for them (see `docs/servicebus.md`).
const LISTENER_GAPS: &[(&str, &str)] = &[];

async fn check(name: &str, bus: &dyn Bus) -> Result<(), String> {
    let t = conformance::Topology::default();
    match tokio::time::timeout(Duration::from_secs(90), conformance::run_one(bus, &t, name)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("{name} timed out")),
    }
}

async fn run(name: &str, ip: &str) {
    let harness = Harness::start(ip, conformance_topology(), ListenerOptions::default()).await;
    let bus = harness.bus();
    check(name, &bus).await.unwrap_or_else(|e| panic!("{e}"));
}

macro_rules! conformance_tests {
    ($($name:ident => $ip:literal),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run(stringify!($name), $ip).await;
            }
        )*

        #[test]
        fn every_check_of_the_suite_has_a_test_or_a_named_gap() {
            let here = [$(stringify!($name)),*];
            for (name, _) in CHECKS {
                let gap = LISTENER_GAPS.iter().any(|(g, _)| g == name);
                assert!(here.contains(name) != gap, "check {name}: tested {} / listed as gap {gap}", here.contains(name));
            }
        }
    };
}

conformance_tests!(
    round_trip_preserves_the_message => "127.0.0.200",
    unknown_entity_is_entity_not_found => "127.0.0.201",
    abandon_redelivers_with_modified_properties => "127.0.0.202",
    settling_with_a_stale_or_foreign_token_is_lock_lost => "127.0.0.203",
    expired_lock_redelivers_with_a_higher_delivery_count => "127.0.0.204",
    max_delivery_count_dead_letters => "127.0.0.205",
    dead_letter_keeps_body_and_properties => "127.0.0.206",
    defer_then_receive_deferred => "127.0.0.207",
    schedule_then_cancel => "127.0.0.208",
    scheduled_message_arrives_when_due => "127.0.0.209",
    renew_lock_extends_the_lock => "127.0.0.210",
    topic_fans_out_by_filter => "127.0.0.211",
    duplicate_detection_drops_a_repeated_message_id => "127.0.0.212",
    receive_and_delete_removes_the_message => "127.0.0.213",
    peek_does_not_lock => "127.0.0.214",
    batch_is_atomic_and_size_limited => "127.0.0.215",
    expired_message_is_dead_lettered => "127.0.0.216",
    prefetch_locks_ahead => "127.0.0.217",
    receivers_are_woken_by_sends => "127.0.0.218",
);

/// Every check in order over one connection and one engine, as `conformance::run_all` runs
/// them (minus the listener gaps).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_passes_in_sequence_over_one_connection() {
    let harness = Harness::start(
        "127.0.0.219",
        conformance_topology(),
        ListenerOptions::default(),
    )
    .await;
    let bus: Arc<dyn Bus> = Arc::new(harness.bus());
    for (name, _) in CHECKS {
        if LISTENER_GAPS.iter().any(|(g, _)| g == name) {
            continue;
        }
        check(name, bus.as_ref())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
