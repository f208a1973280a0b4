//! Time for the simulation: real, manual (tests) or accelerated (demos).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

/// The sandbox's source of time. Operations complete, rollouts converge and metrics move
/// according to it, never according to the wall clock directly.
pub trait Clock: Send + Sync {
    /// The current simulated time.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self.now.lock();
        *now = now.checked_add_signed(by).unwrap_or(*now);
    }

    /// Sets the time (it may go backwards, to model a clock step).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock() = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock()
    }
}

/// Wall time sped up by a factor from a starting point: a 60× clock completes a 30 s rollout
/// in half a real second, so a demo shows a day of scaling in minutes.
#[derive(Debug, Clone)]
pub struct AcceleratedClock {
    start: DateTime<Utc>,
    real_start: Instant,
    factor: f64,
}

impl AcceleratedClock {
    /// A clock that starts at `start` and runs `factor` times faster than real time
    /// (factors below 1 slow it down; non-finite or negative factors count as 1).
    pub fn new(start: DateTime<Utc>, factor: f64) -> Self {
        let factor = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            1.0
        };
        AcceleratedClock {
            start,
            real_start: Instant::now(),
            factor,
        }
    }
}

impl Clock for AcceleratedClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.real_start.elapsed().as_secs_f64() * self.factor;
        let micros = (elapsed * 1e6).min(i64::MAX as f64) as i64;
        self.start + chrono::Duration::microseconds(micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_time() {
        let start = Utc::now();
        let clock = ManualClock::new(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start);
        other.advance(Duration::from_secs(30));
        assert_eq!(clock.now(), start + chrono::Duration::seconds(30));
    }

    #[test]
    fn accelerated_clock_runs_faster_than_real_time() {
        let start = Utc::now();
        let clock = AcceleratedClock::new(start, 1000.0);
        let real = Instant::now();
        while real.elapsed() < Duration::from_millis(5) {
            std::hint::spin_loop();
        }
        assert!(clock.now() - start >= chrono::Duration::seconds(5));
    }
}
