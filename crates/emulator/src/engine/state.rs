//! The engine's in-memory state and the operations that change it. Everything here is
//! synchronous and I/O-free: each operation records the rows it changed as [`Write`]s for the
//! group-commit writer and the queues that gained messages for waking receivers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use fleet_bus::{BusError, BusErrorKind, Message};

use super::queue::{Content, Msg, Queue, STATE_ACTIVE, STATE_SCHEDULED, dead_letter_info};
use crate::config::{ReceiveSettings, Rule};
use crate::store::{Meta, Write};

/// What an entity is.
#[derive(Debug)]
pub(crate) enum Kind {
    Queue,
    Topic {
        subscriptions: Vec<usize>,
    },
    Subscription {
        topic: usize,
        /// The rules in force (`$Default` included when it applies); none means no message.
        rules: Vec<RuleEntry>,
    },
}

/// A rule in force on a subscription.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleEntry {
    pub rule: Rule,
    /// Milliseconds since the epoch when it was added at run time; `None` for configured rules.
    pub created: Option<i64>,
}

/// Whether a subscription with `rules` takes `msg`: any rule matches.
pub(crate) fn accepts(rules: &[RuleEntry], msg: &Message) -> bool {
    rules.iter().any(|r| r.rule.filter.matches(msg))
}

/// Duplicate-detection history of a queue or topic.
#[derive(Debug, Default)]
pub(crate) struct Dedupe {
    pub window: i64,
    pub seen: HashMap<String, i64>,
    pub order: VecDeque<(i64, String)>,
}

/// A queue, topic or subscription.
#[derive(Debug)]
pub(crate) struct Entity {
    pub id: i64,
    /// As clients write it: `q`, `t`, `t/Subscriptions/s`.
    pub path: String,
    pub kind: Kind,
    pub settings: ReceiveSettings,
    /// A topic's default time to live, capping its subscriptions'.
    pub topic_ttl: Option<Duration>,
    pub dedupe: Option<Dedupe>,
    /// Queues and topics only: the next sequence number to hand out.
    pub next_seq: i64,
    /// A topic keeps only its scheduled messages here.
    pub main: Queue,
    pub dlq: Queue,
    pub bytes: u64,
}

/// Size limits the engine enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_message_bytes: usize,
    pub max_entity_bytes: u64,
}

/// Per-operation scratch: the time, the changes to persist, the queues to wake.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub now: i64,
    pub writes: Vec<Write>,
    pub wake: Vec<(usize, bool)>,
}

impl Ctx {
    pub(crate) fn new(now: i64) -> Self {
        Self {
            now,
            writes: Vec::new(),
            wake: Vec::new(),
        }
    }
}

