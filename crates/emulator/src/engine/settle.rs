//! Receiving and settling: the peek-lock life cycle of a message.

use std::collections::BTreeMap;

use fleet_bus::{
    BusError, BusErrorKind, DeadLetterOptions, PropertyValue, ReceiveMode, ReceivedMessage,
};
use uuid::Uuid;

use super::queue::{Content, Msg, STATE_DEFERRED};
use super::state::{Ctx, State, millis};
use crate::store::Write;

impl State {
    /// Takes up to `max` available messages, locking them (peek-lock) or removing them.
    pub(crate) fn receive(
        &mut self,
        idx: usize,
        dlq: bool,
        mode: ReceiveMode,
        max: usize,
        ctx: &mut Ctx,
    ) -> Vec<ReceivedMessage> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some(seq) = self.queue(idx, dlq).available.pop_first() else {
                break;
            };
            if let Some(msg) = self.queue(idx, dlq).remove(seq) {
                out.push(self.deliver(idx, dlq, mode, msg, ctx));
            }
        }
        out
    }

    fn deliver(
        &mut self,
        idx: usize,
        dlq: bool,
        mode: ReceiveMode,
        mut msg: Msg,
        ctx: &mut Ctx,
    ) -> ReceivedMessage {
        msg.meta.delivery_count += 1;
        let entity = &mut self.entities[idx];
        match mode {
            ReceiveMode::PeekLock => {
                let until = ctx
                    .now
                    .saturating_add(millis(entity.settings.lock_duration));
                msg.meta.lock = Some((lock_token(), until));
                let received = msg.received(true);
                ctx.writes.push(msg.update(entity.id));
                self.queue(idx, dlq).insert(msg);
                self.deadline(until);
                received
            }
            ReceiveMode::ReceiveAndDelete => {
                entity.bytes -= msg.size;
                ctx.writes.push(Write::Delete {
                    entity: entity.id,
                    seq: msg.seq,
                });
                msg.received(false)
            }
        }
    }

    /// The message `token` locks, removed from its queue for the caller to settle; lock lost
    /// (and nothing changed) when the token is unknown here, expired or already used.
    fn take_locked(&mut self, idx: usize, dlq: bool, token: Option<Uuid>) -> Result<Msg, BusError> {
        let path = self.entities[idx].path.clone();
        let lost = || {
            let token = token.map_or_else(|| "(none)".to_owned(), |t| t.to_string());
            let queue = if dlq {
                format!("{path}/$DeadLetterQueue")
            } else {
                path.clone()
            };
            BusError::lock_lost(format!(
                "lock token {token} is not a current lock in \"{queue}\" (expired, settled, or never issued here)"
            ))
        };
        let token = token.ok_or_else(lost)?;
        let seq = *self.queue(idx, dlq).locks.get(&token).ok_or_else(lost)?;
        self.queue(idx, dlq).remove(seq).ok_or_else(lost)
    }

    /// Removes a locked message for good.
    pub(crate) fn complete(
        &mut self,
        idx: usize,
        dlq: bool,
        token: Option<Uuid>,
        ctx: &mut Ctx,
    ) -> Result<(), BusError> {
        let msg = self.take_locked(idx, dlq, token)?;
        let entity = &mut self.entities[idx];
        entity.bytes -= msg.size;
        ctx.writes.push(Write::Delete {
            entity: entity.id,
            seq: msg.seq,
        });
        Ok(())
    }

    /// Releases a lock after merging `props` into the application properties.
    pub(crate) fn abandon(
        &mut self,
        idx: usize,
        dlq: bool,
        token: Option<Uuid>,
        props: BTreeMap<String, PropertyValue>,
        ctx: &mut Ctx,
    ) -> Result<(), BusError> {
        let mut msg = self.take_locked(idx, dlq, token)?;
        msg.meta.lock = None;
        let changed = self.modify(idx, &mut msg, props);
        self.release(idx, dlq, msg, changed, ctx);
        Ok(())
    }

    /// Moves a locked message to the dead-letter subqueue.
    pub(crate) fn dead_letter(
        &mut self,
        idx: usize,
        dlq: bool,
        token: Option<Uuid>,
        opts: DeadLetterOptions,
        ctx: &mut Ctx,
    ) -> Result<(), BusError> {
        if dlq {
            // Check before taking the message so the refusal changes nothing.
            self.take_locked(idx, dlq, token)
                .map(|msg| self.queue(idx, dlq).insert(msg))?;
            return Err(BusError::invalid(format!(
                "a message in \"{}/$DeadLetterQueue\" cannot be dead-lettered again",
                self.entities[idx].path
            )));
        }
        let mut msg = self.take_locked(idx, dlq, token)?;
        let changed = self.modify(idx, &mut msg, opts.properties_to_modify);
        self.move_to_dead_letter(idx, msg, &opts.reason, &opts.description, changed, ctx);
        Ok(())
    }

    /// Sets a locked message aside until `receive_deferred`.
    pub(crate) fn defer(
        &mut self,
        idx: usize,
        dlq: bool,
        token: Option<Uuid>,
        ctx: &mut Ctx,
    ) -> Result<(), BusError> {
        let mut msg = self.take_locked(idx, dlq, token)?;
        msg.meta.lock = None;
        msg.meta.state = STATE_DEFERRED;
        self.release(idx, dlq, msg, false, ctx);
        Ok(())
    }

    /// Delivers deferred messages by sequence number; all or nothing.
    pub(crate) fn receive_deferred(
        &mut self,
        idx: usize,
        dlq: bool,
        mode: ReceiveMode,
        seqs: &[i64],
        ctx: &mut Ctx,
    ) -> Result<Vec<ReceivedMessage>, BusError> {
        let path = self.entities[idx].path.clone();
        let queue = self.queue(idx, dlq);
        if let Some(seq) = seqs.iter().find(|s| {
            queue
                .msgs
                .get(s)
                .is_none_or(|m| m.meta.state != STATE_DEFERRED || m.meta.lock.is_some())
        }) {
            return Err(BusError::new(
                BusErrorKind::MessageNotFound,
                format!("no deferred, unlocked message with sequence number {seq} in \"{path}\""),
            ));
        }
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(msg) = self.queue(idx, dlq).remove(*seq) {
                out.push(self.deliver(idx, dlq, mode, msg, ctx));
            }
        }
        Ok(out)
    }

    /// Extends a lock by the lock duration from now.
    pub(crate) fn renew_lock(
        &mut self,
        idx: usize,
        dlq: bool,
        token: Option<Uuid>,
        ctx: &mut Ctx,
    ) -> Result<i64, BusError> {
        let mut msg = self.take_locked(idx, dlq, token)?;
        let entity = &self.entities[idx];
        let until = ctx
            .now
            .saturating_add(millis(entity.settings.lock_duration));
        if let Some((token, _)) = msg.meta.lock {
            msg.meta.lock = Some((token, until));
        }
        ctx.writes.push(msg.update(entity.id));
        self.queue(idx, dlq).insert(msg);
        self.deadline(until);
        Ok(until)
    }

    /// Merges `props` into the message's application properties (keeping the entity's byte
    /// count right); true when anything changed.
    fn modify(
        &mut self,
        idx: usize,
        msg: &mut Msg,
        props: BTreeMap<String, PropertyValue>,
    ) -> bool {
        if props.is_empty() {
            return false;
        }
        let mut message = msg.content.message.clone();
        message.application_properties.extend(props);
        let entity = &mut self.entities[idx];
        entity.bytes = entity.bytes - msg.size + message.size() as u64;
        msg.size = message.size() as u64;
        msg.content = Content::new(message);
        true
    }

    /// Up to `max` messages from sequence number `from` on, unlocked views.
    pub(crate) fn peek(
        &mut self,
        idx: usize,
        dlq: bool,
        from: i64,
        max: usize,
    ) -> Vec<ReceivedMessage> {
        self.queue(idx, dlq)
            .msgs
            .range(from..)
            .take(max)
            .map(|(_, m)| m.received(false))
            .collect()
    }
}

/// A random (v4) lock token from the thread's fast generator: `Uuid::new_v4` asks the kernel for
/// every token, a system call per delivery on the hot path.
fn lock_token() -> Uuid {
    uuid::Builder::from_random_bytes(rand::random()).into_uuid()
}
