//! Attach and detach: what a link is bound to, authorisation, refusal with an error.

use std::sync::Arc;

use fe2o3_amqp_types::definitions::{
    self, AmqpError as Condition, ErrorCondition, Handle, ReceiverSettleMode, Role,
    SenderSettleMode,
};
use fe2o3_amqp_types::messaging::TargetArchetype;
use fe2o3_amqp_types::performatives::{Attach, Detach, Performative};
use fleet_bus::{ReceiveMode, ReceiveOptions};
use tokio::sync::mpsc;

use crate::address::{self, Node};
use crate::connection::{Connection, Event};
use crate::error::{AmqpError, AmqpErrorKind};
use crate::state::{HANDLE_MAX, LINK_CREDIT, Link, LinkKind, Outgoing, PullRequest};

impl Connection {
    pub(crate) async fn on_attach(
        &mut self,
        channel: u16,
        attach: Attach,
    ) -> Result<(), AmqpError> {
        let handle = attach.handle.0;
        if handle > HANDLE_MAX {
            return Err(AmqpError::new(
                AmqpErrorKind::LimitExceeded,
                format!("link handle {handle} exceeds handle-max {HANDLE_MAX}"),
            ));
        }
        if self.session(channel)?.links.contains_key(&handle) {
            return Err(AmqpError::protocol(format!(
                "handle {handle} on channel {channel} is already attached"
            )));
        }
        // The client's role decides ours: a client sender needs a receiving link here.
        let client_sends = attach.role == Role::Sender;
        let address = if client_sends {
            match attach.target.as_deref() {
                Some(TargetArchetype::Target(t)) => t.address.clone(),
                _ => None,
            }
        } else {
            attach.source.as_ref().and_then(|s| s.address.clone())
        };
        let client_address = if client_sends {
            attach.source.as_ref().and_then(|s| s.address.clone())
        } else {
            match attach.target.as_deref() {
                Some(TargetArchetype::Target(t)) => t.address.clone(),
                _ => None,
            }
        };
        let bound = match address {
            None => Err(refusal(
                Condition::InvalidField,
                "the link has no address".to_owned(),
            )),
            Some(address) => {
                self.bind(&address, client_sends, attach.snd_settle_mode.clone())
                    .await
            }
        };
        let mut reply = Attach {
            name: attach.name.clone(),
            handle: Handle(handle),
            role: if client_sends {
                Role::Receiver
            } else {
                Role::Sender
            },
            snd_settle_mode: attach.snd_settle_mode.clone(),
            // Python completes a send only on a settled disposition: settle on accept.
            rcv_settle_mode: if client_sends {
                ReceiverSettleMode::First
            } else {
                attach.rcv_settle_mode.clone()
            },
            source: attach.source.clone(),
            target: attach.target.clone(),
            unsettled: None,
            incomplete_unsettled: false,
            initial_delivery_count: (!client_sends).then_some(0),
            max_message_size: Some(self.shared.options.max_message_size),
            offered_capabilities: None,
            desired_capabilities: None,
            properties: None,
        };
        let kind = match bound {
            Ok(kind) => kind,
            Err(error) => {
                // Refusing: attach with a null terminus on our side, then detach with the error.
                if client_sends {
                    reply.target = None;
                } else {
                    reply.source = None;
                }
                tracing::debug!(link = %attach.name, error = ?error.description, "refusing link");
                self.send(channel, Performative::Attach(reply)).await?;
                let detach = Detach {
                    handle: Handle(handle),
                    closed: true,
                    error: Some(error),
                };
                return self.send(channel, Performative::Detach(detach)).await;
            }
        };
        let id = self.next_link_id();
        let mut link = Link::new(id, attach.name.clone(), kind);
        link.client_address = client_address;
        link.snd_settle_mode = attach.snd_settle_mode.clone();
        link.rcv_settle_mode = attach.rcv_settle_mode.clone();
        if client_sends {
            link.delivery_count = attach.initial_delivery_count.unwrap_or(0);
            link.credit = LINK_CREDIT;
        }
        if let LinkKind::FromEntity(outgoing) = &mut link.kind {
            outgoing.pull = spawn_puller(
                outgoing.receiver.clone(),
                channel,
                handle,
                id,
                self.events.clone(),
            );
        }
        self.session(channel)?.links.insert(handle, link);
        self.send(channel, Performative::Attach(reply)).await?;
        if client_sends {
            self.send_flow(channel, Some(handle)).await?;
        }
        Ok(())
    }

