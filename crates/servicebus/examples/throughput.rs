//! Throughput of `ServiceBusBus` over AMQP on loopback: the emulator engine (default
//! durability, SQLite WAL) behind `fleet_amqp::serve`, driven through the adapter with batching
//! and prefetch. Prints one line per scenario.
//!
//! `cargo run --release -p fleet-servicebus --example throughput [MESSAGES]`

#![allow(clippy::large_futures)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fleet_amqp::{ListenerOptions, serve};
use fleet_bus::{Bus, BusReceiver, BusSender, EntityPath, Message, ReceiveMode, ReceiveOptions};
use fleet_emulator::{Emulator, EmulatorOptions, InProcessBus, QueueConfig, SystemClock, Topology};
use fleet_servicebus::ServiceBusBus;
use tokio::net::TcpListener;

const ADDRESS: &str = "127.0.0.240";
const BATCH: usize = 100;
const PREFETCH: u32 = 500;
const BODY: usize = 1_024;

fn report(what: &str, count: usize, elapsed: Duration) {
    let rate = count as f64 / elapsed.as_secs_f64();
    let mean_us = elapsed.as_micros() as f64 / count as f64;
    println!("{what:<52} {count:>7} msgs {rate:>9.0} msg/s {mean_us:>8.1} µs/msg");
}

fn main() -> anyhow::Result<()> {
    let total: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 20_000,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(total))
}

fn messages(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            Message::new(vec![b'x'; BODY])
                .with_message_id(format!("m-{i}"))
                .with_property("tenantId", "tenant-a")
        })
        .collect()
}

async fn send_all(sender: &dyn BusSender, total: usize) -> anyhow::Result<()> {
    let mut sent = 0;
    while sent < total {
        let n = BATCH.min(total - sent);
        sender.send_batch(messages(n)).await?;
        sent += n;
    }
    Ok(())
}

async fn drain(receiver: &dyn BusReceiver, total: usize, settle: bool) -> anyhow::Result<()> {
    drain_shared(receiver, total, settle, &AtomicUsize::new(0)).await
}

/// Receives (and completes) until `done`, shared by every receiver of a run, reaches `total`.
async fn drain_shared(
    receiver: &dyn BusReceiver,
    total: usize,
    settle: bool,
    done: &AtomicUsize,
) -> anyhow::Result<()> {
    while done.load(Ordering::Acquire) < total {
        let got = receiver.receive(BATCH, Duration::from_millis(500)).await?;
        if got.is_empty() {
            continue;
        }
        if settle {
            for m in &got {
                receiver.complete(m).await?;
            }
        }
        done.fetch_add(got.len(), Ordering::AcqRel);
    }
    Ok(())
}

async fn run(total: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let topology = Topology::default().with_queue(QueueConfig::new("bench"));
    let emulator = Emulator::open(
        topology,
        dir.path(),
        Arc::new(SystemClock),
        EmulatorOptions::default(),
    )
    .await?;
    let backend: Arc<dyn Bus> = Arc::new(InProcessBus::new(emulator));
    let listener = TcpListener::bind((ADDRESS, 5672)).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        backend,
        ListenerOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let bus = ServiceBusBus::from_connection_string(&format!(
        "Endpoint=sb://{ADDRESS}/;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true"
    ))?;
    let sender = bus.sender("bench").await?;
    let queue = EntityPath::queue("bench");
    let prefetching = ReceiveOptions {
        mode: ReceiveMode::PeekLock,
        prefetch: PREFETCH,
        ..ReceiveOptions::default()
    };

    let start = Instant::now();
    let small = 2_000.min(total);
    for m in messages(small) {
        sender.send(m).await?;
    }
    report("send, one at a time (1 KiB)", small, start.elapsed());
    let receiver = bus
        .receiver(&queue, ReceiveOptions::receive_and_delete())
        .await?;
    drain(receiver.as_ref(), small, false).await?;
    receiver.close().await?;

    let start = Instant::now();
    send_all(sender.as_ref(), total).await?;
    report("send_batch of 100 (1 KiB)", total, start.elapsed());

    let receiver = bus.receiver(&queue, prefetching).await?;
    let start = Instant::now();
    drain(receiver.as_ref(), total, true).await?;
    report("receive (prefetch 500) + complete", total, start.elapsed());
    receiver.close().await?;

    // The steady state a worker sees: producer and consumer at once.
    let receiver = bus.receiver(&queue, prefetching).await?;
    let start = Instant::now();
    let producer = async { send_all(sender.as_ref(), total).await };
    let consumer = async { drain(receiver.as_ref(), total, true).await };
    let (sent, received) = tokio::join!(producer, consumer);
    sent?;
    received?;
    report(
        "send_batch → receive (prefetch 500) → complete, concurrent",
        total,
        start.elapsed(),
    );
    receiver.close().await?;

    // Several receivers (links) settling in parallel, as replicas or a wider worker would.
    const LINKS: usize = 4;
    let start = Instant::now();
    let producer = async { send_all(sender.as_ref(), total).await };
    let mut receivers = Vec::new();
    for _ in 0..LINKS {
        let options = ReceiveOptions {
            prefetch: PREFETCH / LINKS as u32,
            ..prefetching
        };
        receivers.push(bus.receiver(&queue, options).await?);
    }
    let done = AtomicUsize::new(0);
    let consumers = futures::future::try_join_all(
        receivers
            .iter()
            .map(|r| drain_shared(r.as_ref(), total, true, &done)),
    );
    let (sent, received) = tokio::join!(producer, consumers);
    sent?;
    received?;
    report(
        &format!("same, {LINKS} receivers settling in parallel"),
        total,
        start.elapsed(),
    );
    for r in &receivers {
        r.close().await?;
    }
    bus.close().await?;
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
