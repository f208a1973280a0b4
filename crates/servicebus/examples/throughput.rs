//! Throughput of `ServiceBusBus` over AMQP on loopback: the emulator engine (default
//! durability, SQLite WAL) behind `fleet_amqp::serve`, driven through the adapter with batching
//! and prefetch. Prints one line per scenario.
//!
//! The consumers settle the ways a user of the Bus port does: each message awaited in turn (the
//! simplest loop), `complete_many` per received batch, or — as the runtime does — each message
//! completed by its own task with a bounded number in flight while the next batch is received.
//!
//! `cargo run --release -p fleet-servicebus --example throughput [MESSAGES] [ONLY]` — with
//! `ONLY`, just the scenarios whose line contains that text (e.g. `concurrent`).

#![allow(clippy::large_futures)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fleet_amqp::{ListenerOptions, serve};
use fleet_bus::{Bus, BusReceiver, BusSender, EntityPath, Message, ReceiveMode, ReceiveOptions};
use fleet_emulator::{Emulator, EmulatorOptions, InProcessBus, QueueConfig, SystemClock, Topology};
use fleet_servicebus::ServiceBusBus;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const ADDRESS: &str = "127.0.0.240";
const BATCH: usize = 100;
const PREFETCH: u32 = 500;
const BODY: usize = 1_024;
/// Completes in flight at once per receiver when each message is completed by its own task.
const IN_FLIGHT: usize = 64;
/// Receivers of the parallel scenario.
const LINKS: usize = 4;

/// How a consumer settles what it received.
#[derive(Clone, Copy)]
enum Settle {
    /// Receive-and-delete: nothing to settle.
    Nothing,
    /// `complete` each message, awaited one after the other.
    EachInTurn,
    /// `complete_many` of each received batch.
    Batch,
    /// Each message completed by its own task, up to [`IN_FLIGHT`] at once, while the next
    /// batch is received.
    Tasks,
}

impl Settle {
    fn describe(self) -> &'static str {
        match self {
            Settle::Nothing => "",
            Settle::EachInTurn => "complete each in turn",
            Settle::Batch => "complete_many per batch",
            Settle::Tasks => "complete from 64 tasks",
        }
    }
}

fn report(what: &str, count: usize, elapsed: Duration) {
    let rate = count as f64 / elapsed.as_secs_f64();
    let mean_us = elapsed.as_micros() as f64 / count as f64;
    println!("{what:<62} {count:>7} msgs {rate:>9.0} msg/s {mean_us:>8.1} µs/msg");
}

fn main() -> anyhow::Result<()> {
    let total: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 20_000,
    };
    let only = std::env::args().nth(2).unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(total, &only))
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

/// How far a run is, shared by its receivers and their settling tasks.
#[derive(Default)]
struct Progress {
    received: AtomicUsize,
    settled: AtomicUsize,
    /// When the last message was settled. A run is timed to here, not to when every receiver
    /// has noticed: one may still be waiting out an empty receive.
    done_at: Mutex<Option<Instant>>,
}

impl Progress {
    fn settled(&self, n: usize, total: usize) {
        if self.settled.fetch_add(n, Ordering::AcqRel) + n >= total {
            self.done_at
                .lock()
                .expect("progress")
                .get_or_insert_with(Instant::now);
        }
    }

    fn elapsed(&self, start: Instant) -> Duration {
        self.done_at
            .lock()
            .expect("progress")
            .unwrap_or_else(Instant::now)
            .duration_since(start)
    }
}

