//! Deliveries from clients: reassembly of multi-frame transfers, link credit, then the
//! delivery's destination — an entity (send), `$cbs` (put-token) or `$management`.

use bytes::Bytes;
use fe2o3_amqp_types::definitions::{
    self, AmqpError as Condition, ErrorCondition, ReceiverSettleMode, Role,
};
use fe2o3_amqp_types::messaging::{Accepted, DeliveryState, Rejected};
use fe2o3_amqp_types::performatives::{Disposition, Performative, Transfer};
use fe2o3_amqp_types::primitives::Symbol;

use crate::connection::Connection;
use crate::convert;
use crate::error::AmqpError;
use crate::settle::bus_condition;
use crate::state::{LINK_CREDIT, LinkKind, Partial, Pending};

/// Most replies waiting for credit on one link.
const MAX_PENDING_REPLIES: usize = 1_000;

impl Connection {
    pub(crate) async fn on_transfer(
        &mut self,
        channel: u16,
        transfer: Transfer,
        payload: Bytes,
    ) -> Result<(), AmqpError> {
        self.count_incoming_frame(channel).await?;
        let handle = transfer.handle.0;
        let max_message = self.shared.options.max_message_size;
        let session = self.session(channel)?;
        let Some(link) = session.links.get_mut(&handle) else {
            return Err(AmqpError::protocol(format!(
                "transfer on unknown handle {handle} (channel {channel})"
            )));
        };
        if link.is_sending() {
            return Err(AmqpError::protocol(format!(
                "transfer from the client on our sending link \"{}\"",
                link.name
            )));
        }
        if transfer.aborted {
            link.partial = None;
            return Ok(());
        }
        let partial = match link.partial.take() {
            Some(partial) => partial,
            None => {
                let delivery_id = transfer.delivery_id.ok_or_else(|| {
                    AmqpError::protocol("the first transfer of a delivery has no delivery-id")
                })?;
                link.delivery_count = link.delivery_count.wrapping_add(1);
                link.credit = link.credit.saturating_sub(1);
                Partial {
                    delivery_id,
                    message_format: transfer.message_format.unwrap_or(0),
                    settled: transfer.settled.unwrap_or(false),
                    payload: Vec::new(),
                    oversize: false,
                }
            }
        };
        let mut partial = partial;
        if transfer.settled == Some(true) {
            partial.settled = true;
        }
        if partial.payload.len() + payload.len() > max_message as usize {
            partial.oversize = true;
            partial.payload = Vec::new();
        } else if !partial.oversize {
            partial.payload.extend_from_slice(&payload);
        }
        if transfer.more {
            link.partial = Some(partial);
            return Ok(());
        }
        let top_up = link.credit < LINK_CREDIT / 2;
        if top_up {
            link.credit = LINK_CREDIT;
        }
        self.on_delivery(channel, handle, partial).await?;
        if top_up {
            self.send_flow(channel, Some(handle)).await?;
        }
        Ok(())
    }

    async fn on_delivery(
        &mut self,
        channel: u16,
        handle: u32,
        delivery: Partial,
    ) -> Result<(), AmqpError> {
        let Some(link) = self.session(channel)?.links.get(&handle) else {
            return Ok(());
        };
        let state = if delivery.oversize {
            rejected(
                ErrorCondition::Custom(Symbol::from("com.microsoft:message-size-exceeded")),
                format!(
                    "the message exceeds the maximum size of {} bytes",
                    self.shared.options.max_message_size
                ),
            )
        } else {
            match &link.kind {
                LinkKind::ToEntity(sender) => {
                    let sender = sender.clone();
                    match convert::bus_messages(delivery.message_format, &delivery.payload) {
                        Err(why) => rejected(Condition::DecodeError, why),
                        Ok(mut messages) => {
                            tracing::trace!(count = messages.len(), "sending to the backend");
                            let result = if messages.len() == 1 {
                                sender.send(messages.remove(0)).await
                            } else {
                                sender.send_batch(messages).await
                            };
                            match result {
                                Ok(()) => DeliveryState::Accepted(Accepted {}),
                                Err(err) => rejected(bus_condition(err.kind()), err.to_string()),
                            }
                        }
                    }
                }
                LinkKind::ToCbs => {
                    let reply = self.put_token(&delivery.payload);
                    self.route_reply(channel, None, reply).await?;
                    DeliveryState::Accepted(Accepted {})
                }
                LinkKind::ToManagement(entity) => {
                    let entity = entity.clone();
                    let reply = self.management(&entity, &delivery.payload).await;
                    self.route_reply(channel, Some(entity), reply).await?;
                    DeliveryState::Accepted(Accepted {})
                }
                _ => return Ok(()),
            }
        };
        if !delivery.settled {
            self.settle_incoming(channel, handle, delivery.delivery_id, state)
                .await?;
        }
        Ok(())
    }

