//! `fleetctl bench store` (being built).

use std::process::ExitCode;

/// Arguments of `fleetctl bench store`.
#[derive(Debug, clap::Args)]
pub struct StoreBenchArgs {}

/// Runs the benchmark.
pub fn run(_args: StoreBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fleetctl bench store is not built yet")
}
