//! One receivable queue in memory (an entity's main queue or its dead-letter subqueue) with the
//! indexes that keep receive and expiry processing from scanning.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use fleet_bus::{Message, MessageState, ReceivedMessage};
use uuid::Uuid;

use crate::store::{DeadLetterInfo, Meta, Write};

/// A message's immutable part, shared by the copies a topic fans out.
#[derive(Debug)]
pub(crate) struct Content {
    pub message: Message,
    // Encoded once so fan-out and rewrites do not re-serialize.
    pub headers: Arc<Vec<u8>>,
}

impl Content {
    pub(crate) fn new(mut message: Message) -> Arc<Self> {
        message.scheduled_enqueue_time = None;
        let headers = Arc::new(crate::store::codec::encode(&message));
        Arc::new(Self { message, headers })
    }
}

/// A stored message.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub seq: i64,
    pub content: Arc<Content>,
    pub meta: Meta,
    // Counted against the entity's quota.
    pub size: u64,
}

pub(crate) const STATE_ACTIVE: i64 = 0;
pub(crate) const STATE_DEFERRED: i64 = 1;
pub(crate) const STATE_SCHEDULED: i64 = 2;

pub(crate) fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Msg {
    pub(crate) fn state(&self) -> MessageState {
        match self.meta.state {
            STATE_DEFERRED => MessageState::Deferred,
            STATE_SCHEDULED => MessageState::Scheduled,
            _ => MessageState::Active,
        }
    }

    /// The view handed to receivers (`with_lock`) or to peek (no token).
    pub(crate) fn received(&self, with_lock: bool) -> ReceivedMessage {
        let mut message = self.content.message.clone();
        if let Some(at) = self.meta.scheduled {
            message.scheduled_enqueue_time = Some(to_time(at));
        }
        let dl = self.meta.dead_letter.as_deref();
        ReceivedMessage {
            message,
            sequence_number: self.seq,
            enqueued_time: to_time(self.meta.enqueued),
            delivery_count: self.meta.delivery_count,
            locked_until: self.meta.lock.map(|(_, until)| to_time(until)),
            lock_token: if with_lock {
                self.meta.lock.map(|(token, _)| token)
            } else {
                None
            },
            expires_at: self.meta.expires.map(to_time),
            dead_letter_reason: dl.map(|d| d.reason.clone()),
            dead_letter_description: dl.map(|d| d.description.clone()),
            dead_letter_source: dl.map(|d| d.source.clone()),
            state: self.state(),
        }
    }

    pub(crate) fn put(&self, entity: i64) -> Write {
        Write::Put {
            entity,
            seq: self.seq,
            meta: self.meta.clone(),
            headers: self.content.headers.clone(),
            body: self.content.message.body.clone(),
        }
    }

    pub(crate) fn update(&self, entity: i64) -> Write {
        Write::Update {
            entity,
            seq: self.seq,
            meta: self.meta.clone(),
        }
    }
}

/// The messages of one queue and its indexes.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    pub msgs: BTreeMap<i64, Msg>,
    /// Active, unlocked, due: what receive takes from, in sequence order.
    pub available: BTreeSet<i64>,
    /// Lock token → sequence number.
    pub locks: HashMap<Uuid, i64>,
    /// (locked until, seq) of every lock.
    pub lock_expiry: BTreeSet<(i64, i64)>,
    /// (expires, seq) of unlocked messages with a finite time to live.
    pub ttl: BTreeSet<(i64, i64)>,
    /// (enqueue at, seq) of scheduled messages.
    pub scheduled: BTreeSet<(i64, i64)>,
}

impl Queue {
    /// Adds `msg` to the indexes its metadata calls for.
    pub(crate) fn insert(&mut self, msg: Msg) {
        let seq = msg.seq;
        match msg.meta.lock {
            Some((token, until)) => {
                self.locks.insert(token, seq);
                self.lock_expiry.insert((until, seq));
            }
            None => {
                if msg.meta.state == STATE_SCHEDULED {
                    self.scheduled
                        .insert((msg.meta.scheduled.unwrap_or(msg.meta.enqueued), seq));
                } else {
                    if msg.meta.state == STATE_ACTIVE {
                        self.available.insert(seq);
                    }
                    if let Some(exp) = msg.meta.expires.filter(|_| !msg.meta.dlq) {
                        self.ttl.insert((exp, seq));
                    }
                }
            }
        }
        self.msgs.insert(seq, msg);
    }

    /// Removes `seq` from the queue and every index.
    pub(crate) fn remove(&mut self, seq: i64) -> Option<Msg> {
        let msg = self.msgs.remove(&seq)?;
        self.available.remove(&seq);
        if let Some((token, until)) = msg.meta.lock {
            self.locks.remove(&token);
            self.lock_expiry.remove(&(until, seq));
        }
        if let Some(exp) = msg.meta.expires {
            self.ttl.remove(&(exp, seq));
        }
        if let Some(at) = msg.meta.scheduled {
            self.scheduled.remove(&(at, seq));
        }
        Some(msg)
    }

    /// The earliest deadline in this queue.
    pub(crate) fn next_due(&self) -> Option<i64> {
        [
            self.lock_expiry.first(),
            self.ttl.first(),
            self.scheduled.first(),
        ]
        .into_iter()
        .flatten()
        .map(|(at, _)| *at)
        .min()
    }
}

pub(crate) fn dead_letter_info(
    reason: &str,
    description: &str,
    source: &str,
) -> Option<Arc<DeadLetterInfo>> {
    Some(Arc::new(DeadLetterInfo {
        reason: reason.into(),
        description: description.into(),
        source: source.into(),
    }))
}
