//! The outbox relay: publishes committed outbox rows and marks them dispatched.
//!
//! After each successful commit and settle the relay is woken; it also sweeps periodically for
//! rows a crashed replica left behind. Rows are claimed with a lease (`claim_outbox`), so
//! replicas sharing a store do not publish the same row at the same time; a row published but
//! not yet marked (crash in between) is published again with the same `MessageId`, which broker
//! duplicate detection and consumers' inbox dedupe absorb.

use foldhash::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fleet_bus::{Bus, BusSender, Message};
use fleet_store::{OutboxRow, Store};
use fleet_telemetry::Metrics;
use fleet_telemetry::events::{OutboxPublishFailed, OutboxPublished};
use tokio::sync::{Mutex, Notify, watch};
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::{RuntimeError, RuntimeErrorKind};
use crate::outbox::into_bus_message;

// Rows claimed per round trip; bounded so one sweep cannot hold a huge lease set.
const CLAIM_LIMIT: usize = 256;
// How long a claim keeps other relays away; longer than a publish round trip by far.
const LEASE: Duration = Duration::from_secs(30);
// Service Bus standard tier rejects batches over 256 KiB; stay under it with headroom.
const MAX_BATCH_BYTES: usize = 192 * 1024;
const MAX_BATCH_COUNT: usize = 100;

/// Publishes outbox rows.
pub struct Relay {
    store: Arc<dyn Store>,
    bus: Arc<dyn Bus>,
    clock: Arc<dyn Clock>,
    // Identifies this replica's claims.
    claimer: String,
    senders: Mutex<HashMap<String, Arc<dyn BusSender>>>,
    wake: Notify,
    metrics: Metrics,
    // Labels the relay's metrics.
    worker: Arc<str>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("claimer", &self.claimer)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay publishing through `bus`; `claimer` names this replica in claims.
    pub fn new(
        store: Arc<dyn Store>,
        bus: Arc<dyn Bus>,
        clock: Arc<dyn Clock>,
        claimer: String,
        metrics: Metrics,
        worker: Arc<str>,
    ) -> Self {
        Relay {
            store,
            bus,
            clock,
            claimer,
            senders: Mutex::new(HashMap::default()),
            wake: Notify::new(),
            metrics,
            worker,
        }
    }

    /// Asks the background loop to publish now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Publishes every claimable pending row; returns how many were published.
    pub async fn publish_pending(&self) -> Result<usize, RuntimeError> {
        let mut published = 0;
        loop {
            let rows = match self
                .store
                .claim_outbox(&self.claimer, CLAIM_LIMIT, LEASE, self.clock.now())
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    let e =
                        RuntimeError::new(RuntimeErrorKind::Store, "claiming outbox rows failed")
                            .with_source(e);
                    OutboxPublishFailed {
                        worker: &self.worker,
                        error: &e.to_string(),
                    }
                    .emit(&self.metrics);
                    return Err(e);
                }
            };
            let claimed = rows.len();
            published += self.publish_rows(rows).await?;
            if claimed < CLAIM_LIMIT {
                return Ok(published);
            }
        }
    }

    async fn publish_rows(&self, rows: Vec<OutboxRow>) -> Result<usize, RuntimeError> {
        let mut by_destination: HashMap<String, Vec<(Uuid, Message)>> = HashMap::default();
        for mut row in rows {
            let id = row.message.id;
            let destination = std::mem::take(&mut row.message.destination);
            match into_bus_message(row.message) {
                Ok(message) => by_destination
                    .entry(destination)
                    .or_default()
                    .push((id, message)),
                // A damaged row is reported and left to its lease; it never blocks the others.
                Err(e) => OutboxPublishFailed {
                    worker: &self.worker,
                    error: &e.to_string(),
                }
                .emit(&self.metrics),
            }
        }
        let mut published = 0;
        for (destination, messages) in by_destination {
            let sender = self.sender(&destination).await?;
            for chunk in chunks(messages) {
                let ids: Vec<Uuid> = chunk.iter().map(|(id, _)| *id).collect();
                let msgs: Vec<Message> = chunk.into_iter().map(|(_, m)| m).collect();
                let result = if msgs.len() == 1 {
                    match msgs.into_iter().next() {
                        Some(m) => sender.send(m).await,
                        None => Ok(()),
                    }
                } else {
                    sender.send_batch(msgs).await
                };
                let marked = match result {
                    Ok(()) => self
                        .store
                        .mark_dispatched(&ids, self.clock.now())
                        .await
                        .map_err(|e| {
                            RuntimeError::new(
                                RuntimeErrorKind::Store,
                                "marking outbox rows dispatched failed",
                            )
                            .with_source(e)
                        }),
                    Err(e) => Err(RuntimeError::new(
                        RuntimeErrorKind::Bus,
                        format!("publishing to {destination} failed"),
                    )
                    .with_source(e)),
                };
                if let Err(e) = marked {
                    OutboxPublishFailed {
                        worker: &self.worker,
                        error: &e.to_string(),
                    }
                    .emit(&self.metrics);
                    return Err(e);
                }
                published += ids.len();
                OutboxPublished {
                    worker: &self.worker,
                    count: ids.len() as u64,
                }
                .emit(&self.metrics);
            }
        }
        Ok(published)
    }

    async fn sender(&self, destination: &str) -> Result<Arc<dyn BusSender>, RuntimeError> {
        let mut senders = self.senders.lock().await;
        if let Some(s) = senders.get(destination) {
            return Ok(s.clone());
        }
        let sender: Arc<dyn BusSender> =
            Arc::from(self.bus.sender(destination).await.map_err(|e| {
                RuntimeError::new(
                    RuntimeErrorKind::Bus,
                    format!("opening a sender to {destination} failed"),
                )
                .with_source(e)
            })?);
        senders.insert(destination.to_owned(), sender.clone());
        Ok(sender)
    }

    /// Runs until `stop` turns true: publishes when woken and every `interval`.
    pub(crate) async fn run(self: Arc<Self>, interval: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.publish_pending().await {
                // Rows stay pending for the next round; the failure event was emitted already.
                tracing::debug!(error = %e, "outbox relay round failed");
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
}

fn chunks(messages: Vec<(Uuid, Message)>) -> Vec<Vec<(Uuid, Message)>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (id, m) in messages {
        let size = m.size();
        if !current.is_empty()
            && (bytes + size > MAX_BATCH_BYTES || current.len() >= MAX_BATCH_COUNT)
        {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push((id, m));
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}
