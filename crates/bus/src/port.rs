//! The traits adapters implement and the options receivers take.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::entity::EntityPath;
use crate::error::BusError;
use crate::message::{Message, PropertyValue, ReceivedMessage};
use crate::rules::RuleManager;

/// How a receiver takes messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ReceiveMode {
    /// The message is locked for the entity's lock duration and must be settled
    /// (complete, abandon, dead-letter, defer); an expired lock redelivers it.
    #[default]
    PeekLock,
    /// The message is removed as it is delivered: at-most-once.
    ReceiveAndDelete,
}

/// Which queue of an entity a receiver reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SubQueue {
    /// The entity itself.
    #[default]
    None,
    /// Its dead-letter subqueue.
    DeadLetter,
}

/// Options of [`Bus::receiver`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiveOptions {
    /// Peek-lock (default) or receive-and-delete.
    pub mode: ReceiveMode,
    /// How many messages the receiver may lock ahead of `receive` calls (0: none). Prefetched
    /// messages' locks run while they wait, as in Service Bus.
    pub prefetch: u32,
    /// The entity or its dead-letter subqueue (same as addressing `…/$DeadLetterQueue`).
    pub sub_queue: SubQueue,
}

impl ReceiveOptions {
    /// Peek-lock without prefetch on the entity itself.
    pub fn peek_lock() -> Self {
        Self::default()
    }

    /// Receive-and-delete without prefetch on the entity itself.
    pub fn receive_and_delete() -> Self {
        Self {
            mode: ReceiveMode::ReceiveAndDelete,
            ..Self::default()
        }
    }
}

/// What `dead_letter` records on the message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeadLetterOptions {
    /// Short machine-readable reason (`MalformedEnvelope`, `MaxRetriesExceeded`...).
    pub reason: String,
    /// Human-readable explanation.
    pub description: String,
    /// Application properties to add or replace on the dead-lettered message.
    pub properties_to_modify: BTreeMap<String, PropertyValue>,
}

impl DeadLetterOptions {
    /// Reason and description, no property changes.
    pub fn new(reason: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            description: description.into(),
            properties_to_modify: BTreeMap::new(),
        }
    }
}

/// A Service Bus namespace: hands out senders and receivers.
#[async_trait]
pub trait Bus: Send + Sync {
    /// A sender to a queue or topic; `EntityNotFound` naming it when neither exists.
    async fn sender(&self, entity: &str) -> Result<Box<dyn BusSender>, BusError>;

    /// A receiver on a queue or subscription (or its dead-letter subqueue, by path or by
    /// `options.sub_queue`); `EntityNotFound` naming it when it does not exist.
    async fn receiver(
        &self,
        entity: &EntityPath,
        options: ReceiveOptions,
    ) -> Result<Box<dyn BusReceiver>, BusError>;

    /// Rule management of topic subscriptions, when the backend supports it; `None` (the
    /// default) when the topology cannot change at run time.
    fn rule_manager(&self) -> Option<&dyn RuleManager> {
        None
    }
}

/// Sends to one queue or topic.
#[async_trait]
pub trait BusSender: Send + Sync {
    /// Sends one message; returns once the broker has stored it durably.
    async fn send(&self, msg: Message) -> Result<(), BusError>;

    /// Sends several messages atomically: all are stored or none.
    async fn send_batch(&self, msgs: Vec<Message>) -> Result<(), BusError>;

    /// Holds `msg` until `at`, returning its sequence number (the handle for cancelling).
    async fn schedule(&self, msg: Message, at: DateTime<Utc>) -> Result<i64, BusError>;

    /// Cancels a scheduled message that has not been enqueued yet; `MessageNotFound` otherwise.
    async fn cancel_scheduled(&self, sequence_number: i64) -> Result<(), BusError>;
}

/// Receives from one queue or subscription (or its dead-letter subqueue) and settles what it got.
///
/// Settling with a token that is stale (lock expired, message already settled) or that this
/// entity never issued fails with `MessageLockLost` and changes nothing.
#[async_trait]
pub trait BusReceiver: Send + Sync {
    /// Up to `max` messages; waits up to `max_wait` for the first one, returns an empty vector
    /// when none arrived.
    async fn receive(
        &self,
        max: usize,
        max_wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, BusError>;

    /// Removes the message.
    async fn complete(&self, m: &ReceivedMessage) -> Result<(), BusError>;

    /// Completes several messages, one result per message in order. Adapters that can settle a
    /// burst in one round trip or one transaction override it; the default completes one by one.
    async fn complete_many(&self, ms: &[ReceivedMessage]) -> Vec<Result<(), BusError>> {
        let mut results = Vec::with_capacity(ms.len());
        for m in ms {
            results.push(self.complete(m).await);
        }
        results
    }

    /// Releases the lock so the message is delivered again (deferred messages stay deferred),
    /// after merging `properties_to_modify` into its application properties. Reaching the
    /// entity's max delivery count dead-letters it with reason `MaxDeliveryCountExceeded`.
    async fn abandon(
        &self,
        m: &ReceivedMessage,
        properties_to_modify: BTreeMap<String, PropertyValue>,
    ) -> Result<(), BusError>;

    /// Moves the message to the dead-letter subqueue with a reason and description.
    async fn dead_letter(
        &self,
        m: &ReceivedMessage,
        opts: DeadLetterOptions,
    ) -> Result<(), BusError>;

    /// Sets the message aside; only [`receive_deferred`](Self::receive_deferred) delivers it.
    async fn defer(&self, m: &ReceivedMessage) -> Result<(), BusError>;

    /// Delivers deferred messages by sequence number (locked in peek-lock mode);
    /// `MessageNotFound` naming the first number that is not a deferred, unlocked message.
    async fn receive_deferred(
        &self,
        sequence_numbers: &[i64],
    ) -> Result<Vec<ReceivedMessage>, BusError>;

    /// Extends the lock by the entity's lock duration; returns the new expiry.
    async fn renew_lock(&self, m: &ReceivedMessage) -> Result<DateTime<Utc>, BusError>;

    /// Up to `max` messages from `from_sequence_number` on (or from after the last peeked one),
    /// without locking them; includes deferred and scheduled messages.
    async fn peek(
        &self,
        from_sequence_number: Option<i64>,
        max: usize,
    ) -> Result<Vec<ReceivedMessage>, BusError>;

    /// Releases prefetched messages and stops the receiver; later calls fail with `Closed`.
    async fn close(&self) -> Result<(), BusError>;
}
