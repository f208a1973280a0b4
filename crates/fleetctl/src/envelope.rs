//! `fleetctl envelope …` (being built).

use std::process::ExitCode;

use clap::Subcommand;

/// Envelope commands.
#[derive(Debug, Subcommand)]
pub enum EnvelopeCommand {
    /// Validate an envelope.
    Validate,
}

/// Runs an envelope command.
pub fn run(_cmd: EnvelopeCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("fleetctl envelope is not built yet")
}
