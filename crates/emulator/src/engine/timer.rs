//! The timer task: sleeps until the next deadline (or until an operation creates an earlier
//! one, or a manual clock moves), then processes what fell due and wakes waiting receivers.

use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

use super::{Emulator, Inner};

/// The longest the timer sleeps without re-checking (bounds drift of a jumping system clock).
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub(super) async fn run(
    inner: Weak<Inner>,
    wake: Arc<Notify>,
    mut changes: Option<watch::Receiver<DateTime<Utc>>>,
) {
    loop {
        let wait = {
            let Some(inner) = inner.upgrade() else { return };
            match Emulator::tick_detached(&inner) {
                Some(ms) => Duration::from_millis(u64::try_from(ms).unwrap_or(0)).min(MAX_SLEEP),
                None => return,
            }
        };
        let clock_moved = async {
            let moved = match changes.as_mut() {
                Some(rx) => rx.changed().await.is_ok(),
                None => false,
            };
            if !moved {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
            () = clock_moved => {}
        }
    }
}
