//! `fleet-bus`: the Bus port — Service Bus semantics as traits, owned by the runtime that uses it.
//!
//! Start at [`Bus`]: it hands out a [`BusSender`] for a queue or topic and a [`BusReceiver`] for
//! a queue or subscription (or its dead-letter subqueue, see [`EntityPath`]). Messages go in as
//! [`Message`] and come back as [`ReceivedMessage`] with broker fields (sequence number, lock
//! token, delivery count, dead-letter reason...). Every failure is a [`BusError`] whose
//! [`BusErrorKind`] the runtime classifies (lock lost, entity not found, quota, transient...).
//!
//! Adapters live elsewhere: `fleet_emulator::InProcessBus` goes straight to the local emulator
//! engine; the AMQP adapter speaks to Azure Service Bus (or the emulator's AMQP listener). Both
//! prove themselves with the same [`conformance`] suite.

pub mod conformance;
mod entity;
mod error;
mod message;
mod port;
mod rules;

pub use entity::{DEAD_LETTER_SUFFIX, EntityPath};
pub use error::{BusError, BusErrorKind};
pub use message::{Message, MessageState, PropertyValue, ReceivedMessage};
pub use port::{
    Bus, BusReceiver, BusSender, DeadLetterOptions, ReceiveMode, ReceiveOptions, SubQueue,
};
pub use rules::{
    CorrelationRuleFilter, DEFAULT_RULE_NAME, RuleDescription, RuleFilter, RuleManager,
};
