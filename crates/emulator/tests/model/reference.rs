//! The reference model: the engine's documented semantics written as plainly as possible —
//! linear scans over a map, no indexes, no storage.

use std::collections::{BTreeMap, HashMap};

use fleet_bus::{BusErrorKind, MessageState, PropertyValue};

/// Entity indexes, in the engine's order: queue, topic, then the topic's subscriptions.
pub const Q: usize = 0;
pub const T: usize = 1;
pub const A: usize = 2;
pub const B: usize = 3;

#[derive(Debug, Clone)]
pub struct Settings {
    pub lock_ms: i64,
    pub max_delivery: u32,
    pub ttl_ms: Option<i64>,
    pub dl_on_expiry: bool,
}

#[derive(Debug, Clone)]
pub struct MMsg {
    pub seq: i64,
    pub body: String,
    pub subject: Option<String>,
    pub props: BTreeMap<String, PropertyValue>,
    pub ttl_ms: Option<i64>,
    pub expires: Option<i64>,
    pub scheduled_at: Option<i64>,
    pub delivery_count: u32,
    /// (lock generation, locked until)
    pub lock: Option<(u64, i64)>,
    pub state: MessageState,
    pub dlq: bool,
    pub reason: Option<String>,
}

/// What a receive or peek shows, compared between engine and model.
pub type Seen = (
    i64,
    String,
    u32,
    MessageState,
    Option<String>,
    BTreeMap<String, PropertyValue>,
);

pub fn seen(m: &MMsg) -> Seen {
    (
        m.seq,
        m.body.clone(),
        m.delivery_count,
        m.state,
        m.reason.clone(),
        m.props.clone(),
    )
}

#[derive(Debug)]
pub struct Model {
    pub now: i64,
    pub settings: [Settings; 4],
    pub msgs: [BTreeMap<i64, MMsg>; 4],
    pub next_seq: [i64; 2],
    pub seen_ids: HashMap<String, i64>,
    pub dedupe_window: i64,
    pub next_gen: u64,
}

impl Model {
    pub fn new(now: i64, settings: [Settings; 4], dedupe_window: i64) -> Self {
        Self {
            now,
            settings,
            msgs: Default::default(),
            next_seq: [1, 1],
            seen_ids: HashMap::new(),
            dedupe_window,
            next_gen: 0,
        }
    }

    fn ttl(&self, entity: usize, m: &MMsg) -> Option<i64> {
        let topic = if entity >= A {
            self.settings[T].ttl_ms
        } else {
            None
        };
        [m.ttl_ms, self.settings[entity].ttl_ms, topic]
            .into_iter()
            .flatten()
            .min()
    }

    fn accepts(sub: usize, m: &MMsg) -> bool {
        sub == A || m.subject.as_deref() == Some("x")
    }

    fn enqueue(&mut self, entity: usize, mut m: MMsg, at: i64) {
        m.state = MessageState::Active;
        m.expires = self.ttl(entity, &m).map(|ttl| at + ttl);
        self.msgs[entity].insert(m.seq, m);
    }

    /// Send (scheduled when `at` is later than now); returns the sequence numbers.
    pub fn send(
        &mut self,
        to: usize,
        msgs: Vec<(MMsg, Option<String>)>,
        at: Option<i64>,
    ) -> Vec<i64> {
        self.tick();
        let counter = if to == Q { 0 } else { 1 };
        let dedupe = to == Q;
        let mut seqs = Vec::new();
        for (mut m, id) in msgs {
            let seq = self.next_seq[counter];
            self.next_seq[counter] += 1;
            seqs.push(seq);
            m.seq = seq;
            if dedupe && let Some(id) = id {
                if self
                    .seen_ids
                    .get(&id)
                    .is_some_and(|t| t + self.dedupe_window > self.now)
                {
                    continue;
                }
                self.seen_ids.insert(id, self.now);
            }
            match at.filter(|at| *at > self.now) {
                Some(at) => {
                    m.state = MessageState::Scheduled;
                    m.scheduled_at = Some(at);
                    self.msgs[to].insert(seq, m);
                }
                None if to == T => {
                    for sub in [A, B] {
                        if Self::accepts(sub, &m) {
                            self.enqueue(sub, m.clone(), self.now);
                        }
                    }
                }
                None => self.enqueue(to, m, self.now),
            }
        }
        seqs
    }

