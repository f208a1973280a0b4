//! Settlement of peek-lock deliveries: the client's dispositions (and `update-disposition`)
//! become complete / abandon / dead-letter / defer on the receiver that issued the lock, and the
//! client gets the settling disposition Service Bus sends.
//!
//! Completes are coalesced. A client settles one delivery per disposition frame, and one engine
//! settle per frame costs a storage commit each, which is what bounded a connection's throughput.
//! So a complete is only recorded ([`Completion`]) while the frames of one read are processed,
//! and the recorded ones are settled together — one `complete_many` per backend receiver — before
//! any frame that could observe them (everything but dispositions and flows) and at the end of
//! the read. Each delivery still gets its own outcome: a lost lock fails that delivery alone.

use std::sync::Arc;

use fe2o3_amqp_types::definitions::{self, AmqpError as Condition, ErrorCondition, Role};
use fe2o3_amqp_types::messaging::{Accepted, DeliveryState, Modified, Rejected};
use fe2o3_amqp_types::performatives::Disposition;
use fe2o3_amqp_types::primitives::{Symbol, Value};
use fleet_bus::{BusErrorKind, BusReceiver, DeadLetterOptions, ReceivedMessage};
use uuid::Uuid;

use crate::connection::Connection;
use crate::convert;
use crate::error::AmqpError;
use crate::locks::Lock;

/// What a client asks for when it settles a delivery, in port terms.
#[derive(Debug, Clone)]
pub(crate) enum Settlement {
    Complete,
    Abandon(std::collections::BTreeMap<String, fleet_bus::PropertyValue>),
    DeadLetter(DeadLetterOptions),
    Defer,
}

/// A complete a client asked for that waits for the rest of its read to be settled with it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    channel: u16,
    delivery_id: u32,
    token: Uuid,
    /// The client left the delivery unsettled and waits for our settling disposition.
    reply: bool,
}

/// Locks of one backend receiver, completed in one call.
struct Group {
    receiver: Arc<dyn BusReceiver>,
    /// Per message: its index among the tokens asked for, its token and connection.
    entries: Vec<(usize, Uuid, u64)>,
    messages: Vec<ReceivedMessage>,
}

impl Connection {
    /// A client settled (or asked to settle) deliveries we sent. Completes are recorded for
    /// [`settle_completions`](Self::settle_completions); any other outcome first settles what
    /// was recorded, so settlements reach the backend in the order the client sent them.
    pub(crate) async fn on_disposition(
        &mut self,
        channel: u16,
        disposition: Disposition,
    ) -> Result<(), AmqpError> {
        if disposition.role != Role::Receiver {
            // The client settling our incoming deliveries: we settle on accept, nothing to do.
            return Ok(());
        }
        let first = disposition.first;
        let last = disposition.last.unwrap_or(first);
        let span = last.wrapping_sub(first);
        let session = self.session(channel)?;
        let mut ids: Vec<u32> = session
            .unsettled
            .keys()
            .copied()
            .filter(|id| id.wrapping_sub(first) <= span)
            .collect();
        ids.sort_by_key(|id| id.wrapping_sub(first));
        for delivery_id in ids {
            let Some(token) = self.session(channel)?.unsettled.remove(&delivery_id) else {
                continue;
            };
            let Some(state) = disposition.state.as_ref() else {
                continue;
            };
            let Some(settlement) = settlement_of(state) else {
                continue;
            };
            if matches!(settlement, Settlement::Complete) {
                self.completions.push(Completion {
                    channel,
                    delivery_id,
                    token,
                    reply: !disposition.settled,
                });
                continue;
            }
            self.settle_completions().await?;
            let outcome = outcome_of(state, token, self.settle(token, settlement).await);
            if !disposition.settled {
                self.send_settled(Role::Sender, vec![(channel, delivery_id, outcome)])
                    .await?;
            }
        }
        Ok(())
    }

