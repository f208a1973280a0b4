//! `fleet-emulator`: a durable, single-process Service Bus emulator.
//!
//! Start at [`Emulator::open`]: it takes a [`Topology`] (parsed from the official emulator's
//! `Config.json` by [`Topology::from_json`], or built in code), a data file on SQLite, a
//! [`Clock`] and [`EmulatorOptions`] (durability, size limits). The engine keeps queues, topics
//! with filtered subscriptions, peek-lock with lock expiry and redelivery, dead-letter
//! subqueues, deferral, scheduling, time to live and duplicate detection; every acknowledged
//! operation is committed to SQLite (group commit), and a restart restores messages, locks and
//! delivery counts.
//!
//! Subscription rules can be changed at run time ([`Emulator::add_rule`],
//! [`Emulator::remove_rule`], [`Emulator::rules`]); the changes are durable and route the next
//! message.
//!
//! [`InProcessBus`] implements the `fleet_bus::Bus` port straight over the engine, including its
//! optional rule management (`Bus::rule_manager`). The
//! semantics, what `Config.json` support covers and what is not emulated are in
//! `docs/emulator.md`.

pub mod bench;
mod clock;
mod config;
mod duration;
mod engine;
mod error;
mod filter;
mod inprocess;
mod rules;
mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    CorrelationFilter, DEFAULT_DUPLICATE_WINDOW, DEFAULT_LOCK_DURATION, DEFAULT_MAX_DELIVERY_COUNT,
    Filter, MAX_CONFIG_BYTES, QueueConfig, ReceiveSettings, Rule, SubscriptionConfig, TopicConfig,
    Topology,
};
pub use duration::{FOREVER, format as format_duration, parse as parse_duration};
pub use engine::{
    DATA_FILE_NAME, DEFAULT_MAX_ENTITY_BYTES, DEFAULT_MAX_MESSAGE_BYTES, Emulator, EmulatorOptions,
    EntityHandle, MAX_RULES_PER_SUBSCRIPTION,
};
pub use error::{EmulatorError, EmulatorErrorKind};
pub use inprocess::InProcessBus;
pub use rules::MAX_RULE_NAME_LEN;
pub use store::Durability;
