//! Settlement of peek-lock deliveries: the client's dispositions (and `update-disposition`)
//! become complete / abandon / dead-letter / defer on the receiver that issued the lock, and the
//! client gets the settling disposition Service Bus sends.

use fe2o3_amqp_types::definitions::{self, AmqpError as Condition, ErrorCondition, Role};
use fe2o3_amqp_types::messaging::{DeliveryState, Modified, Rejected};
use fe2o3_amqp_types::performatives::{Disposition, Performative};
use fe2o3_amqp_types::primitives::{Symbol, Value};
use fleet_bus::{BusErrorKind, DeadLetterOptions};
use uuid::Uuid;

use crate::connection::Connection;
use crate::convert;
use crate::error::AmqpError;

/// What a client asks for when it settles a delivery, in port terms.
#[derive(Debug, Clone)]
pub(crate) enum Settlement {
    Complete,
    Abandon(std::collections::BTreeMap<String, fleet_bus::PropertyValue>),
    DeadLetter(DeadLetterOptions),
    Defer,
}

impl Connection {
    /// A client settled (or asked to settle) deliveries we sent.
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
            let Some(state) = disposition.state.clone() else {
                continue;
            };
            let Some(settlement) = settlement_of(&state) else {
                continue;
            };
            let outcome = match self.settle(token, settlement).await {
                Ok(()) => echo(&state),
                Err(kind) => DeliveryState::Rejected(Rejected {
                    error: Some(definitions::Error::new(
                        bus_condition(kind),
                        Some(format!("settling lock token {token} failed: {kind}")),
                        None,
                    )),
                }),
            };
            if !disposition.settled {
                let reply = Disposition {
                    role: Role::Sender,
                    first: delivery_id,
                    last: None,
                    settled: true,
                    state: Some(outcome),
                    batchable: false,
                };
                self.send(channel, Performative::Disposition(reply)).await?;
            }
        }
        Ok(())
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