    /// Settles the recorded completes, one `complete_many` per backend receiver, and sends the
    /// settling dispositions owed for them.
    pub(crate) async fn settle_completions(&mut self) -> Result<(), AmqpError> {
        if self.completions.is_empty() {
            return Ok(());
        }
        let completions = std::mem::take(&mut self.completions);
        let tokens: Vec<Uuid> = completions.iter().map(|c| c.token).collect();
        let results = self.complete_tokens(&tokens).await;
        let accepted = DeliveryState::Accepted(Accepted {});
        let mut replies: Vec<_> = completions
            .iter()
            .zip(results)
            .filter(|(c, _)| c.reply)
            .map(|(c, result)| {
                let outcome = outcome_of(&accepted, c.token, result);
                (c.channel, c.delivery_id, outcome)
            })
            .collect();
        // In id order, so the accepted ones go out as ranges.
        replies.sort_by_key(|(channel, id, _)| (*channel, *id));
        self.send_settled(Role::Sender, replies).await
    }

    /// Completes lock tokens, one result per token in order. Tokens of one backend receiver go
    /// in one `complete_many`; a token already settled succeeds, an unknown one has lost its
    /// lock, and a failure that leaves the lock valid puts it back for another try.
    async fn complete_tokens(&self, tokens: &[Uuid]) -> Vec<Result<(), BusErrorKind>> {
        let locks = &self.shared.locks;
        let mut results = vec![Ok(()); tokens.len()];
        let mut groups: Vec<Group> = Vec::new();
        for (index, token) in tokens.iter().enumerate() {
            let Some(lock) = locks.take(token) else {
                if !locks.was_settled(token) {
                    results[index] = Err(BusErrorKind::MessageLockLost);
                }
                continue;
            };
            let Lock {
                receiver,
                message,
                connection,
            } = lock;
            // Same receiver object, whatever its vtable pointer: compare the data pointers.
            let same = |g: &Group| {
                std::ptr::eq(
                    Arc::as_ptr(&g.receiver).cast::<()>(),
                    Arc::as_ptr(&receiver).cast::<()>(),
                )
            };
            let at = groups.iter().position(same).unwrap_or_else(|| {
                groups.push(Group {
                    receiver,
                    entries: Vec::new(),
                    messages: Vec::new(),
                });
                groups.len() - 1
            });
            groups[at].entries.push((index, *token, connection));
            groups[at].messages.push(message);
        }
        for group in groups {
            let outcomes = group.receiver.complete_many(&group.messages).await;
            // An adapter answering short is a bug there; the unanswered keep their locks.
            let outcomes = outcomes
                .into_iter()
                .map(|r| r.map_err(|e| e.kind()))
                .chain(std::iter::repeat(Err(BusErrorKind::Other)));
            let entries = group.entries.into_iter().zip(group.messages);
            for (((index, token, connection), message), outcome) in entries.zip(outcomes) {
                match outcome {
                    Ok(()) => locks.settled(token),
                    Err(BusErrorKind::MessageLockLost) => {}
                    Err(_) => locks.insert(
                        token,
                        Lock {
                            receiver: group.receiver.clone(),
                            message,
                            connection,
                        },
                    ),
                }
                results[index] = outcome;
            }
        }
        results
    }

    /// Settles a lock token through the receiver that issued it. Settling a token that was
    /// already settled succeeds (link disposition and `update-disposition` may both arrive).
    pub(crate) async fn settle(
        &self,
        token: Uuid,
        settlement: Settlement,
    ) -> Result<(), BusErrorKind> {
        let locks = &self.shared.locks;
        let Some(lock) = locks.take(&token) else {
            return if locks.was_settled(&token) {
                Ok(())
            } else {
                Err(BusErrorKind::MessageLockLost)
            };
        };
        let receiver = &lock.receiver;
        let message = &lock.message;
        let result = match settlement {
            Settlement::Complete => receiver.complete(message).await,
            Settlement::Abandon(properties) => receiver.abandon(message, properties).await,
            Settlement::DeadLetter(options) => receiver.dead_letter(message, options).await,
            Settlement::Defer => receiver.defer(message).await,
        };
        match result {
            Ok(()) => {
                locks.settled(token);
                Ok(())
            }
            Err(err) => {
                if err.kind() != BusErrorKind::MessageLockLost {
                    locks.insert(token, lock);
                }
                Err(err.kind())
            }
        }
    }
}

