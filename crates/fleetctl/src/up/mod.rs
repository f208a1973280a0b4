//! `fleetctl up`: the whole fleet on one machine (see `docs/local-fleet.md`).
//!
//! Exit codes: 0 the fleet ran and stopped cleanly (Ctrl-C, or idle with `--until-idle`) and
//! every scenario step that ran succeeded; 1 a scenario step failed or the data directory is
//! unusable; 2 usage; 70 a component failed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use fleet_local::{
    DEFAULT_DATA_DIR, FlowEvent, FlowSink, LocalError, LocalErrorKind, Scenario, Transport,
    UpOptions,
};

/// `fleetctl up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the emulator, store and sandbox keep their state.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Seed an environment and drive every path of the event flow (`demo`).
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,
    /// Exit 0 once no work is pending (instead of running until Ctrl-C).
    #[arg(long)]
    until_idle: bool,
    /// Print the summary as JSON on stdout (the flow goes to stderr).
    #[arg(long)]
    json: bool,
    /// Inject messages after start: one body per line, sent as-is.
    #[arg(long, value_name = "FILE")]
    publish: Option<PathBuf>,
    /// Speed of simulated time (default: 60 with a scenario, else 1).
    #[arg(long, value_name = "FACTOR")]
    speed: Option<f64>,
    /// Remove the state of a previous fleet in the data directory first.
    #[arg(long)]
    reset: bool,
    /// How workers reach the emulator engine: `amqp` (the default: through the engine's AMQP
    /// listener with the production Service Bus client, as in Azure) or `inprocess` (direct
    /// calls, faster, binds no port).
    #[arg(long, value_name = "amqp|inprocess", default_value = "amqp")]
    transport: String,
    /// Where the AMQP listener binds with `--transport amqp` (a loopback IP, port 5672: the
    /// Service Bus client always dials 5672).
    #[arg(long, value_name = "ADDR", default_value = fleet_local::DEFAULT_LISTEN)]
    listen: String,
}

/// Maps a fleet error to the exit code scripts rely on.
pub fn exit_code(e: &LocalError) -> ExitCode {
    match e.kind() {
        LocalErrorKind::DataDir | LocalErrorKind::Scenario => ExitCode::from(1),
        LocalErrorKind::Input => ExitCode::from(2),
        LocalErrorKind::Component => ExitCode::from(70),
    }
}

/// Prints a fleet error as one line (with its causes) and returns its exit code.
pub fn fail(e: &LocalError) -> ExitCode {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    eprintln!("fleetctl: {msg}");
    exit_code(e)
}

/// A future completing on SIGINT (Ctrl-C) or SIGTERM, listening from the moment it is built.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Runs `fleetctl up`.
pub fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let scenario = match args.scenario.as_deref().map(str::parse::<Scenario>) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => return Ok(fail(&e)),
    };
    let transport = match args.transport.parse::<Transport>() {
        Ok(t) => t,
        Err(e) => return Ok(fail(&e)),
    };
    let Ok(listen) = args.listen.parse::<SocketAddr>() else {
        eprintln!(
            "fleetctl: --listen {:?} is not an address: expected IP:PORT, e.g. 127.0.0.1:5672",
            args.listen
        );
        return Ok(ExitCode::from(2));
    };
    if let Some(speed) = args.speed
        && !(speed.is_finite() && speed > 0.0 && speed <= 10_000.0)
    {
        eprintln!("fleetctl: --speed {speed} is out of range (a number > 0 and <= 10000)");
        return Ok(ExitCode::from(2));
    }
    let options = UpOptions {
        data_dir: args.data_dir,
        scenario,
        until_idle: args.until_idle,
        publish: args.publish,
        speed: args.speed,
        reset: args.reset,
        quiet: fleet_local::DEFAULT_QUIET,
        transport,
        listen,
    };
    let json = args.json;
    let sink: FlowSink = Arc::new(move |event: &FlowEvent| {
        let line = event.line();
        // With --json, stdout carries only the summary document.
        if json {
            let _ = writeln!(std::io::stderr(), "{line}");
        } else {
            let _ = writeln!(std::io::stdout(), "{line}");
        }
    });
    let rt = fleet_runtime::main_support::tokio_runtime()?;
    let announce = |text: String| {
        if json {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    };
    announce(format!(
        "fleet: data in {}, topology deploy/emulator/Config.json, {}{}",
        options.data_dir.display(),
        match transport {
            Transport::InProcess => "workers on the in-process bus".to_owned(),
            Transport::Amqp => format!("workers over AMQP via {listen}"),
        },
        match scenario {
            Some(_) => format!(
                "; scenario demo on an accelerated clock ({}× — a 30 s health window takes {} ms), back to real time once the scenario is done",
                options.speed.unwrap_or(fleet_local::DEMO_SPEED),
                (30_000.0 / options.speed.unwrap_or(fleet_local::DEMO_SPEED)) as u64
            ),
            None => String::new(),
        }
    ));
    let outcome = rt.block_on(async {
        // Listening starts before the fleet says it runs, so a Ctrl-C at any point after
        // that line drains the fleet instead of killing the process.
        let shutdown = stop_signal()?;
        announce(if options.until_idle {
            "fleet: running until no work is pending".to_owned()
        } else {
            "fleet: running until Ctrl-C".to_owned()
        });
        Ok::<_, anyhow::Error>(fleet_local::up(options, shutdown, Some(sink)).await)
    })?;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return Ok(fail(&e)),
    };
    let summary = &outcome.summary;
    if json {
        println!("{}", serde_json::to_string_pretty(summary)?);
    } else {
        print!("{}", summary.render());
    }
    Ok(if summary.scenario_ok() {
        ExitCode::SUCCESS
    } else {
        eprintln!("fleetctl: a scenario step failed (see the summary)");
        ExitCode::from(1)
    })
}