    pub fn cancel(&mut self, to: usize, seq: i64) -> Result<(), BusErrorKind> {
        self.tick();
        match self.msgs[to].get(&seq) {
            Some(m) if m.state == MessageState::Scheduled => {
                self.msgs[to].remove(&seq);
                Ok(())
            }
            _ => Err(BusErrorKind::MessageNotFound),
        }
    }

    /// Processes deadlines in the engine's order: per entity, scheduled, then locks, then expiry.
    pub fn tick(&mut self) {
        let now = self.now;
        for e in [Q, T, A, B] {
            let mut due: Vec<(i64, i64)> = self.msgs[e]
                .values()
                .filter(|m| {
                    m.state == MessageState::Scheduled && m.scheduled_at.is_some_and(|at| at <= now)
                })
                .map(|m| (m.scheduled_at.unwrap_or_default(), m.seq))
                .collect();
            due.sort();
            for (at, seq) in due {
                let Some(m) = self.msgs[e].remove(&seq) else {
                    continue;
                };
                if e == T {
                    for sub in [A, B] {
                        if Self::accepts(sub, &m) {
                            self.enqueue(sub, m.clone(), at);
                        }
                    }
                } else {
                    self.enqueue(e, m, at);
                }
            }
            for dlq in [false, true] {
                let mut due: Vec<(i64, i64)> = self.msgs[e]
                    .values()
                    .filter(|m| m.dlq == dlq)
                    .filter_map(|m| {
                        m.lock
                            .filter(|(_, until)| *until <= now)
                            .map(|(_, until)| (until, m.seq))
                    })
                    .collect();
                due.sort();
                for (_, seq) in due {
                    if let Some(m) = self.msgs[e].get_mut(&seq) {
                        m.lock = None;
                    }
                    self.release(e, seq);
                }
            }
            let mut due: Vec<(i64, i64)> = self.msgs[e]
                .values()
                .filter(|m| !m.dlq && m.lock.is_none() && m.state != MessageState::Scheduled)
                .filter_map(|m| m.expires.filter(|exp| *exp <= now).map(|exp| (exp, m.seq)))
                .collect();
            due.sort();
            for (_, seq) in due {
                self.expire(e, seq);
            }
        }
        let window = self.dedupe_window;
        self.seen_ids.retain(|_, at| *at + window > now);
    }

    fn dead_letter_msg(&mut self, e: usize, seq: i64, reason: &str) {
        if let Some(m) = self.msgs[e].get_mut(&seq) {
            m.dlq = true;
            m.state = MessageState::Active;
            m.lock = None;
            m.reason = Some(reason.into());
        }
    }

    fn expire(&mut self, e: usize, seq: i64) {
        if self.settings[e].dl_on_expiry {
            self.dead_letter_msg(e, seq, "TTLExpiredException");
        } else {
            self.msgs[e].remove(&seq);
        }
    }

    /// The message has just lost its lock.
    fn release(&mut self, e: usize, seq: i64) {
        let Some(m) = self.msgs[e].get(&seq) else {
            return;
        };
        if !m.dlq && m.delivery_count >= self.settings[e].max_delivery {
            self.dead_letter_msg(e, seq, "MaxDeliveryCountExceeded");
        } else if !m.dlq && m.expires.is_some_and(|exp| exp <= self.now) {
            self.expire(e, seq);
        }
    }

    fn deliver(&mut self, e: usize, seq: i64, delete: bool) -> (Seen, Option<u64>) {
        let lock_ms = self.settings[e].lock_ms;
        let generation = self.next_gen;
        let now = self.now;
        let Some(m) = self.msgs[e].get_mut(&seq) else {
            unreachable!("delivering a missing message")
        };
        m.delivery_count += 1;
        let view = seen(m);
        if delete {
            self.msgs[e].remove(&seq);
            (view, None)
        } else {
            m.lock = Some((generation, now + lock_ms));
            self.next_gen += 1;
            (view, Some(generation))
        }
    }

