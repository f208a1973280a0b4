//! `fleetctl bench bus` (being built).

use std::process::ExitCode;

/// Arguments of `fleetctl bench bus`.
#[derive(Debug, clap::Args)]
pub struct BusBenchArgs {}

/// Runs the benchmark.
pub fn run(_args: BusBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fleetctl bench bus is not built yet")
}
