//! Time as the engine sees it: the system clock in production, a manual clock in tests.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use tokio::sync::watch;

/// The engine's source of time. Everything time-based (locks, schedules, TTL, duplicate
/// windows) reads it, so tests drive time without sleeping.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// A channel that changes whenever time jumps (a manual clock being advanced), so the
    /// engine's timer re-evaluates deadlines at once; `None` for clocks that only move on their
    /// own, whose deadlines the timer sleeps towards.
    fn changes(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        None
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    // The mutex makes `advance` atomic with respect to concurrent readers.
    now: Mutex<DateTime<Utc>>,
    // Wakes the engine's timer after each move.
    tx: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        let (tx, _) = watch::channel(start);
        Arc::new(Self {
            now: Mutex::new(start),
            tx,
        })
    }

    /// A clock standing at 2026-01-01T00:00:00Z (a fixed, readable origin for tests).
    pub fn at_epoch() -> Arc<Self> {
        Self::new(DateTime::from_timestamp(1_767_225_600, 0).unwrap_or(DateTime::<Utc>::UNIX_EPOCH))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        self.tx.send_replace(*now);
    }

    /// Sets the clock (backwards too).
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock() = to;
        self.tx.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }

    fn changes(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        Some(self.tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::at_epoch();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - start, chrono::Duration::seconds(90));
        let changes = clock.changes().expect("manual clock reports changes");
        clock.advance(Duration::from_secs(1));
        assert!(changes.has_changed().unwrap_or(false));
    }
}