/// The settling outcome of a delivery the client settled with `state`: its echo, or `rejected`
/// with the Service Bus condition of the failure.
fn outcome_of(
    state: &DeliveryState,
    token: Uuid,
    result: Result<(), BusErrorKind>,
) -> DeliveryState {
    match result {
        Ok(()) => echo(state),
        Err(kind) => DeliveryState::Rejected(Rejected {
            error: Some(definitions::Error::new(
                bus_condition(kind),
                Some(format!("settling lock token {token} failed: {kind}")),
                None,
            )),
        }),
    }
}

/// The port operation a delivery state asks for.
pub(crate) fn settlement_of(state: &DeliveryState) -> Option<Settlement> {
    match state {
        DeliveryState::Accepted(_) => Some(Settlement::Complete),
        DeliveryState::Released(_) => Some(Settlement::Abandon(Default::default())),
        DeliveryState::Modified(modified) => {
            let properties = modified
                .message_annotations
                .iter()
                .flat_map(|fields| fields.iter())
                .filter_map(|(k, v)| {
                    convert::value_to_property(k.as_str(), v.clone())
                        .ok()
                        .flatten()
                        .map(|v| (k.as_str().to_owned(), v))
                })
                .collect();
            if modified.undeliverable_here == Some(true) {
                Some(Settlement::Defer)
            } else {
                Some(Settlement::Abandon(properties))
            }
        }
        DeliveryState::Rejected(rejected) => {
            let info = rejected.error.as_ref().and_then(|e| e.info.as_deref());
            let text = |key: &str| -> Option<String> {
                match info?.get(&Symbol::from(key))? {
                    Value::String(s) => Some(s.clone()),
                    Value::Symbol(s) => Some(s.as_str().to_owned()),
                    _ => None,
                }
            };
            let reason = text(convert::DEAD_LETTER_REASON).unwrap_or_default();
            let description = text(convert::DEAD_LETTER_DESCRIPTION)
                .or_else(|| rejected.error.as_ref().and_then(|e| e.description.clone()))
                .unwrap_or_default();
            let mut options = DeadLetterOptions::new(reason, description);
            // Every other entry of the error info is a property to modify, as Service Bus does.
            options.properties_to_modify = info
                .into_iter()
                .flat_map(|fields| fields.iter())
                .filter(|(k, _)| {
                    k.as_str() != convert::DEAD_LETTER_REASON
                        && k.as_str() != convert::DEAD_LETTER_DESCRIPTION
                })
                .filter_map(|(k, v)| {
                    convert::value_to_property(k.as_str(), v.clone())
                        .ok()
                        .flatten()
                        .map(|v| (k.as_str().to_owned(), v))
                })
                .collect();
            Some(Settlement::DeadLetter(options))
        }
        _ => None,
    }
}

/// The settling reply: same outcome type; a `rejected` carries no error, because Python treats
/// an echoed error as a failed dead-letter.
fn echo(state: &DeliveryState) -> DeliveryState {
    match state {
        DeliveryState::Rejected(_) => DeliveryState::Rejected(Rejected { error: None }),
        DeliveryState::Modified(m) => DeliveryState::Modified(Modified {
            delivery_failed: m.delivery_failed,
            undeliverable_here: m.undeliverable_here,
            message_annotations: None,
        }),
        other => other.clone(),
    }
}

/// The AMQP condition Service Bus uses for a backend failure.
pub(crate) fn bus_condition(kind: BusErrorKind) -> ErrorCondition {
    let custom = |name: &str| ErrorCondition::Custom(Symbol::from(name));
    match kind {
        BusErrorKind::MessageLockLost => custom("com.microsoft:message-lock-lost"),
        BusErrorKind::EntityNotFound => Condition::NotFound.into(),
        BusErrorKind::MessageNotFound => custom("com.microsoft:message-not-found"),
        BusErrorKind::QuotaExceeded => custom("com.microsoft:quota-exceeded"),
        BusErrorKind::MessageSizeExceeded => custom("com.microsoft:message-size-exceeded"),
        BusErrorKind::Timeout => custom("com.microsoft:timeout"),
        BusErrorKind::ServiceBusy => custom("com.microsoft:server-busy"),
        BusErrorKind::Unauthorized => Condition::UnauthorizedAccess.into(),
        BusErrorKind::InvalidArgument => custom("com.microsoft:argument-error"),
        _ => Condition::InternalError.into(),
    }
}
