//! Throughput of the listener driven by the production Rust client over loopback, against the
//! real engine (default durability). Prints one line per scenario.
//!
//! `cargo bench -p fleet-amqp --bench throughput`

#![allow(clippy::large_futures)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use azservicebus::ServiceBusMessage;
use fleet_amqp::ListenerOptions;
use support::Harness;

const SINGLE: usize = 2_000;
const BATCHES: usize = 40;
const BATCH: usize = 100;

fn report(what: &str, count: usize, elapsed: Duration) {
    let rate = count as f64 / elapsed.as_secs_f64();
    let mean_us = elapsed.as_micros() as f64 / count as f64;
    println!("{what:<40} {count:>6} msgs  {rate:>9.0} msg/s  {mean_us:>8.1} µs/msg");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let harness = Harness::start("127.0.0.50", ListenerOptions::default()).await;
    let mut client = harness.rust_client().await;
    let mut sender = client
        .create_sender("q1", Default::default())
        .await
        .unwrap();
    let body = vec![b'x'; 1_024];

    let start = Instant::now();
    for _ in 0..SINGLE {
        sender
            .send_message(ServiceBusMessage::new(body.clone()))
            .await
            .unwrap();
    }
    report("send, one at a time (1 KiB)", SINGLE, start.elapsed());

    let start = Instant::now();
    for _ in 0..BATCHES {
        let mut batch = sender.create_message_batch(Default::default()).unwrap();
        for _ in 0..BATCH {
            batch.try_add_message(body.clone()).unwrap();
        }
        sender.send_message_batch(batch).await.unwrap();
    }
    report(
        "send, batches of 100 (1 KiB)",
        BATCHES * BATCH,
        start.elapsed(),
    );

    let total = SINGLE + BATCHES * BATCH;
    let mut receiver = client
        .create_receiver_for_queue("q1", Default::default())
        .await
        .unwrap();
    let start = Instant::now();
    let mut done = 0;
    while done < total {
        let messages = receiver
            .receive_messages_with_max_wait_time(100, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        assert!(!messages.is_empty(), "only {done} of {total} received");
        for message in &messages {
            receiver.complete_message(message).await.unwrap();
        }
        done += messages.len();
    }
    report("receive peek-lock + complete", total, start.elapsed());
    harness.stop().await;
}
