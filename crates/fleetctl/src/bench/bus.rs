//! `fleetctl bench bus`: send → receive → complete through one topic and one subscription of
//! the emulator engine, durable in a temporary data directory, 1 KiB bodies.
//!
//! Throughput mode (default) sends flat out; latency mode (`--rate R`) sends at a fixed rate
//! and reports each message's latency from when it was due to be sent until its `complete` was
//! durable. The measurement itself is `fleet_emulator::bench`.

use std::process::ExitCode;

use anyhow::Context;
use fleet_emulator::Durability;
use fleet_emulator::bench::{BenchOptions, BenchReport};

/// Durability as a flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DurabilityArg {
    /// `synchronous = NORMAL` (a commit survives a process crash).
    Normal,
    /// `synchronous = FULL` (fsync per commit; survives power loss).
    Full,
}

/// Arguments of `fleetctl bench bus`.
#[derive(Debug, clap::Args)]
pub struct BusBenchArgs {
    /// Messages to push through.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// SQLite durability of the engine.
    #[arg(long, value_enum, default_value = "normal")]
    durability: DurabilityArg,
    /// Latency mode: send at this fixed rate (messages per second) instead of flat out.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Messages per send batch and per receive call.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=5000))]
    batch: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the benchmark.
pub fn run(args: BusBenchArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("fleet-bench-bus-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let options = BenchOptions {
        messages: args.messages,
        durability: match args.durability {
            DurabilityArg::Normal => Durability::Normal,
            DurabilityArg::Full => Durability::Full,
        },
        rate: args.rate,
        batch: args.batch,
    };
    let result = runtime.block_on(fleet_emulator::bench::run(options, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    let report: BenchReport = result?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "bus {} ({} durability): {} messages in {:.2} s = {:.0} msgs/s; send→complete latency p50 {:.2} ms, p99 {:.2} ms",
            report.mode,
            report.durability,
            report.messages,
            report.seconds,
            report.msgs_per_sec,
            report.p50_ms,
            report.p99_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
