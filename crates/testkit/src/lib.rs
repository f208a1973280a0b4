//! `fleet-testkit`: run Fleet workers in-process, fast and deterministic.
//!
//! Start at [`Harness`]: it opens the emulator engine behind `fleet_emulator::InProcessBus`
//! (topic [`TOPIC`] with the worker's subscription and an [`OBSERVER`]), a store (SQLite in a
//! temporary directory, or PostgreSQL in a fresh schema), and a [`FakeClock`] shared by the
//! runtime and the engine. Build the worker with [`Harness::worker`], run it with
//! [`Harness::start`], publish with [`Harness::publish`], and assert on records, on
//! [`Harness::emitted`] events and on [`Harness::dead_letters`]. [`FaultPlan`] scripts handler
//! failures and delays; [`FaultyStore`] injects store failures and "crash after commit".
//! [`MemoryStore`] and [`MemoryBus`] are in-memory fakes for fast unit tests and for measuring
//! the runtime's own CPU cost.

mod clock;
mod error;
mod faults;
mod faulty_store;
mod harness;
mod memory_bus;
mod memory_store;

pub use clock::FakeClock;
pub use error::{TestkitError, TestkitErrorKind};
pub use faults::{Fault, FaultPlan};
pub use faulty_store::{FaultyStore, StoreFault, StoreOp};
pub use harness::{
    ENV_TEST_POSTGRES_URL, Harness, OBSERVER, RunningWorker, TOPIC, envelope_message,
    postgres_store,
};
pub use memory_bus::{MemoryBus, MemoryBusCounts};
pub use memory_store::MemoryStore;
