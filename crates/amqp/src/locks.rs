//! Lock tokens handed out by the listener, shared by all connections.
//!
//! A peek-lock delivery can be settled on its link (by delivery id) or through `$management`
//! (by lock token, possibly from another link or connection), so the listener keeps each
//! outstanding token with the receiver that issued it and the message as delivered. Settled
//! tokens are remembered for a while so that a fallback `update-disposition` arriving after
//! the link disposition is answered as done instead of "lock lost".

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use fleet_bus::{BusReceiver, ReceivedMessage};
use parking_lot::Mutex;
use uuid::Uuid;

/// How many settled tokens are remembered for idempotent re-settlement.
const REMEMBERED: usize = 8_192;

/// One outstanding lock.
#[derive(Clone)]
pub(crate) struct Lock {
    /// The receiver that issued the lock: settlement goes back through it.
    pub receiver: Arc<dyn BusReceiver>,
    /// The message as delivered (the port settles by message).
    pub message: ReceivedMessage,
    /// The connection that received it, so its locks can be forgotten when it closes.
    pub connection: u64,
}

#[derive(Default)]
struct Inner {
    outstanding: HashMap<Uuid, Lock>,
    settled: HashSet<Uuid>,
    settled_order: VecDeque<Uuid>,
}

/// The registry.
#[derive(Default)]
pub(crate) struct Locks {
    inner: Mutex<Inner>,
}

impl Locks {
    pub(crate) fn insert(&self, token: Uuid, lock: Lock) {
        self.inner.lock().outstanding.insert(token, lock);
    }

    pub(crate) fn get(&self, token: &Uuid) -> Option<Lock> {
        self.inner.lock().outstanding.get(token).cloned()
    }

    /// Takes the lock out for settlement; put it back with `insert` if settling fails in a way
    /// that leaves the lock valid.
    pub(crate) fn take(&self, token: &Uuid) -> Option<Lock> {
        self.inner.lock().outstanding.remove(token)
    }

    pub(crate) fn update_locked_until(&self, token: &Uuid, until: chrono::DateTime<chrono::Utc>) {
        if let Some(lock) = self.inner.lock().outstanding.get_mut(token) {
            lock.message.locked_until = Some(until);
        }
    }

    /// Records a successful settlement.
    pub(crate) fn settled(&self, token: Uuid) {
        let mut inner = self.inner.lock();
        if inner.settled.insert(token) {
            inner.settled_order.push_back(token);
            while inner.settled_order.len() > REMEMBERED {
                if let Some(old) = inner.settled_order.pop_front() {
                    inner.settled.remove(&old);
                }
            }
        }
    }

    pub(crate) fn was_settled(&self, token: &Uuid) -> bool {
        self.inner.lock().settled.contains(token)
    }

    /// Forgets the locks of a closed connection (the backend expires them on its own).
    pub(crate) fn forget_connection(&self, connection: u64) {
        self.inner
            .lock()
            .outstanding
            .retain(|_, lock| lock.connection != connection);
    }
}
