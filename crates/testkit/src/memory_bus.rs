//! A minimal in-memory bus: every receiver reads one shared queue, every sender counts what it
//! sends (and loops scheduled messages back into the queue). It has no topics, filters or
//! durability; it exists to unit-test and to measure the runtime's own CPU per message without
//! broker I/O. Behavioural tests use the emulator engine through [`crate::Harness`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use fleet_bus::{
    Bus, BusError, BusReceiver, BusSender, DeadLetterOptions, EntityPath, Message, MessageState,
    PropertyValue, ReceiveOptions, ReceivedMessage,
};
use parking_lot::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

const LOCK: chrono::Duration = chrono::Duration::seconds(60);

/// Counters of what happened on a [`MemoryBus`].
#[derive(Debug, Default)]
pub struct MemoryBusCounts {
    /// Messages completed.
    pub completed: AtomicU64,
    /// Messages dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Messages abandoned (and requeued).
    pub abandoned: AtomicU64,
    /// Messages sent (published).
    pub sent: AtomicU64,
    /// Messages scheduled (requeued at once).
    pub scheduled: AtomicU64,
}

/// The in-memory bus (a cheap handle; clones share the queue).
#[derive(Clone, Default)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<VecDeque<ReceivedMessage>>,
    arrived: Notify,
    next_seq: AtomicI64,
    counts: MemoryBusCounts,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus")
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl MemoryBus {
    /// An empty bus.
    pub fn new() -> Self {
        MemoryBus::default()
    }

    /// What happened so far.
    pub fn counts(&self) -> &MemoryBusCounts {
        &self.inner.counts
    }

    /// Enqueues `msg` for any receiver.
    pub fn push(&self, msg: Message) {
        let now = Utc::now();
        let received = ReceivedMessage {
            message: msg,
            sequence_number: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            enqueued_time: now,
            delivery_count: 1,
            locked_until: Some(now + LOCK),
            lock_token: Some(Uuid::new_v4()),
            expires_at: None,
            dead_letter_reason: None,
            dead_letter_description: None,
            dead_letter_source: None,
            state: MessageState::Active,
        };
        self.inner.queue.lock().push_back(received);
        self.inner.arrived.notify_one();
    }

    /// Messages waiting.
    pub fn queued(&self) -> usize {
        self.inner.queue.lock().len()
    }
}

struct Sender(MemoryBus);
struct Receiver(MemoryBus);

#[async_trait::async_trait]
impl Bus for MemoryBus {
    async fn sender(&self, _entity: &str) -> Result<Box<dyn BusSender>, BusError> {
        Ok(Box::new(Sender(self.clone())))
    }

    async fn receiver(
        &self,
        _entity: &EntityPath,
        _options: ReceiveOptions,
    ) -> Result<Box<dyn BusReceiver>, BusError> {
        Ok(Box::new(Receiver(self.clone())))
    }
}

#[async_trait::async_trait]
impl BusSender for Sender {
    async fn send(&self, _msg: Message) -> Result<(), BusError> {
        self.0.inner.counts.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn send_batch(&self, msgs: Vec<Message>) -> Result<(), BusError> {
        self.0
            .inner
            .counts
            .sent
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn schedule(&self, msg: Message, _at: DateTime<Utc>) -> Result<i64, BusError> {
        self.0
            .inner
            .counts
            .scheduled
            .fetch_add(1, Ordering::Relaxed);
        self.0.push(msg);
        Ok(self.0.inner.next_seq.load(Ordering::Relaxed))
    }

    async fn cancel_scheduled(&self, _sequence_number: i64) -> Result<(), BusError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl BusReceiver for Receiver {
    async fn receive(
        &self,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        let take = |q: &mut VecDeque<ReceivedMessage>| {
            let n = max.min(q.len());
            q.drain(..n).collect::<Vec<_>>()
        };
        let arrived = self.0.inner.arrived.notified();
        let got = take(&mut self.0.inner.queue.lock());
        if !got.is_empty() {
            return Ok(got);
        }
        let _ = tokio::time::timeout(max_wait, arrived).await;
        Ok(take(&mut self.0.inner.queue.lock()))
    }

    async fn complete(&self, _m: &ReceivedMessage) -> Result<(), BusError> {
        self.0
            .inner
            .counts
            .completed
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn abandon(
        &self,
        m: &ReceivedMessage,
        props: BTreeMap<String, PropertyValue>,
    ) -> Result<(), BusError> {
        self.0
            .inner
            .counts
            .abandoned
            .fetch_add(1, Ordering::Relaxed);
        let mut again = m.clone();
        again.message.application_properties.extend(props);
        again.delivery_count += 1;
        self.0.inner.queue.lock().push_back(again);
        self.0.inner.arrived.notify_one();
        Ok(())
    }

    async fn dead_letter(
        &self,
        _m: &ReceivedMessage,
        _opts: DeadLetterOptions,
    ) -> Result<(), BusError> {
        self.0
            .inner
            .counts
            .dead_lettered
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn defer(&self, _m: &ReceivedMessage) -> Result<(), BusError> {
        Err(BusError::invalid("the in-memory bus does not defer"))
    }

    async fn receive_deferred(
        &self,
        _sequence_numbers: &[i64],
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        Ok(Vec::new())
    }

    async fn renew_lock(&self, _m: &ReceivedMessage) -> Result<DateTime<Utc>, BusError> {
        Ok(Utc::now() + LOCK)
    }

    async fn peek(
        &self,
        _from: Option<i64>,
        _max: usize,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        Ok(Vec::new())
    }

    async fn close(&self) -> Result<(), BusError> {
        Ok(())
    }
}
