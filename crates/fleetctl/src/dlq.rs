//! `fleetctl dlq list`: the dead-letter entries of every subscription of a local fleet.
//!
//! Exit codes: 0 printed (also when there are none); 1 the data directory is missing or
//! unreadable; 2 usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use fleet_local::records::table;
use fleet_local::{DEFAULT_DATA_DIR, Layout};

/// Dead-letter commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List every dead-lettered message: sequence number, subscription, reason, description,
    /// worker, attempts, and eventId / eventType when the body is a valid envelope.
    List(ListArgs),
}

/// `fleetctl dlq list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The fleet's data directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Print the entries as a JSON array.
    #[arg(long)]
    json: bool,
}

/// Runs a `fleetctl dlq` command.
pub fn run(cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    let DlqCommand::List(args) = cmd;
    let layout = Layout::new(&args.data_dir);
    if let Err(e) = layout.require_existing() {
        return Ok(crate::up::fail(&e));
    }
    let entries = match fleet_local::dlq::list(&layout.emulator_db()) {
        Ok(e) => e,
        Err(e) => return Ok(crate::up::fail(&e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!("no dead-letter entries");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let description: String = e
                .description
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect();
            vec![
                e.sequence_number.to_string(),
                e.subscription.clone(),
                e.reason.clone(),
                e.worker.clone().unwrap_or_else(|| "-".into()),
                e.attempts.to_string(),
                e.event_type.clone().unwrap_or_else(|| "-".into()),
                e.event_id
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into()),
                description,
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "SEQ",
                "SUBSCRIPTION",
                "REASON",
                "WORKER",
                "ATTEMPTS",
                "EVENT TYPE",
                "EVENT ID",
                "DESCRIPTION"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}
