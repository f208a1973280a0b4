//! The engine benchmark behind `fleetctl bench bus`: send → receive → complete through one
//! topic and one subscription, durable, 1 KiB bodies, through the [`InProcessBus`] adapter.
//!
//! Two modes. *Throughput* (no rate): producers send batches as fast as the engine takes them
//! while consumers receive batches and complete every message. *Latency* (a fixed rate): one
//! producer sends at that rate and each message's latency runs from the moment it was due to be
//! sent (so a stalled engine cannot hide its backlog) until its `complete` is durable.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fleet_bus::{Bus, BusReceiver, EntityPath, Message, ReceiveOptions, ReceivedMessage};
use parking_lot::Mutex;
use tokio::task::JoinSet;

use crate::{
    Durability, Emulator, EmulatorError, EmulatorErrorKind, EmulatorOptions, InProcessBus,
    SubscriptionConfig, SystemClock, TopicConfig, Topology,
};

const TOPIC: &str = "bench";
const SUBSCRIPTION: &str = "all";
/// Body size of every message.
pub const BODY_BYTES: usize = 1024;
/// Concurrent producers in throughput mode (keeps several sends in one group commit).
const PRODUCERS: usize = 4;
/// Concurrent consumers.
const CONSUMERS: usize = 4;

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchOptions {
    /// Messages to push through.
    pub messages: u64,
    /// SQLite durability.
    pub durability: Durability,
    /// Latency mode at this many messages per second; `None`: throughput mode.
    pub rate: Option<u64>,
    /// Messages per send batch and per receive call.
    pub batch: u64,
}

/// The figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// `throughput` or `latency`.
    pub mode: &'static str,
    /// Messages pushed through.
    pub messages: u64,
    /// Wall time from the first send to the last durable complete.
    pub seconds: f64,
    /// `messages / seconds`.
    pub msgs_per_sec: f64,
    /// Median send → durable complete latency.
    pub p50_ms: f64,
    /// 99th percentile of the same.
    pub p99_ms: f64,
    /// `normal` or `full`.
    pub durability: &'static str,
    /// The fixed rate in latency mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
}

fn topology() -> Topology {
    let mut topic = TopicConfig::new(TOPIC);
    topic
        .subscriptions
        .push(SubscriptionConfig::new(SUBSCRIPTION));
    Topology {
        namespace: "bench".into(),
        ..Topology::default()
    }
    .with_topic(topic)
}

/// A body carrying the nanoseconds (since the run's start) it was due to be sent at.
fn body(due_ns: u64) -> Message {
    let mut body = vec![b'x'; BODY_BYTES];
    body[..8].copy_from_slice(&due_ns.to_le_bytes());
    Message::new(body)
}

fn due_of(m: &ReceivedMessage) -> u64 {
    let mut ns = [0u8; 8];
    if let Some(prefix) = m.message.body.get(..8) {
        ns.copy_from_slice(prefix);
    }
    u64::from_le_bytes(ns)
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn failed(what: &str) -> impl FnOnce(tokio::task::JoinError) -> EmulatorError + '_ {
    move |e| {
        EmulatorError::new(EmulatorErrorKind::Operation, format!("{what} task failed"))
            .with_source(e)
    }
}

