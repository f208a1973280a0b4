//! A fake clock shared by the runtime (timers, retry delays, lock renewal) and the emulator
//! engine (locks, scheduled messages), so a test moves time for both at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_emulator::ManualClock;
use futures::future::BoxFuture;

/// Time that only moves when the test says so.
#[derive(Debug, Clone)]
pub struct FakeClock {
    inner: Arc<ManualClock>,
}

impl FakeClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        FakeClock {
            inner: ManualClock::new(start),
        }
    }

    /// A clock at 2026-01-01T00:00:00Z, a window boundary for every period that divides a day.
    pub fn at_epoch() -> Self {
        FakeClock {
            inner: ManualClock::at_epoch(),
        }
    }

    /// Moves time forward, waking every sleeper whose deadline has passed.
    pub fn advance(&self, by: Duration) {
        self.inner.advance(by);
    }

    /// Jumps to `to`.
    pub fn set(&self, to: DateTime<Utc>) {
        self.inner.set(to);
    }

    /// The current fake time.
    pub fn now(&self) -> DateTime<Utc> {
        fleet_emulator::Clock::now(self.inner.as_ref())
    }

    /// The engine-side view of this clock.
    pub fn for_emulator(&self) -> Arc<dyn fleet_emulator::Clock> {
        self.inner.clone()
    }

    /// The runtime-side view of this clock.
    pub fn for_runtime(&self) -> Arc<dyn fleet_runtime::Clock> {
        Arc::new(self.clone())
    }
}

impl fleet_runtime::Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        FakeClock::now(self)
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let changes = fleet_emulator::Clock::changes(self.inner.as_ref());
        Box::pin(async move {
            let Some(mut rx) = changes else {
                return std::future::pending().await;
            };
            // Waits for a change that reaches the deadline; a dropped clock never wakes us.
            let _ = rx.wait_for(|now| *now >= deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_runtime::Clock as _;

    #[tokio::test]
    async fn sleepers_wake_when_time_reaches_their_deadline() {
        let clock = FakeClock::at_epoch();
        let deadline = clock.now() + chrono::Duration::seconds(30);
        let sleeper = tokio::spawn(clock.sleep_until(deadline));
        clock.advance(Duration::from_secs(29));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_past_deadline_returns_at_once() {
        let clock = FakeClock::at_epoch();
        let past = clock.now() - chrono::Duration::seconds(1);
        tokio::time::timeout(Duration::from_secs(5), clock.sleep_until(past))
            .await
            .unwrap();
    }
}
