//! Deliveries to clients: credit, pulls from the backend, and transfers split at the peer's
//! max-frame-size. Settlement is in `settle`.

use std::time::Duration;

use fe2o3_amqp_types::definitions::{self, Handle, SenderSettleMode};
use fe2o3_amqp_types::performatives::{Performative, Transfer};
use fleet_bus::ReceiveMode;
use serde_bytes::ByteBuf;
use uuid::Uuid;

use crate::connection::{Connection, Event};
use crate::convert::{self, Purpose};
use crate::error::AmqpError;
use crate::frame::{self, HEADER_LEN};
use crate::locks::Lock;
use crate::settle::bus_condition;
use crate::state::{Link, LinkKind, MAX_PULL, Pending, PullRequest};

/// How long one backend receive waits; also bounds how late a drain is answered.
const PULL_WAIT: Duration = Duration::from_secs(1);

impl Connection {
    pub(crate) async fn on_event(
        &mut self,
        event: Event,
    ) -> Result<crate::connection::Next, AmqpError> {
        let Event::Pulled {
            channel,
            handle,
            link_id,
            receiver,
            result,
        } = event;
        let link = self
            .sessions
            .get_mut(&channel)
            .and_then(|s| s.links.get_mut(&handle))
            .filter(|l| l.id == link_id);
        let Some(link) = link else {
            // The link went away while its pull ran: give the messages back.
            if let Ok(messages) = result {
                release_messages(receiver, messages);
            }
            return Ok(crate::connection::Next::Continue);
        };
        if let LinkKind::FromEntity(outgoing) = &mut link.kind {
            outgoing.pulling = false;
        }
        match result {
            Ok(messages) if messages.is_empty() && link.drain && link.pending.is_empty() => {
                // Nothing available: a drain uses up the remaining credit.
                link.delivery_count = link.delivery_count.wrapping_add(link.credit);
                link.credit = 0;
                self.send_flow(channel, Some(handle)).await?;
                if let Some(link) = self.session(channel)?.links.get_mut(&handle) {
                    link.drain = false;
                }
            }
            Ok(messages) => {
                link.pending
                    .extend(messages.into_iter().map(|m| Pending::Message(Box::new(m))));
            }
            Err(err) => {
                tracing::warn!(error = %err, link = %link.name, "backend receive failed");
                let detach = fe2o3_amqp_types::performatives::Detach {
                    handle: Handle(handle),
                    closed: true,
                    error: Some(definitions::Error::new(
                        bus_condition(err.kind()),
                        Some(err.to_string()),
                        None,
                    )),
                };
                if let Some(link) = self.session(channel)?.links.remove(&handle) {
                    release_link(link);
                }
                self.send(channel, Performative::Detach(detach)).await?;
                return Ok(crate::connection::Next::Continue);
            }
        }
        self.pump(channel, handle).await?;
        Ok(crate::connection::Next::Continue)
    }

    /// Sends what credit and window allow on a sending link, then asks for more if needed.
    pub(crate) async fn pump(&mut self, channel: u16, handle: u32) -> Result<(), AmqpError> {
        loop {
            let session = self.session(channel)?;
            let room = session.outgoing_room();
            let Some(link) = session.links.get_mut(&handle) else {
                return Ok(());
            };
            if !link.is_sending() || link.credit == 0 || room == 0 {
                if !link.pending.is_empty() {
                    tracing::trace!(link = %link.name, credit = link.credit, room, pending = link.pending.len(), "delivery held");
                }
                break;
            }
            let Some(next) = link.pending.pop_front() else {
                break;
            };
            self.deliver(channel, handle, next).await?;
        }
        self.request_pull(channel, handle).await
    }

    async fn request_pull(&mut self, channel: u16, handle: u32) -> Result<(), AmqpError> {
        let Some(link) = self.session(channel)?.links.get_mut(&handle) else {
            return Ok(());
        };
        let wanted = (link.credit as usize).saturating_sub(link.pending.len());
        let drain = link.drain;
        let LinkKind::FromEntity(outgoing) = &mut link.kind else {
            // Reply links have nothing to pull; a drain ends at once.
            if drain && link.pending.is_empty() && link.credit > 0 {
                link.delivery_count = link.delivery_count.wrapping_add(link.credit);
                link.credit = 0;
                link.drain = false;
                self.send_flow(channel, Some(handle)).await?;
            }
            return Ok(());
        };
        if wanted == 0 || outgoing.pulling {
            return Ok(());
        }
        let request = PullRequest {
            max: wanted.min(MAX_PULL),
            wait: if drain { Duration::ZERO } else { PULL_WAIT },
        };
        if outgoing.pull.try_send(request).is_ok() {
            outgoing.pulling = true;
        }
        Ok(())
    }

