//! `fleetctl inspect <view>`: the platform records of a local fleet, stopped or running.
//!
//! Exit codes: 0 printed; 1 the data directory is missing or unreadable; 2 usage.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use fleet_local::records::{self, View};
use fleet_local::{DEFAULT_DATA_DIR, Layout};

/// Which records.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Which {
    /// Services (inventory).
    Services,
    /// Deployments and their state machine.
    Deployments,
    /// Latest health results.
    Health,
    /// Drift findings.
    Findings,
    /// Secret bindings and their rotation state.
    Secrets,
    /// Runtime configurations and where each version is applied.
    Configs,
    /// Scaling policies and their last action.
    Scaling,
}

impl Which {
    fn view(self) -> View {
        match self {
            Which::Services => View::Services,
            Which::Deployments => View::Deployments,
            Which::Health => View::Health,
            Which::Findings => View::Findings,
            Which::Secrets => View::Secrets,
            Which::Configs => View::Configs,
            Which::Scaling => View::Scaling,
        }
    }
}

/// `fleetctl inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The records to show.
    #[arg(value_enum)]
    which: Which,
    /// The fleet's data directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Print the records as a JSON array.
    #[arg(long)]
    json: bool,
}

/// Runs `fleetctl inspect`.
pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let layout = Layout::new(&args.data_dir);
    if let Err(e) = layout.require_existing() {
        return Ok(crate::up::fail(&e));
    }
    let view = args.which.view();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listed = rt.block_on(async {
        let store = records::open_store(&layout.store_db()).await?;
        records::list(&store, view).await
    });
    let shown = match listed {
        Ok(r) => r,
        Err(e) => return Ok(crate::up::fail(&e)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else if shown.is_empty() {
        println!("no {} records", view.name());
    } else {
        print!("{}", records::render(view, &shown));
    }
    Ok(ExitCode::SUCCESS)
}