    /// Resolves an address to a link kind, checking authorisation and the entity's existence.
    async fn bind(
        &mut self,
        address: &str,
        client_sends: bool,
        snd_settle_mode: SenderSettleMode,
    ) -> Result<LinkKind, definitions::Error> {
        let node = address::parse(address).map_err(|why| refusal(Condition::NotFound, why))?;
        if !matches!(node, Node::Cbs) && !self.is_authorized(address) {
            return Err(refusal(
                Condition::UnauthorizedAccess,
                format!(
                    "no valid token was put for \"{}\"",
                    address::normalise(address)
                ),
            ));
        }
        let bus = self.shared.bus.clone();
        let not_found = |err: fleet_bus::BusError| match err.kind() {
            fleet_bus::BusErrorKind::EntityNotFound => refusal(
                Condition::NotFound,
                format!("entity \"{}\" does not exist", address::normalise(address)),
            ),
            _ => refusal(Condition::InternalError, err.to_string()),
        };
        Ok(match (node, client_sends) {
            (Node::Cbs, true) => LinkKind::ToCbs,
            (Node::Cbs, false) => LinkKind::FromCbs,
            (Node::Management(entity), true) => {
                self.check_entity(&entity).await.map_err(not_found)?;
                LinkKind::ToManagement(entity)
            }
            (Node::Management(entity), false) => {
                self.check_entity(&entity).await.map_err(not_found)?;
                LinkKind::FromManagement(entity)
            }
            (Node::Entity(entity), true) => {
                if entity.is_dead_letter() {
                    return Err(refusal(
                        Condition::NotAllowed,
                        format!("cannot send to the dead-letter subqueue \"{entity}\""),
                    ));
                }
                let sender = bus.sender(&entity.to_string()).await.map_err(not_found)?;
                LinkKind::ToEntity(Arc::from(sender))
            }
            (Node::Entity(entity), false) => {
                let mode = if snd_settle_mode == SenderSettleMode::Settled {
                    ReceiveMode::ReceiveAndDelete
                } else {
                    ReceiveMode::PeekLock
                };
                let options = ReceiveOptions {
                    mode,
                    ..ReceiveOptions::default()
                };
                let receiver = bus.receiver(&entity, options).await.map_err(not_found)?;
                let (pull, _) = mpsc::channel(1);
                LinkKind::FromEntity(Outgoing {
                    receiver: Arc::from(receiver),
                    mode,
                    pull,
                    pulling: false,
                })
            }
        })
    }

    /// Whether a token covering `address` was put on this connection (always, without keys).
    pub(crate) fn is_authorized(&self, address: &str) -> bool {
        if self.shared.options.keys.is_empty() {
            return true;
        }
        let target = address::key(address);
        self.authorized.iter().any(|scope| {
            scope.is_empty() || target == *scope || target.starts_with(&format!("{scope}/"))
        })
    }

    pub(crate) async fn on_detach(
        &mut self,
        channel: u16,
        detach: Detach,
    ) -> Result<(), AmqpError> {
        let handle = detach.handle.0;
        let Some(link) = self.session(channel)?.links.remove(&handle) else {
            // We detached first (refused attach, backend failure): this detach is the client's
            // answer. Answering it again would name a handle the client already forgot, and
            // fe2o3 ends the whole session over that (unattached-handle).
            return Ok(());
        };
        crate::deliver::release_link(link);
        let reply = Detach {
            handle: Handle(handle),
            closed: detach.closed,
            error: None,
        };
        self.send(channel, Performative::Detach(reply)).await
    }
}

/// An error for a refused attach.
pub(crate) fn refusal(
    condition: impl Into<ErrorCondition>,
    description: String,
) -> definitions::Error {
    definitions::Error::new(condition, Some(description), None)
}

/// Starts the task that pulls messages from the backend for one receiving link. It ends when
/// the link (holding the request sender) goes away.
fn spawn_puller(
    receiver: Arc<dyn fleet_bus::BusReceiver>,
    channel: u16,
    handle: u32,
    link_id: u64,
    events: mpsc::Sender<Event>,
) -> mpsc::Sender<PullRequest> {
    let (tx, mut rx) = mpsc::channel::<PullRequest>(1);
    tokio::spawn(async move {
        let mut next = rx.recv().await;
        while let Some(request) = next.take() {
            // A pull waits up to a second for messages. If the link goes away meanwhile (its
            // request sender is dropped), stop waiting: a pull finishing after the detach would
            // take a message nobody can be given (receive-and-delete) or lock one and bump its
            // delivery count when it is handed back (peek-lock). Only the engine's commit of a
            // take is not interruptible this way, a window of a few milliseconds.
            //
            // The link's end is looked at first: when it and newly sent messages wake the pull
            // together (a receiver closed just before the next send), polling the pull first
            // would take and lock those messages, and dropping it mid-commit would leave them
            // locked for a whole lock duration.
            let result = tokio::select! {
                biased;
                more = rx.recv() => match more {
                    None => break,
                    Some(replacement) => {
                        next = Some(replacement);
                        continue;
                    }
                },
                result = receiver.receive(request.max, request.wait) => result,
            };
            let event = Event::Pulled {
                channel,
                handle,
                link_id,
                receiver: receiver.clone(),
                result,
            };
            if let Err(tokio::sync::mpsc::error::SendError(event)) = events.send(event).await {
                // The connection is gone: give back what this pull locked.
                let Event::Pulled {
                    receiver, result, ..
                } = event;
                if let Ok(messages) = result {
                    crate::deliver::release_messages(receiver, messages);
                }
                break;
            }
            next = rx.recv().await;
        }
    });
    tx
}