    pub fn receive(
        &mut self,
        e: usize,
        dlq: bool,
        max: usize,
        delete: bool,
    ) -> Vec<(Seen, Option<u64>)> {
        self.tick();
        let seqs: Vec<i64> = self.msgs[e]
            .values()
            .filter(|m| m.dlq == dlq && m.state == MessageState::Active && m.lock.is_none())
            .map(|m| m.seq)
            .take(max)
            .collect();
        seqs.into_iter()
            .map(|seq| self.deliver(e, seq, delete))
            .collect()
    }

    pub fn receive_deferred(
        &mut self,
        e: usize,
        dlq: bool,
        seq: i64,
    ) -> Result<(Seen, u64), BusErrorKind> {
        self.tick();
        match self.msgs[e].get(&seq) {
            Some(m) if m.dlq == dlq && m.state == MessageState::Deferred && m.lock.is_none() => {
                let (view, generation) = self.deliver(e, seq, false);
                Ok((view, generation.unwrap_or_default()))
            }
            _ => Err(BusErrorKind::MessageNotFound),
        }
    }

    /// The message a delivery's lock generation still holds, if any.
    fn locked(
        &mut self,
        e: usize,
        dlq: bool,
        seq: i64,
        generation: u64,
    ) -> Result<i64, BusErrorKind> {
        self.tick();
        match self.msgs[e].get(&seq) {
            Some(m) if m.dlq == dlq && m.lock.is_some_and(|(g, _)| g == generation) => Ok(seq),
            _ => Err(BusErrorKind::MessageLockLost),
        }
    }

    pub fn complete(
        &mut self,
        e: usize,
        dlq: bool,
        seq: i64,
        generation: u64,
    ) -> Result<(), BusErrorKind> {
        self.locked(e, dlq, seq, generation)?;
        self.msgs[e].remove(&seq);
        Ok(())
    }

    pub fn abandon(
        &mut self,
        e: usize,
        dlq: bool,
        seq: i64,
        generation: u64,
        props: BTreeMap<String, PropertyValue>,
    ) -> Result<(), BusErrorKind> {
        self.locked(e, dlq, seq, generation)?;
        if let Some(m) = self.msgs[e].get_mut(&seq) {
            m.lock = None;
            m.props.extend(props);
        }
        self.release(e, seq);
        Ok(())
    }

    pub fn dead_letter(
        &mut self,
        e: usize,
        dlq: bool,
        seq: i64,
        generation: u64,
        props: BTreeMap<String, PropertyValue>,
    ) -> Result<(), BusErrorKind> {
        self.locked(e, dlq, seq, generation)?;
        if dlq {
            return Err(BusErrorKind::InvalidArgument);
        }
        if let Some(m) = self.msgs[e].get_mut(&seq) {
            m.props.extend(props);
        }
        self.dead_letter_msg(e, seq, "Rejected");
        Ok(())
    }

    pub fn defer(
        &mut self,
        e: usize,
        dlq: bool,
        seq: i64,
        generation: u64,
    ) -> Result<(), BusErrorKind> {
        self.locked(e, dlq, seq, generation)?;
        if let Some(m) = self.msgs[e].get_mut(&seq) {
            m.lock = None;
            m.state = MessageState::Deferred;
        }
        self.release(e, seq);
        Ok(())
    }

    pub fn renew(
        &mut self,
        e: usize,
        dlq: bool,
        seq: i64,
        generation: u64,
    ) -> Result<i64, BusErrorKind> {
        self.locked(e, dlq, seq, generation)?;
        let until = self.now + self.settings[e].lock_ms;
        if let Some(m) = self.msgs[e].get_mut(&seq) {
            m.lock = Some((generation, until));
        }
        Ok(until)
    }

    pub fn peek(&mut self, e: usize, dlq: bool) -> Vec<Seen> {
        self.tick();
        self.msgs[e]
            .values()
            .filter(|m| m.dlq == dlq)
            .map(seen)
            .collect()
    }
}
