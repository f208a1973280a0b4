//! The janitor (§8): purges inbox rows and idempotency keys older than the dedupe window and
//! dispatched outbox rows older than the audit window.

use std::sync::Arc;

use fleet_store::{PurgeCounts, Store};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::RuntimeConfig;
use crate::error::{RuntimeError, RuntimeErrorKind};

/// One purge pass at `clock.now()`.
pub async fn purge_once(
    store: &dyn Store,
    clock: &dyn Clock,
    config: &RuntimeConfig,
) -> Result<PurgeCounts, RuntimeError> {
    let now = clock.now();
    let horizon = |d: std::time::Duration| {
        chrono::Duration::from_std(d)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC)
    };
    store
        .purge(horizon(config.dedupe_window), horizon(config.outbox_audit))
        .await
        .map_err(|e| {
            RuntimeError::new(RuntimeErrorKind::Store, "purging expired rows failed").with_source(e)
        })
}

/// Purges every `config.janitor_interval` until `stop` turns true.
pub(crate) async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: RuntimeConfig,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(config.janitor_interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match purge_once(store.as_ref(), clock.as_ref(), &config).await {
            Ok(c) => tracing::info!(
                inbox = c.inbox,
                idempotency_keys = c.idempotency_keys,
                outbox = c.outbox,
                "janitor purged expired rows"
            ),
            Err(e) => tracing::warn!(error = %e, "janitor pass failed"),
        }
    }
}