    /// Answers an unsettled incoming delivery.
    ///
    /// Python asks for rcv-settle-mode `second` but completes a send only on a *settled*
    /// disposition: it gets one at once. The Rust client (fe2o3-amqp 0.14, rcv mode `first`)
    /// registers a sent delivery as unsettled only after handing the transfer to its session
    /// task; on a multi-threaded runtime an instant loopback answer can arrive first and be
    /// dropped, leaving the send hanging until its timeout (then retried: a duplicate). So it
    /// first gets the outcome *unsettled* — which completes the send when the delivery is
    /// registered, and keeps the client's delivery-id mapping alive when it is not — and the
    /// settled disposition `settle_delay` later, which completes a send that lost the race.
    async fn settle_incoming(
        &mut self,
        channel: u16,
        handle: u32,
        delivery_id: u32,
        state: DeliveryState,
    ) -> Result<(), AmqpError> {
        let two_step = self
            .session(channel)?
            .links
            .get(&handle)
            .is_some_and(|l| l.rcv_settle_mode == ReceiverSettleMode::First);
        let disposition = Disposition {
            role: Role::Receiver,
            first: delivery_id,
            last: None,
            settled: !two_step,
            state: Some(state.clone()),
            batchable: false,
        };
        self.send(channel, Performative::Disposition(disposition))
            .await?;
        if two_step {
            let due = tokio::time::Instant::now() + self.shared.options.settle_delay;
            self.settlements
                .push_back((due, channel, delivery_id, state));
        }
        Ok(())
    }

    /// Sends the delayed settled dispositions that are due.
    pub(crate) async fn flush_settlements(&mut self) -> Result<(), AmqpError> {
        let now = tokio::time::Instant::now();
        let mut due = Vec::new();
        while let Some((at, ..)) = self.settlements.front() {
            if *at > now {
                break;
            }
            if let Some((_, channel, id, state)) = self.settlements.pop_front() {
                due.push((channel, id, state));
            }
        }
        self.send_settled(Role::Receiver, due).await
    }

    /// Queues a reply on the client's receiving link: the one whose address is the request's
    /// reply-to, else (Python's CBS sends none) the link attached to the same node.
    async fn route_reply(
        &mut self,
        channel: u16,
        management: Option<fleet_bus::EntityPath>,
        reply: Option<(Option<String>, Vec<u8>)>,
    ) -> Result<(), AmqpError> {
        let Some((reply_to, bytes)) = reply else {
            return Ok(());
        };
        // Reply addresses are opaque link names (e.g. `amqp://host-id;0:0:3`): compare them
        // exactly, never normalised.
        let wanted = reply_to.clone();
        let matches_node = |kind: &LinkKind| match (kind, &management) {
            (LinkKind::FromCbs, None) => true,
            (LinkKind::FromManagement(e), Some(m)) => e == m,
            _ => false,
        };
        // Prefer the reply-to address, then the same node on the same session, then anywhere.
        let mut choice: Option<(u16, u32)> = None;
        if let Some(wanted) = &wanted {
            choice = self.sessions.iter().find_map(|(ch, s)| {
                s.links.iter().find_map(|(h, l)| {
                    (l.is_sending() && l.client_address.as_ref() == Some(wanted))
                        .then_some((*ch, *h))
                })
            });
        }
        if choice.is_none() {
            let mut channels: Vec<u16> = vec![channel];
            channels.extend(self.sessions.keys().copied().filter(|c| *c != channel));
            choice = channels.iter().find_map(|ch| {
                self.sessions.get(ch).and_then(|s| {
                    s.links
                        .iter()
                        .find_map(|(h, l)| matches_node(&l.kind).then_some((*ch, *h)))
                })
            });
        }
        let Some((reply_channel, handle)) = choice else {
            tracing::debug!(?reply_to, "no link to route a reply to; dropping it");
            return Ok(());
        };
        tracing::trace!(?reply_to, reply_channel, handle, "routing a reply");
        if let Some(link) = self.session(reply_channel)?.links.get_mut(&handle) {
            // A client that never grants reply credit must not grow the queue forever.
            if link.pending.len() >= MAX_PENDING_REPLIES {
                tracing::warn!(link = %link.name, "reply queue full; dropping a reply");
                return Ok(());
            }
            link.pending.push_back(Pending::Reply(bytes));
        }
        self.pump(reply_channel, handle).await
    }
}

fn rejected(condition: impl Into<ErrorCondition>, description: String) -> DeliveryState {
    DeliveryState::Rejected(Rejected {
        error: Some(definitions::Error::new(condition, Some(description), None)),
    })
}
