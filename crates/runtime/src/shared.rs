//! State shared by the tasks of one running worker replica.

use foldhash::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use fleet_bus::BusSender;
use fleet_envelope::EventType;
use fleet_store::Store;
use fleet_telemetry::{InFlightGauge, Metrics, ProcessedSeries};

use crate::clock::Clock;
use crate::committer::Committer;
use crate::config::RuntimeConfig;
use crate::definition::WorkerDefinition;
use crate::keyed::KeyedLocks;
use crate::relay::Relay;

pub(crate) struct Shared<P> {
    pub(crate) def: WorkerDefinition<P>,
    pub(crate) config: RuntimeConfig,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ports: Arc<P>,
    pub(crate) metrics: Metrics,
    // Per-message series, resolved at start so the hot path does no label lookups.
    pub(crate) in_flight: InFlightGauge,
    pub(crate) processed: HashMap<(EventType, u32), ProcessedSeries>,
    pub(crate) keys: KeyedLocks,
    pub(crate) committer: Committer,
    pub(crate) relay: Arc<Relay>,
    // Delayed retries are scheduled onto the subscription's topic.
    pub(crate) retry_sender: Box<dyn BusSender>,
    pub(crate) stats: Arc<WorkerStats>,
    pub(crate) tenants: crate::tenants::TenantCache,
}

/// Live counters and state of one replica, readable while it runs (tests, readiness).
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub(crate) received: AtomicU64,
    pub(crate) handled: AtomicU64,
    pub(crate) dedupe_hits: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) lock_renewals: AtomicU64,
    pub(crate) timer_runs: AtomicU64,
    pub(crate) in_flight: AtomicI64,
    pub(crate) draining: AtomicBool,
    pub(crate) bus_healthy: AtomicBool,
    pub(crate) running: AtomicBool,
}

/// A point-in-time copy of [`WorkerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Messages received from the bus.
    pub received: u64,
    /// Messages and timer windows whose handler succeeded and committed.
    pub handled: u64,
    /// Deliveries completed because the inbox already had the event.
    pub dedupe_hits: u64,
    /// Delayed retries scheduled.
    pub retried: u64,
    /// Messages dead-lettered.
    pub dead_lettered: u64,
    /// Messages abandoned at shutdown.
    pub abandoned: u64,
    /// Successful lock renewals.
    pub lock_renewals: u64,
    /// Timer windows run (handled or deduplicated).
    pub timer_runs: u64,
    /// Messages being handled right now.
    pub in_flight: i64,
    /// Shutdown has begun.
    pub draining: bool,
}

impl WorkerStats {
    /// Copies the counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            received: r(&self.received),
            handled: r(&self.handled),
            dedupe_hits: r(&self.dedupe_hits),
            retried: r(&self.retried),
            dead_lettered: r(&self.dead_lettered),
            abandoned: r(&self.abandoned),
            lock_renewals: r(&self.lock_renewals),
            timer_runs: r(&self.timer_runs),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            draining: self.draining.load(Ordering::Relaxed),
        }
    }

    /// Whether shutdown has begun (readiness reports 503).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Whether the worker's receive loop is up.
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
