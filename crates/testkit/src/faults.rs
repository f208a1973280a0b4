//! Fault plans: scripted failures and delays for handlers and for the store, so retry,
//! crash and timeout paths are tested deterministically.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fleet_runtime::{HandlerError, HandlerErrorKind};
use parking_lot::Mutex;
use tokio::sync::Notify;

/// What happens on one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Fail with this kind.
    Fail(HandlerErrorKind),
    /// Wait this long (real time), then succeed.
    Delay(Duration),
    /// Wait until [`FaultPlan::release`] is called, then succeed.
    Block,
}

/// A script of faults by call number (1-based), with an optional default for other calls.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    inner: Arc<PlanInner>,
}

#[derive(Debug, Default)]
struct PlanInner {
    calls: AtomicU32,
    by_call: Mutex<HashMap<u32, Fault>>,
    otherwise: Mutex<Option<Fault>>,
    released: Notify,
    release_all: std::sync::atomic::AtomicBool,
}

impl FaultPlan {
    /// A plan that never fails.
    pub fn new() -> Self {
        FaultPlan::default()
    }

    /// Call number `n` (1-based) gets `fault`.
    pub fn on_call(self, n: u32, fault: Fault) -> Self {
        self.inner.by_call.lock().insert(n, fault);
        self
    }

    /// Calls `from..=to` get `fault`.
    pub fn on_calls(self, from: u32, to: u32, fault: Fault) -> Self {
        {
            let mut by_call = self.inner.by_call.lock();
            for n in from..=to {
                by_call.insert(n, fault.clone());
            }
        }
        self
    }

    /// Every call not scripted otherwise gets `fault`.
    pub fn always(self, fault: Fault) -> Self {
        *self.inner.otherwise.lock() = Some(fault);
        self
    }

    /// How many calls were made.
    pub fn calls(&self) -> u32 {
        self.inner.calls.load(Ordering::SeqCst)
    }

    /// Lets every current and future [`Fault::Block`] call proceed.
    pub fn release(&self) {
        self.inner.release_all.store(true, Ordering::SeqCst);
        self.inner.released.notify_waiters();
    }

    /// Counts a call and applies its fault: `Err` for [`Fault::Fail`], otherwise `Ok` after any
    /// delay or block.
    pub async fn next(&self) -> Result<(), HandlerError> {
        let n = self.inner.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = self
            .inner
            .by_call
            .lock()
            .get(&n)
            .cloned()
            .or_else(|| self.inner.otherwise.lock().clone());
        match fault {
            None => Ok(()),
            Some(Fault::Fail(kind)) => Err(HandlerError::new(
                kind,
                format!("injected fault on call {n}"),
            )),
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            Some(Fault::Block) => {
                loop {
                    let released = self.inner.released.notified();
                    if self.inner.release_all.load(Ordering::SeqCst) {
                        break;
                    }
                    released.await;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_nth_call_fails_with_the_given_kind() {
        let plan = FaultPlan::new().on_call(2, Fault::Fail(HandlerErrorKind::Transient));
        assert!(plan.next().await.is_ok());
        let err = plan.next().await.unwrap_err();
        assert_eq!(err.kind(), HandlerErrorKind::Transient);
        assert!(plan.next().await.is_ok());
        assert_eq!(plan.calls(), 3);
    }

    #[tokio::test]
    async fn always_applies_to_unscripted_calls() {
        let plan = FaultPlan::new()
            .on_call(1, Fault::Delay(Duration::ZERO))
            .always(Fault::Fail(HandlerErrorKind::Permanent));
        assert!(plan.next().await.is_ok());
        assert_eq!(
            plan.next().await.unwrap_err().kind(),
            HandlerErrorKind::Permanent
        );
    }

    #[tokio::test]
    async fn blocked_calls_wait_for_release() {
        let plan = FaultPlan::new().always(Fault::Block);
        let p = plan.clone();
        let call = tokio::spawn(async move { p.next().await });
        tokio::task::yield_now().await;
        assert!(!call.is_finished());
        plan.release();
        tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