    /// Sends one delivery as one or more transfer frames.
    async fn deliver(&mut self, channel: u16, handle: u32, item: Pending) -> Result<(), AmqpError> {
        let id = self.id;
        let session = self.session(channel)?;
        let delivery_id = session.next_delivery_id;
        let Some(link) = session.links.get_mut(&handle) else {
            return Ok(());
        };
        let (payload, tag, settled, lock) = match item {
            Pending::Reply(bytes) => {
                let settled = link.snd_settle_mode != SenderSettleMode::Unsettled;
                (bytes, Uuid::new_v4(), settled, None)
            }
            Pending::Message(message) => {
                let payload = match convert::encode_received(&message, Purpose::Delivery) {
                    Ok(bytes) => bytes,
                    Err(why) => {
                        tracing::error!(%why, seq = message.sequence_number, "cannot encode a message");
                        return Ok(());
                    }
                };
                let LinkKind::FromEntity(outgoing) = &link.kind else {
                    return Ok(());
                };
                let peek_lock = outgoing.mode == ReceiveMode::PeekLock;
                match (peek_lock, message.lock_token) {
                    (true, Some(token)) => {
                        let lock = Lock {
                            receiver: outgoing.receiver.clone(),
                            message: *message,
                            connection: id,
                        };
                        (payload, token, false, Some((token, lock)))
                    }
                    _ => (payload, Uuid::new_v4(), true, None),
                }
            }
        };
        link.delivery_count = link.delivery_count.wrapping_add(1);
        link.credit = link.credit.saturating_sub(1);
        session.next_delivery_id = session.next_delivery_id.wrapping_add(1);
        if let Some((token, lock)) = lock {
            session.unsettled.insert(delivery_id, token);
            self.shared.locks.insert(token, lock);
        }
        let transfer = Transfer {
            handle: Handle(handle),
            delivery_id: Some(delivery_id),
            // .NET GUID byte order: Python derives the lock token as UUID(bytes_le=tag).
            delivery_tag: Some(ByteBuf::from(tag.to_bytes_le().to_vec())),
            message_format: Some(0),
            settled: Some(settled),
            more: false,
            rcv_settle_mode: None,
            state: None,
            resume: false,
            aborted: false,
            batchable: false,
        };
        self.send_transfer(channel, transfer, &payload).await
    }

    /// Writes a delivery, split into frames no larger than the peer's max-frame-size.
    async fn send_transfer(
        &mut self,
        channel: u16,
        mut transfer: Transfer,
        payload: &[u8],
    ) -> Result<(), AmqpError> {
        let max = self.remote_max_frame as usize;
        tracing::trace!(channel, ?transfer, len = payload.len(), "transfer out");
        transfer.more = true;
        let perf_len = frame::to_amqp(&Performative::Transfer(transfer.clone()), "transfer")?.len();
        let room = max.saturating_sub(HEADER_LEN + perf_len).max(1);
        let mut chunks = payload.chunks(room).peekable();
        if payload.is_empty() {
            transfer.more = false;
            let perf = frame::to_amqp(&Performative::Transfer(transfer), "transfer")?;
            self.count_outgoing_frame(channel)?;
            return self.send_with_payload(channel, &perf, &[]).await;
        }
        while let Some(chunk) = chunks.next() {
            transfer.more = chunks.peek().is_some();
            let perf = frame::to_amqp(&Performative::Transfer(transfer.clone()), "transfer")?;
            self.count_outgoing_frame(channel)?;
            self.send_with_payload(channel, &perf, chunk).await?;
        }
        Ok(())
    }

    fn count_outgoing_frame(&mut self, channel: u16) -> Result<(), AmqpError> {
        let session = self.session(channel)?;
        session.next_outgoing_id = session.next_outgoing_id.wrapping_add(1);
        Ok(())
    }
}

/// Gives back what a closed link held: undelivered peek-lock messages are abandoned and its
/// backend receiver is closed. Receive-and-delete messages already left the entity.
pub(crate) fn release_link(link: Link) {
    let Link { kind, pending, .. } = link;
    if let LinkKind::FromEntity(outgoing) = kind {
        let messages: Vec<_> = pending
            .into_iter()
            .filter_map(|p| match p {
                Pending::Message(m) => Some(*m),
                Pending::Reply(_) => None,
            })
            .collect();
        let receiver = outgoing.receiver;
        let peek_lock = outgoing.mode == ReceiveMode::PeekLock;
        tokio::spawn(async move {
            if peek_lock {
                for message in &messages {
                    let _ = receiver.abandon(message, Default::default()).await;
                }
            }
            let _ = receiver.close().await;
        });
    }
}

/// Abandons peek-lock messages that were pulled but never delivered.
pub(crate) fn release_messages(
    receiver: std::sync::Arc<dyn fleet_bus::BusReceiver>,
    messages: Vec<fleet_bus::ReceivedMessage>,
) {
    tokio::spawn(async move {
        for message in &messages {
            if message.lock_token.is_some() {
                let _ = receiver.abandon(message, Default::default()).await;
            }
        }
    });
}