/// All entities.
#[derive(Debug)]
pub(crate) struct State {
    pub entities: Vec<Entity>,
    /// Lower-cased path → index (Service Bus names are case-insensitive).
    pub names: HashMap<String, usize>,
    /// No deadline is earlier than this (it may be earlier than the true next deadline, never later).
    pub next_due: i64,
    pub limits: Limits,
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl State {
    pub(crate) fn deadline(&mut self, at: i64) {
        self.next_due = self.next_due.min(at);
    }

    pub(crate) fn queue(&mut self, idx: usize, dlq: bool) -> &mut Queue {
        let e = &mut self.entities[idx];
        if dlq { &mut e.dlq } else { &mut e.main }
    }

    /// Sends (or schedules, per `scheduled_enqueue_time`) to a queue or topic; all or nothing.
    pub(crate) fn send(
        &mut self,
        idx: usize,
        msgs: Vec<Message>,
        ctx: &mut Ctx,
    ) -> Result<Vec<i64>, BusError> {
        let entity = &self.entities[idx];
        if matches!(entity.kind, Kind::Subscription { .. }) {
            return Err(BusError::invalid(format!(
                "cannot send to subscription \"{}\"",
                entity.path
            )));
        }
        let limit = self.limits.max_message_bytes;
        for (i, m) in msgs.iter().enumerate() {
            let size = m.size();
            if size > limit {
                return Err(BusError::new(
                    BusErrorKind::MessageSizeExceeded,
                    format!(
                        "message {i} ({}) is {size} bytes, more than the {limit} accepted by \"{}\"",
                        m.message_id.as_deref().unwrap_or("without id"),
                        entity.path
                    ),
                ));
            }
        }
        // Plan first (duplicates, targets, quota) so a refused batch changes nothing.
        let mut batch_ids = HashSet::new();
        let mut plan = Vec::with_capacity(msgs.len());
        let mut added: HashMap<usize, u64> = HashMap::new();
        for m in &msgs {
            let duplicate = match (&entity.dedupe, &m.message_id) {
                (Some(d), Some(id)) => {
                    d.seen.get(id).is_some_and(|at| *at + d.window > ctx.now)
                        || !batch_ids.insert(id.clone())
                }
                _ => false,
            };
            let at = m
                .scheduled_enqueue_time
                .map(|t| t.timestamp_millis())
                .filter(|at| *at > ctx.now);
            let targets: Vec<usize> = match (&entity.kind, at) {
                _ if duplicate => Vec::new(),
                (Kind::Topic { subscriptions }, None) => subscriptions
                    .iter()
                    .copied()
                    .filter(|s| matches!(&self.entities[*s].kind, Kind::Subscription { rules, .. } if accepts(rules, m)))
                    .collect(),
                _ => vec![idx],
            };
            for t in &targets {
                *added.entry(*t).or_default() += m.size() as u64;
            }
            plan.push((duplicate, at, targets));
        }
        for (t, bytes) in &added {
            let target = &self.entities[*t];
            if target.bytes + bytes > self.limits.max_entity_bytes {
                return Err(BusError::new(
                    BusErrorKind::QuotaExceeded,
                    format!(
                        "entity \"{}\" is full: {} of {} bytes used",
                        target.path, target.bytes, self.limits.max_entity_bytes
                    ),
                ));
            }
        }
        let mut seqs = Vec::with_capacity(msgs.len());
        for (m, (duplicate, at, targets)) in msgs.into_iter().zip(plan) {
            let entity = &mut self.entities[idx];
            let seq = entity.next_seq;
            entity.next_seq += 1;
            seqs.push(seq);
            if let (Some(d), Some(id), false) = (&mut entity.dedupe, &m.message_id, duplicate) {
                d.seen.insert(id.clone(), ctx.now);
                d.order.push_back((ctx.now, id.clone()));
                ctx.writes.push(Write::Seen {
                    entity: entity.id,
                    message_id: id.clone(),
                    at: ctx.now,
                });
                let forget = ctx.now + d.window;
                self.deadline(forget);
            }
            if targets.is_empty() {
                continue;
            }
            let content = Content::new(m);
            match at {
                Some(at) => self.hold(idx, seq, content, at, ctx),
                None => {
                    for t in targets {
                        self.enqueue(t, seq, content.clone(), ctx.now, ctx);
                    }
                }
            }
        }
        let entity = &self.entities[idx];
        ctx.writes.push(Write::NextSeq {
            entity: entity.id,
            next: entity.next_seq,
        });
        Ok(seqs)
    }

    /// Keeps a scheduled message in its queue or topic until `at`.
    fn hold(&mut self, idx: usize, seq: i64, content: Arc<Content>, at: i64, ctx: &mut Ctx) {
        let size = content.message.size() as u64;
        let msg = Msg {
            seq,
            content,
            meta: Meta {
                dlq: false,
                state: STATE_SCHEDULED,
                enqueued: at,
                scheduled: Some(at),
                expires: None,
                delivery_count: 0,
                lock: None,
                dead_letter: None,
            },
            size,
        };
        let entity = &mut self.entities[idx];
        ctx.writes.push(msg.put(entity.id));
        entity.bytes += size;
        entity.main.insert(msg);
        self.deadline(at);
    }

    /// Makes a message available in queue or subscription `idx`.
    pub(crate) fn enqueue(
        &mut self,
        idx: usize,
        seq: i64,
        content: Arc<Content>,
        enqueued: i64,
        ctx: &mut Ctx,
    ) {
        let entity = &self.entities[idx];
        let ttl = [
            content.message.time_to_live,
            entity.settings.default_ttl,
            self.topic_ttl_of(idx),
        ]
        .into_iter()
        .flatten()
        .min();
        let expires = ttl.map(|ttl| enqueued.saturating_add(millis(ttl)));
        let size = content.message.size() as u64;
        let scheduled = content
            .message
            .scheduled_enqueue_time
            .map(|t| t.timestamp_millis());
        let msg = Msg {
            seq,
            content,
            meta: Meta {
                dlq: false,
                state: STATE_ACTIVE,
                enqueued,
                scheduled,
                expires,
                delivery_count: 0,
                lock: None,
                dead_letter: None,
            },
            size,
        };
        let entity = &mut self.entities[idx];
        ctx.writes.push(msg.put(entity.id));
        entity.bytes += size;
        entity.main.insert(msg);
        ctx.wake.push((idx, false));
        if let Some(exp) = expires {
            self.deadline(exp);
        }
    }

    fn topic_ttl_of(&self, idx: usize) -> Option<Duration> {
        match &self.entities[idx].kind {
            Kind::Subscription { topic, .. } => self.entities[*topic].topic_ttl,
            _ => None,
        }
    }

    /// Removes scheduled messages before they are enqueued; `MessageNotFound` (and no change)
    /// when any number is not a pending scheduled message.
    pub(crate) fn cancel(
        &mut self,
        idx: usize,
        seqs: &[i64],
        ctx: &mut Ctx,
    ) -> Result<(), BusError> {
        let entity = &self.entities[idx];
        if let Some(seq) = seqs.iter().find(|s| {
            entity
                .main
                .msgs
                .get(s)
                .is_none_or(|m| m.meta.state != STATE_SCHEDULED)
        }) {
            return Err(BusError::new(
                BusErrorKind::MessageNotFound,
                format!(
                    "no scheduled message with sequence number {seq} in \"{}\"",
                    entity.path
                ),
            ));
        }
        let entity = &mut self.entities[idx];
        for seq in seqs {
            if let Some(msg) = entity.main.remove(*seq) {
                entity.bytes -= msg.size;
                ctx.writes.push(Write::Delete {
                    entity: entity.id,
                    seq: *seq,
                });
            }
        }
        Ok(())
    }

    /// Processes every deadline that has passed: scheduled enqueues, expired locks, expired
    /// messages, duplicate-detection history.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx) {
        if ctx.now < self.next_due {
            return;
        }
        for idx in 0..self.entities.len() {
            self.tick_entity(idx, ctx);
        }
        self.next_due = self
            .entities
            .iter()
            .flat_map(|e| {
                let forget = e
                    .dedupe
                    .as_ref()
                    .and_then(|d| d.order.front().map(|(at, _)| at + d.window));
                [e.main.next_due(), e.dlq.next_due(), forget]
            })
            .flatten()
            .min()
            .unwrap_or(i64::MAX);
    }