/// Runs the benchmark on a fresh engine whose data file goes in `dir`.
pub async fn run(options: BenchOptions, dir: &Path) -> Result<BenchReport, EmulatorError> {
    let emulator = Emulator::open(
        topology(),
        dir,
        Arc::new(SystemClock),
        EmulatorOptions::with_durability(options.durability),
    )
    .await?;
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new(emulator.clone()));
    let total = options.messages;
    let batch = options.batch.max(1);
    let start = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        usize::try_from(total).unwrap_or(0),
    )));
    let completed = Arc::new(AtomicU64::new(0));

    let mut consumers = JoinSet::new();
    for _ in 0..CONSUMERS {
        let path = EntityPath::subscription(TOPIC, SUBSCRIPTION);
        let receiver: Arc<dyn BusReceiver> =
            Arc::from(bus.receiver(&path, ReceiveOptions::peek_lock()).await?);
        consumers.spawn(consume(
            receiver,
            batch,
            total,
            start,
            latencies.clone(),
            completed.clone(),
        ));
    }
    let mut producers = JoinSet::new();
    match options.rate {
        None => {
            let next = Arc::new(AtomicU64::new(0));
            for _ in 0..PRODUCERS {
                let sender = bus.sender(TOPIC).await?;
                let next = next.clone();
                producers.spawn(async move {
                    loop {
                        let first = next.fetch_add(batch, Ordering::Relaxed);
                        if first >= total {
                            return Ok::<_, EmulatorError>(());
                        }
                        let due = elapsed_ns(start);
                        sender
                            .send_batch((0..batch.min(total - first)).map(|_| body(due)).collect())
                            .await?;
                    }
                });
            }
        }
        Some(rate) => {
            let sender = bus.sender(TOPIC).await?;
            producers.spawn(async move {
                // Every millisecond, send what has fallen due, each stamped with when it was due.
                let mut tick = tokio::time::interval(Duration::from_millis(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut sent = 0u64;
                while sent < total {
                    tick.tick().await;
                    let due_count =
                        ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
                    if due_count > sent {
                        let msgs = (sent..due_count)
                            .map(|i| body((i as f64 / rate as f64 * 1e9) as u64))
                            .collect();
                        sender.send_batch(msgs).await?;
                        sent = due_count;
                    }
                }
                Ok(())
            });
        }
    }
    while let Some(done) = producers.join_next().await {
        done.map_err(failed("producer"))??;
    }
    while let Some(done) = consumers.join_next().await {
        done.map_err(failed("consumer"))??;
    }
    let seconds = start.elapsed().as_secs_f64();
    emulator.close().await?;
    let mut lat = std::mem::take(&mut *latencies.lock());
    if lat.len() as u64 != total {
        return Err(EmulatorError::new(
            EmulatorErrorKind::Operation,
            format!("completed {} of {total} messages", lat.len()),
        ));
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        let i = ((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1));
        lat.get(i).copied().unwrap_or(0) as f64 / 1e6
    };
    Ok(BenchReport {
        mode: if options.rate.is_some() {
            "latency"
        } else {
            "throughput"
        },
        messages: total,
        seconds,
        msgs_per_sec: total as f64 / seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        durability: options.durability.as_str(),
        rate: options.rate,
    })
}

async fn consume(
    receiver: Arc<dyn BusReceiver>,
    batch: u64,
    total: u64,
    start: Instant,
    latencies: Arc<Mutex<Vec<u64>>>,
    completed: Arc<AtomicU64>,
) -> Result<(), EmulatorError> {
    let max = usize::try_from(batch).unwrap_or(100);
    // Completions run concurrently (sharing group commits) while the next batch is received,
    // bounded like a worker's in-flight limit.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(max * 2));
    let mut completions = JoinSet::new();
    while completed.load(Ordering::Acquire) < total {
        while let Some(done) = completions.try_join_next() {
            done.map_err(failed("completion"))??;
        }
        let msgs = receiver.receive(max, Duration::from_millis(50)).await?;
        for m in msgs {
            let permit = in_flight.clone().acquire_owned().await.map_err(|e| {
                EmulatorError::new(EmulatorErrorKind::Operation, "in-flight limit closed")
                    .with_source(e)
            })?;
            let (receiver, latencies, completed) =
                (receiver.clone(), latencies.clone(), completed.clone());
            completions.spawn(async move {
                receiver.complete(&m).await?;
                latencies
                    .lock()
                    .push(elapsed_ns(start).saturating_sub(due_of(&m)));
                completed.fetch_add(1, Ordering::AcqRel);
                drop(permit);
                Ok::<_, EmulatorError>(())
            });
        }
    }
    while let Some(done) = completions.join_next().await {
        done.map_err(failed("completion"))??;
    }
    Ok(())
}
