//! `fleet-local`: Fleet on one machine.
//!
//! Start at [`up`]: it opens the emulator engine (topology from `deploy/emulator/Config.json`),
//! the SQLite store and the sandbox cloud under one data directory ([`Layout`], default
//! `.fleet/`), runs every worker in the process over them, injects `--publish` input, drives the
//! demo [`Scenario`] on an accelerated [`FleetClock`], prints the flow as it happens (through
//! [`ObservedBus`], which sees every publish and settlement) and returns a [`Summary`].
//! `fleetctl up` is a thin wrapper over it; the end-to-end tests call it directly.
//!
//! [`records`] and [`dlq`] read a stopped or running fleet's data directory for
//! `fleetctl inspect` and `fleetctl dlq list`. `docs/local-fleet.md` describes it all.

mod clock;
pub mod dlq;
mod error;
mod layout;
pub mod observe;
pub mod publish;
pub mod records;
pub mod scenario;
pub mod seed;
mod summary;
pub mod topology;
pub mod transport;
mod up;
pub mod workers;

pub use clock::FleetClock;
pub use error::{LocalError, LocalErrorKind};
pub use layout::{DEFAULT_DATA_DIR, Layout, Manifest};
pub use observe::{Flow, FlowEvent, FlowSink, ObservedBus};
pub use summary::{Summary, WorkerSummary};
pub use transport::{DEFAULT_LISTEN, Transport};
pub use up::{DEFAULT_QUIET, DEMO_SPEED, Scenario, UpOptions, UpOutcome, up};
