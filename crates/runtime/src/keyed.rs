//! Per-ordering-key serialization.
//!
//! The runtime promises that two messages with the same ordering key are never handled at the
//! same time by one replica (kube-runtime makes the same promise per object). Waiters queue in
//! arrival order because Tokio's mutex is fair; entries disappear when the last holder leaves, so
//! the map only holds keys that are in flight.

use foldhash::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Slots = Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>;

/// A set of async locks, one per key currently in use.
#[derive(Debug, Clone, Default)]
pub struct KeyedLocks {
    slots: Slots,
}

/// Held while a message with the key is being handled; releases the key on drop.
#[derive(Debug)]
pub struct KeyGuard {
    key: String,
    slots: Slots,
    lock: Arc<AsyncMutex<()>>,
    held: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    /// An empty set.
    pub fn new() -> Self {
        KeyedLocks::default()
    }

    /// Waits until no other holder has `key`, then holds it.
    pub async fn acquire(&self, key: &str) -> KeyGuard {
        let lock = {
            let mut slots = self.slots.lock();
            slots
                .entry(key.to_owned())
                .or_insert_with(|| Arc::new(AsyncMutex::new(())))
                .clone()
        };
        let held = lock.clone().lock_owned().await;
        KeyGuard {
            key: key.to_owned(),
            slots: self.slots.clone(),
            lock,
            held: Some(held),
        }
    }

    /// Number of keys held or awaited right now.
    pub fn active_keys(&self) -> usize {
        self.slots.lock().len()
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        let mut slots = self.slots.lock();
        self.held.take();
        // Remaining references: the map's and ours; anything more is a waiter that will reuse it.
        if Arc::strong_count(&self.lock) <= 2 {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn same_key_is_exclusive_and_different_keys_run_together() {
        let locks = KeyedLocks::new();
        let a = locks.acquire("svc-1").await;
        let b = tokio::time::timeout(Duration::from_secs(1), locks.acquire("svc-2")).await;
        assert!(b.is_ok(), "another key must not wait");
        let waiting = tokio::time::timeout(Duration::from_millis(50), locks.acquire("svc-1")).await;
        assert!(waiting.is_err(), "same key must wait while held");
        drop(a);
        let again = tokio::time::timeout(Duration::from_secs(1), locks.acquire("svc-1")).await;
        assert!(again.is_ok());
    }

    #[tokio::test]
    async fn entries_are_removed_when_released() {
        let locks = KeyedLocks::new();
        let g = locks.acquire("k").await;
        assert_eq!(locks.active_keys(), 1);
        drop(g);
        assert_eq!(locks.active_keys(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_holders_of_one_key_never_overlap() {
        let locks = KeyedLocks::new();
        let inside = Arc::new(AtomicUsize::new(0));
        let max_seen = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (locks, inside, max_seen) = (locks.clone(), inside.clone(), max_seen.clone());
            tasks.push(tokio::spawn(async move {
                let _g = locks.acquire("hot").await;
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(max_seen.load(Ordering::SeqCst), 1);
        assert_eq!(locks.active_keys(), 0);
    }
}
