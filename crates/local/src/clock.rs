//! One clock for the whole local fleet: the emulator engine, the runtime (timers, retry delays,
//! lock renewal) and the sandbox (rollouts, metrics) all read it, so a retry scheduled for
//! "now + 2 s" on the runtime's clock falls due at the same instant on the engine's.
//!
//! It runs at a settable speed: the demo runs at 60× so a 30 s health window, a 45 s rollout or
//! a 5 min drift pass take a fraction of a real second, then drops to 1× once the scenario is
//! done so the fleet can go quiet between timer windows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::watch;

// Longest real pause between two looks at a deadline: a change of speed is noticed this soon.
const MAX_NAP: Duration = Duration::from_millis(100);
// How often the emulator engine's timer is told that simulated time moved.
const ENGINE_TICK: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Copy)]
struct Anchor {
    // Simulated time at `real`.
    sim: DateTime<Utc>,
    real: Instant,
    speed: f64,
}

impl Anchor {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.real.elapsed().as_secs_f64() * self.speed;
        let micros = (elapsed * 1e6).min(i64::MAX as f64) as i64;
        self.sim + chrono::Duration::microseconds(micros)
    }
}

/// Simulated time running at `speed` × real time from a start instant.
#[derive(Debug, Clone)]
pub struct FleetClock {
    // Re-anchored on every change of speed so time never jumps.
    anchor: Arc<Mutex<Anchor>>,
    changes: watch::Sender<DateTime<Utc>>,
}

impl FleetClock {
    /// A clock that reads `start` now and runs `speed` times faster than real time (values
    /// that are not finite and positive count as 1).
    pub fn new(start: DateTime<Utc>, speed: f64) -> Self {
        let (changes, _) = watch::channel(start);
        FleetClock {
            anchor: Arc::new(Mutex::new(Anchor {
                sim: start,
                real: Instant::now(),
                speed: sane(speed),
            })),
            changes,
        }
    }

    /// The wall clock at 1×.
    pub fn real_time() -> Self {
        FleetClock::new(Utc::now(), 1.0)
    }

    /// The current simulated instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.anchor.lock().now()
    }

    /// The current speed factor.
    pub fn speed(&self) -> f64 {
        self.anchor.lock().speed
    }

    /// Changes the speed from now on; simulated time continues from where it stands.
    pub fn set_speed(&self, speed: f64) {
        let mut a = self.anchor.lock();
        let now = a.now();
        *a = Anchor {
            sim: now,
            real: Instant::now(),
            speed: sane(speed),
        };
    }

    /// Keeps the emulator engine's timer informed while time runs faster than real time (it
    /// would otherwise sleep real durations towards simulated deadlines). Ends when the
    /// returned task is aborted or every engine is gone.
    pub fn spawn_ticker(&self) -> tokio::task::JoinHandle<()> {
        let clock = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(ENGINE_TICK);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                if clock.speed() > 1.0 {
                    clock.changes.send_replace(clock.now());
                }
            }
        })
    }

    /// Real time until `deadline` at the current speed.
    fn real_until(&self, deadline: DateTime<Utc>) -> Duration {
        let a = *self.anchor.lock();
        let sim = (deadline - a.now()).to_std().unwrap_or(Duration::ZERO);
        Duration::from_secs_f64(sim.as_secs_f64() / a.speed)
    }
}

fn sane(speed: f64) -> f64 {
    if speed.is_finite() && speed > 0.0 {
        speed
    } else {
        1.0
    }
}

impl fleet_runtime::Clock for FleetClock {
    fn now(&self) -> DateTime<Utc> {
        FleetClock::now(self)
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let clock = self.clone();
        Box::pin(async move {
            loop {
                let wait = clock.real_until(deadline);
                if wait.is_zero() {
                    return;
                }
                tokio::time::sleep(wait.min(MAX_NAP)).await;
            }
        })
    }
}

impl fleet_emulator::Clock for FleetClock {
    fn now(&self) -> DateTime<Utc> {
        FleetClock::now(self)
    }

    fn changes(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        Some(self.changes.subscribe())
    }
}

impl fleet_sandbox::Clock for FleetClock {
    fn now(&self) -> DateTime<Utc> {
        FleetClock::now(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_runtime::Clock as _;

    #[test]
    fn a_change_of_speed_never_moves_time_backwards() {
        let clock = FleetClock::new(Utc::now(), 1000.0);
        let before = clock.now();
        clock.set_speed(1.0);
        assert!(clock.now() >= before);
        assert_eq!(clock.speed(), 1.0);
        clock.set_speed(f64::NAN);
        assert_eq!(clock.speed(), 1.0, "a nonsense speed counts as real time");
    }

    #[tokio::test]
    async fn sleeping_a_simulated_minute_at_600x_takes_a_tenth_of_a_second() {
        let clock = FleetClock::new(Utc::now(), 600.0);
        let start = Instant::now();
        let deadline = clock.now() + chrono::Duration::seconds(60);
        tokio::time::timeout(Duration::from_secs(5), clock.sleep_until(deadline))
            .await
            .expect("the sleep ends");
        assert!(clock.now() >= deadline);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
}