    fn tick_entity(&mut self, idx: usize, ctx: &mut Ctx) {
        let now = ctx.now;
        while let Some(&(at, seq)) = self.entities[idx]
            .main
            .scheduled
            .first()
            .filter(|(at, _)| *at <= now)
        {
            let entity = &mut self.entities[idx];
            entity.main.scheduled.remove(&(at, seq));
            let Some(msg) = entity.main.remove(seq) else {
                continue;
            };
            if let Kind::Topic { subscriptions } = &entity.kind {
                let subs = subscriptions.clone();
                entity.bytes -= msg.size;
                ctx.writes.push(Write::Delete {
                    entity: entity.id,
                    seq,
                });
                for s in subs {
                    if matches!(&self.entities[s].kind, Kind::Subscription { rules, .. } if accepts(rules, &msg.content.message))
                    {
                        self.enqueue(s, seq, msg.content.clone(), at, ctx);
                    }
                }
            } else {
                let mut msg = msg;
                msg.meta.state = STATE_ACTIVE;
                msg.meta.enqueued = at;
                let ttl = [
                    msg.content.message.time_to_live,
                    entity.settings.default_ttl,
                ]
                .into_iter()
                .flatten()
                .min();
                msg.meta.expires = ttl.map(|ttl| at.saturating_add(millis(ttl)));
                ctx.writes.push(msg.update(entity.id));
                entity.main.insert(msg);
                ctx.wake.push((idx, false));
            }
        }
        for dlq in [false, true] {
            while let Some(&(until, seq)) = self
                .queue(idx, dlq)
                .lock_expiry
                .first()
                .filter(|(until, _)| *until <= now)
            {
                self.queue(idx, dlq).lock_expiry.remove(&(until, seq));
                if let Some(mut msg) = self.queue(idx, dlq).remove(seq) {
                    msg.meta.lock = None;
                    self.release(idx, dlq, msg, false, ctx);
                }
            }
        }
        while let Some(&(exp, seq)) = self.entities[idx]
            .main
            .ttl
            .first()
            .filter(|(exp, _)| *exp <= now)
        {
            self.entities[idx].main.ttl.remove(&(exp, seq));
            if let Some(msg) = self.entities[idx].main.remove(seq) {
                self.expire(idx, msg, false, ctx);
            }
        }
        let entity = &mut self.entities[idx];
        if let Some(d) = &mut entity.dedupe {
            let before = now - d.window;
            let mut forgot = false;
            while let Some((at, _)) = d.order.front().filter(|(at, _)| *at <= before) {
                let at = *at;
                if let Some((_, id)) = d.order.pop_front()
                    && d.seen.get(&id) == Some(&at)
                {
                    d.seen.remove(&id);
                }
                forgot = true;
            }
            if forgot {
                ctx.writes.push(Write::ForgetSeen {
                    entity: entity.id,
                    before: before + 1,
                });
            }
        }
    }

