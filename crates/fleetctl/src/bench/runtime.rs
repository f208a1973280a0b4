//! `fleetctl bench runtime` (being built).

use std::process::ExitCode;

/// Arguments of `fleetctl bench runtime`.
#[derive(Debug, clap::Args)]
pub struct RuntimeBenchArgs {}

/// Runs the benchmark.
pub fn run(_args: RuntimeBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fleetctl bench runtime is not built yet")
}
