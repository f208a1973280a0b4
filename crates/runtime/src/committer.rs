//! Group commit: units of work from concurrent messages are committed together with
//! `Store::commit_many` (one durable transaction, each unit atomic on its own), which is what
//! lets one replica exceed the store's fsync rate.

use std::sync::Arc;

use fleet_store::{Store, StoreError, UnitOfWork};
use tokio::sync::{mpsc, oneshot};

type Request = (UnitOfWork, oneshot::Sender<Result<(), StoreError>>);

// Bounds one group so a burst cannot make a single transaction arbitrarily long.
const MAX_GROUP: usize = 256;

/// Hands units of work to a background task that commits whatever is waiting as one group.
#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Request>,
}

impl Committer {
    /// Starts the committing task; it ends when every `Committer` clone is dropped.
    pub(crate) fn start(store: Arc<dyn Store>) -> Committer {
        let (tx, rx) = mpsc::channel::<Request>(MAX_GROUP * 4);
        tokio::spawn(run(store, rx));
        Committer { tx }
    }

    /// Commits `unit` atomically (possibly grouped with others) and returns its own result.
    pub(crate) async fn commit(&self, unit: UnitOfWork) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.tx.send((unit, reply)).await.is_err() {
            return Err(StoreError::unavailable("the committer has stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(StoreError::unavailable("the committer dropped the unit")))
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Request>) {
    let mut batch: Vec<Request> = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut batch, MAX_GROUP).await > 0 {
        if batch.len() == 1 {
            if let Some((unit, reply)) = batch.pop() {
                let _ = reply.send(store.commit(unit).await);
            }
            continue;
        }
        let (units, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        let n = units.len();
        let results = store.commit_many(units).await;
        if results.len() != n {
            for reply in replies {
                let _ = reply.send(Err(StoreError::unavailable(
                    "group commit returned a wrong number of results",
                )));
            }
            continue;
        }
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}