    /// Puts an unlocked message back: dead-lettered when its deliveries are used up, expired
    /// when its time ran out while locked, else available again (deferred stay deferred).
    pub(crate) fn release(
        &mut self,
        idx: usize,
        dlq: bool,
        msg: Msg,
        content_changed: bool,
        ctx: &mut Ctx,
    ) {
        let entity = &self.entities[idx];
        if !dlq && msg.meta.delivery_count >= entity.settings.max_delivery_count {
            let description = format!(
                "Message could not be consumed after {} delivery attempts.",
                entity.settings.max_delivery_count
            );
            self.move_to_dead_letter(
                idx,
                msg,
                "MaxDeliveryCountExceeded",
                &description,
                content_changed,
                ctx,
            );
        } else if !dlq && msg.meta.expires.is_some_and(|exp| exp <= ctx.now) {
            self.expire(idx, msg, content_changed, ctx);
        } else {
            let entity = &mut self.entities[idx];
            ctx.writes.push(if content_changed {
                msg.put(entity.id)
            } else {
                msg.update(entity.id)
            });
            if msg.meta.state == STATE_ACTIVE {
                ctx.wake.push((idx, dlq));
            }
            if let Some(exp) = msg.meta.expires.filter(|_| !dlq) {
                self.deadline(exp);
            }
            self.queue(idx, dlq).insert(msg);
        }
    }

    fn expire(&mut self, idx: usize, msg: Msg, content_changed: bool, ctx: &mut Ctx) {
        if self.entities[idx].settings.dead_lettering_on_expiration {
            self.move_to_dead_letter(
                idx,
                msg,
                "TTLExpiredException",
                "The message expired and was dead lettered.",
                content_changed,
                ctx,
            );
        } else {
            let entity = &mut self.entities[idx];
            entity.bytes -= msg.size;
            ctx.writes.push(Write::Delete {
                entity: entity.id,
                seq: msg.seq,
            });
        }
    }

    /// Moves a message (already removed from the main queue) to the dead-letter subqueue.
    pub(crate) fn move_to_dead_letter(
        &mut self,
        idx: usize,
        mut msg: Msg,
        reason: &str,
        description: &str,
        content_changed: bool,
        ctx: &mut Ctx,
    ) {
        let entity = &mut self.entities[idx];
        msg.meta.dlq = true;
        msg.meta.state = STATE_ACTIVE;
        msg.meta.lock = None;
        msg.meta.dead_letter = dead_letter_info(reason, description, &entity.path);
        ctx.writes.push(if content_changed {
            msg.put(entity.id)
        } else {
            msg.update(entity.id)
        });
        entity.dlq.insert(msg);
        ctx.wake.push((idx, true));
    }
}
