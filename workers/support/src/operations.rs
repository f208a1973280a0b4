//! Waiting out long-running operations on the worker's clock (a fake clock in tests).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_cloud::{CloudError, Compute, Operation, Scope};
use fleet_runtime::{Clock, HandlerError};

use crate::errors::cloud_error;

/// Shortest pause between two polls, whatever the control plane suggests.
const MIN_POLL: Duration = Duration::from_secs(1);
/// Longest pause between two polls, so a deadline is noticed soon after it passes.
const MAX_POLL: Duration = Duration::from_secs(10);

/// Polls `op` until it is terminal or `deadline` passes, sleeping on `clock` between polls as the
/// control plane suggests (`poll_after`, bounded to 1–10 s).
///
/// Returns the terminal operation (which may be `Failed`), or a transient error when the
/// deadline passes first — the step is then retried and, being desired-state, re-attaches to the
/// same rollout.
pub async fn await_operation(
    clock: &dyn Clock,
    compute: &dyn Compute,
    scope: &Scope,
    mut op: Operation,
    deadline: DateTime<Utc>,
) -> Result<Operation, HandlerError> {
    loop {
        if op.status.is_terminal() {
            return Ok(op);
        }
        let now = clock.now();
        if now >= deadline {
            return Err(HandlerError::transient(format!(
                "operation {} on {} still in progress at its deadline",
                op.id, op.service_id
            )));
        }
        let pause = op.poll_after.unwrap_or(MIN_POLL).clamp(MIN_POLL, MAX_POLL);
        clock.sleep_until(add(now, pause).min(deadline)).await;
        op = compute
            .poll(scope, &op)
            .await
            .map_err(|e| cloud_error(&format!("polling operation {}", op.id), e))?;
    }
}

/// Re-evaluates `check` every `every` on `clock` until it yields `Some` or `deadline` passes
/// (`None`). Used by readiness gates, which wait on observed state rather than an operation.
pub async fn wait_for<T, F, Fut>(
    clock: &dyn Clock,
    every: Duration,
    deadline: DateTime<Utc>,
    mut check: F,
) -> Result<Option<T>, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, CloudError>>,
{
    loop {
        if let Some(v) = check().await? {
            return Ok(Some(v));
        }
        let now = clock.now();
        if now >= deadline {
            return Ok(None);
        }
        clock.sleep_until(add(now, every).min(deadline)).await;
    }
}

fn add(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at + d`, saturating.
pub fn later(at: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    add(at, d)
}
