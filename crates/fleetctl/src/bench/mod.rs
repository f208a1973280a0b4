//! `fleetctl bench …`: benchmarks whose figures are recorded in `docs/benchmarks.md`.

use std::process::ExitCode;

use clap::Subcommand;

mod bus;
mod store;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send → receive → complete through one topic and one subscription of the emulator engine.
    Bus(bus::BusBenchArgs),
    /// Commit units of work (inbox row + idempotency key + outbox row) to a store backend.
    Store(store::StoreBenchArgs),
}

/// Runs one benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Bus(args) => bus::run(args),
        BenchCommand::Store(args) => store::run(args),
    }
}