/// Receives and settles until `progress`, shared by every receiver of a run, has received
/// `total`; returns once everything this receiver took is settled.
async fn drain(
    receiver: Arc<dyn BusReceiver>,
    total: usize,
    settle: Settle,
    progress: Arc<Progress>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks = JoinSet::new();
    while progress.received.load(Ordering::Acquire) < total {
        let got = receiver.receive(BATCH, Duration::from_millis(500)).await?;
        if got.is_empty() {
            continue;
        }
        progress.received.fetch_add(got.len(), Ordering::AcqRel);
        match settle {
            Settle::Nothing => progress.settled(got.len(), total),
            Settle::EachInTurn => {
                for m in &got {
                    receiver.complete(m).await?;
                    progress.settled(1, total);
                }
            }
            Settle::Batch => {
                for result in receiver.complete_many(&got).await {
                    result?;
                }
                progress.settled(got.len(), total);
            }
            Settle::Tasks => {
                for m in got {
                    let permit = permits.clone().acquire_owned().await?;
                    let receiver = receiver.clone();
                    let progress = progress.clone();
                    tasks.spawn(async move {
                        receiver.complete(&m).await?;
                        drop(permit);
                        progress.settled(1, total);
                        anyhow::Ok(())
                    });
                }
                while let Some(done) = tasks.try_join_next() {
                    done??;
                }
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

async fn receivers(
    bus: &ServiceBusBus,
    queue: &EntityPath,
    options: ReceiveOptions,
    n: usize,
) -> anyhow::Result<Vec<Arc<dyn BusReceiver>>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(Arc::from(bus.receiver(queue, options).await?));
    }
    Ok(out)
}

/// Producer and `n` consumers at once: the steady state a worker sees.
async fn concurrent(
    bus: &ServiceBusBus,
    sender: &dyn BusSender,
    queue: &EntityPath,
    total: usize,
    n: usize,
    settle: Settle,
) -> anyhow::Result<()> {
    let options = ReceiveOptions {
        mode: ReceiveMode::PeekLock,
        prefetch: PREFETCH / n as u32,
        ..ReceiveOptions::default()
    };
    let consumers = receivers(bus, queue, options, n).await?;
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    let producer = send_all(sender, total);
    let draining = futures::future::try_join_all(
        consumers
            .iter()
            .map(|r| drain(r.clone(), total, settle, progress.clone())),
    );
    let (sent, drained) = tokio::join!(producer, draining);
    sent?;
    drained?;
    report(&concurrent_line(n, settle), total, progress.elapsed(start));
    for r in &consumers {
        r.close().await?;
    }
    Ok(())
}

/// The line a concurrent scenario prints.
fn concurrent_line(n: usize, settle: Settle) -> String {
    let who = if n == 1 {
        "send_batch → receive → ".to_owned()
    } else {
        format!("same, {n} receivers, ")
    };
    format!("{who}{}, concurrent", settle.describe())
}

async fn run(total: usize, only: &str) -> anyhow::Result<()> {
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

    let line = "send, one at a time (1 KiB)";
    if line.contains(only) {
        let start = Instant::now();
        let small = 2_000.min(total);
        for m in messages(small) {
            sender.send(m).await?;
        }
        report(line, small, start.elapsed());
        let receiver: Arc<dyn BusReceiver> = Arc::from(
            bus.receiver(&queue, ReceiveOptions::receive_and_delete())
                .await?,
        );
        drain(receiver.clone(), small, Settle::Nothing, Arc::default()).await?;
        receiver.close().await?;
    }

    for settle in [Settle::EachInTurn, Settle::Batch, Settle::Tasks] {
        let line = format!("receive (prefetch 500) + {}", settle.describe());
        if !line.contains(only) {
            continue;
        }
        let start = Instant::now();
        send_all(sender.as_ref(), total).await?;
        report("send_batch of 100 (1 KiB)", total, start.elapsed());
        let receiver: Arc<dyn BusReceiver> = Arc::from(bus.receiver(&queue, prefetching).await?);
        let progress = Arc::new(Progress::default());
        let start = Instant::now();
        drain(receiver.clone(), total, settle, progress.clone()).await?;
        report(&line, total, progress.elapsed(start));
        receiver.close().await?;
    }

    // The last: several receivers (links) settling in parallel, as replicas or a wider worker.
    for (n, settle) in [
        (1, Settle::EachInTurn),
        (1, Settle::Batch),
        (1, Settle::Tasks),
        (LINKS, Settle::Tasks),
    ] {
        if concurrent_line(n, settle).contains(only) {
            concurrent(&bus, sender.as_ref(), &queue, total, n, settle).await?;
        }
    }

    bus.close().await?;
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
