//! `fleet-runtime`: the guarantees every Fleet worker shares, written once.
//!
//! A worker is a few handler functions plus a config. Start at [`WorkerDefinition::builder`]:
//! register a handler per event type (`on`) and timers with their period (`timer`), pick a
//! [`RetryPolicy`], then run a [`Worker`] over a store and a bus with
//! [`Worker::run`]`(shutdown)`; binaries use [`main_support`] and pass a SIGTERM/SIGINT future,
//! tests pass their own.
//!
//! For every delivered message the runtime applies the consumer rules in order (decode, route,
//! tenant guard, dedupe, handle, commit, settle, publish), maps handler errors to a
//! [`Disposition`] (complete, delayed retry without holding the lock, dead-letter with a reason),
//! serializes work per ordering key, renews locks of long handlers, fires timers as virtual
//! envelopes with window-derived ids, relays the outbox, purges expired rows, serves
//! `/healthz`, `/readyz` and `/metrics`, and drains on shutdown. The full description is
//! `docs/runtime.md`.

mod clock;
mod committer;
mod config;
mod context;
mod definition;
mod dispatch;
mod disposition;
mod error;
mod handler;
mod handler_error;
mod http;
mod janitor;
mod keyed;
mod outbox;
mod pipeline;
mod relay;
mod retry;
mod shared;
mod tenants;
mod timer;
mod timers;
mod verdict;
mod worker;

pub mod main_support;

pub use clock::{Clock, SystemClock};
pub use config::*;
pub use context::{HandlerContext, Trigger};
pub use definition::{OrderingKeyFn, WorkerBuilder, WorkerDefinition, default_ordering_key};
pub use disposition::{DeadLetterReason, Disposition};
pub use error::{RuntimeError, RuntimeErrorKind};
pub use handler::{Handler, HandlerResult, TimerHandler};
pub use handler_error::{HandlerError, HandlerErrorKind, Outcome};
pub use janitor::purge_once;
pub use keyed::{KeyGuard, KeyedLocks};
pub use outbox::{PropertiesError, into_bus_message, outbox_message, to_bus_message};
pub use relay::Relay;
pub use retry::RetryPolicy;
pub use shared::{StatsSnapshot, WorkerStats};
pub use tenants::TTL as TENANT_BINDING_TTL;
pub use timer::{TimerTick, next_window_start, window_start};
pub use verdict::{
    Attempt, PROP_ATTEMPT, PROP_ATTEMPTS, PROP_DEAD_LETTER_WORKER, PROP_FIRST_FAILURE,
    PROP_LAST_ERROR, PROP_LAST_FAILURE, PROP_ORIGINAL_SUBJECT, PROP_RETRY_FOR, RETRY_SUBJECT,
    Verdict, decide,
};
pub use worker::Worker;

/// Handler signatures and helpers in one import.
pub mod prelude {
    pub use crate::{
        Expect, HandlerContext, HandlerError, HandlerResult, Outcome, RetryPolicy, TimerTick,
        WorkerDefinition,
    };
    pub use fleet_envelope::{Envelope, EventType, Payload};
}

pub use fleet_store::Expect;
