//! Time as a port, so tests drive timers, retries and lock renewal with a fake clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

/// The worker's notion of "now" and of waiting.
///
/// Production uses [`SystemClock`]; `fleet-testkit` ships a manual clock whose sleeps wake when
/// a test advances it, so timer windows and retry delays run without real waiting.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
    /// Completes once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// Wall-clock time backed by Tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let wait = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// Adds a std duration to a timestamp, saturating instead of overflowing.
pub(crate) fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
