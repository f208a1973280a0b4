//! `fleet-servicebus`: Fleet's Bus port over Azure Service Bus, speaking AMQP 1.0 through the
//! `azservicebus` client.
//!
//! Start at [`ServiceBusBus`]. Build it from a connection string
//! ([`ServiceBusBus::from_connection_string`]; plain AMQP only for the local emulator, when the
//! string says `UseDevelopmentEmulator=true`), from a namespace and an Entra ID credential
//! ([`ServiceBusBus::from_credential`], production), or from the environment
//! ([`ServiceBusBus::from_env`], variables [`ENV_CONNECTION`], [`ENV_NAMESPACE`],
//! [`ENV_CREDENTIAL`]). It implements `fleet_bus::Bus`: senders for queues and topics,
//! receivers for queues, subscriptions and dead-letter subqueues, with peek-lock or
//! receive-and-delete, prefetch, scheduling, deferral, lock renewal and peek. Failures are
//! `fleet_bus::BusError`s classified by Service Bus condition; broken connections are re-opened
//! with exponential backoff. Secrets are [`Secret`]s and never printed.
//!
//! The mapping, error table, reconnect rules and limits are in `docs/servicebus.md`.

// azservicebus' futures are 17-19 KiB; every trait method here is already boxed by
// `async_trait`, so they live on the heap once per operation rather than being boxed again at
// each await.
#![allow(clippy::large_futures)]

mod bus;
mod config;
mod connection;
mod convert;
mod credential;
mod error;
mod receiver;
mod secret;
mod sender;

pub use bus::ServiceBusBus;
pub use config::{
    Auth, Backoff, ConnectionString, ENV_CONNECTION, ENV_CREDENTIAL, ENV_EMULATOR,
    ENV_MANAGED_IDENTITY_CLIENT_ID, ENV_NAMESPACE, EntraCredential, Env, ProcessEnv,
    ServiceBusConfig,
};
pub use credential::{SERVICE_BUS_SCOPE, TokenBridge};
pub use secret::Secret;
