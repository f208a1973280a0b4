//! `fleetctl bench …`: benchmarks whose figures are recorded in `docs/benchmarks.md`.

use std::process::ExitCode;

use clap::Subcommand;

mod bus;
mod runtime;
mod store;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send → receive → complete through one topic and one subscription of the emulator engine.
    Bus(bus::BusBenchArgs),
    /// Commit units of work (inbox row + idempotency key + outbox row) to a store backend.
    Store(store::StoreBenchArgs),
    /// A no-op handler through the full worker pipeline on SQLite.
    Runtime(runtime::RuntimeBenchArgs),
}

/// Runs one benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Bus(args) => bus::run(args),
        BenchCommand::Store(args) => store::run(args),
        BenchCommand::Runtime(args) => runtime::run(args),
    }
}
