//! `fleetctl`: the command line for Fleet — envelopes, benchmarks, the local fleet (`up`),
//! its records (`inspect`) and dead-letter queues (`dlq`).
//!
//! Exit codes: 0 success; 1 the command ran and found a problem (e.g. an invalid envelope);
//! 2 usage error (bad flag or argument); 64 bad configuration value; 70 internal failure.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The allocator: per-message work allocates often, and mimalloc costs less per call than
// the system allocator (docs/benchmarks.md, runtime).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod bench;
mod dlq;
mod emulator_cmd;
mod envelope;
mod inspect;
mod publish;
mod up;

/// Fleet's command line.
#[derive(Debug, Parser)]
#[command(name = "fleetctl", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate, convert and describe event envelopes.
    #[command(subcommand)]
    Envelope(envelope::EnvelopeCommand),
    /// Run a benchmark and print its figures.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run the whole fleet on this machine: emulator, sandbox cloud and every worker.
    Up(up::UpArgs),
    /// Show the platform records of a local fleet.
    Inspect(inspect::InspectArgs),
    /// Dead-letter tooling for a local fleet.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Run the emulator engine behind its AMQP listener, standalone, until Ctrl-C / SIGTERM.
    Emulator(emulator_cmd::EmulatorArgs),
    /// Send envelopes (JSON lines or one document) to a Service Bus topic.
    Publish(publish::PublishArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Envelope(cmd) => envelope::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Up(args) => up::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Dlq(cmd) => dlq::run(cmd),
        Command::Emulator(args) => emulator_cmd::run(args),
        Command::Publish(args) => publish::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("fleetctl: {err:#}");
            ExitCode::from(70)
        }
    }
}
