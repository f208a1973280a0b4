//! `fleetctl emulator`: the durable emulator engine behind the AMQP listener, standalone, so
//! worker binaries and Service Bus clients reach it over the wire.
//!
//! Exit codes: 0 stopped by Ctrl-C / SIGTERM; 1 the configuration is invalid or the engine or
//! listener cannot start; 2 usage (bad address, bad `--key`).

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use fleet_amqp::{ListenerOptions, SasKey, serve};
use fleet_emulator::{Emulator, EmulatorOptions, InProcessBus, SystemClock, Topology};
use tokio::net::TcpListener;

/// The topology used without `--config`: the fleet's topic and every worker's subscription.
pub const DEFAULT_CONFIG: &str = include_str!("../../../deploy/emulator/Config.json");

/// `fleetctl emulator`.
#[derive(Debug, Args)]
pub struct EmulatorArgs {
    /// A Service Bus emulator `Config.json` (default: the fleet's own topology).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address the AMQP listener binds (Service Bus clients dial port 5672 on the emulator).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5672")]
    listen: String,
    /// Directory of the engine's durable store (created if missing).
    #[arg(long, value_name = "DIR", default_value = ".fleet/emulator")]
    data_dir: PathBuf,
    /// A SAS key clients must sign with, as NAME=VALUE (repeatable; none: any token is accepted).
    #[arg(long = "key", value_name = "NAME=VALUE")]
    keys: Vec<String>,
}

/// Why the emulator did not run.
#[derive(Debug)]
enum Failure {
    /// Bad command-line value (exit 2).
    Usage(String),
    /// Bad configuration or a start failure (exit 1).
    Start(String),
}

/// Runs `fleetctl emulator` until Ctrl-C or SIGTERM.
pub fn run(args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    let outcome = rt.block_on(async {
        let shutdown = stop_signal().map_err(|e| Failure::Start(format!("signals: {e}")))?;
        serve_until(&args, shutdown, |addr| {
            println!("listening on {addr}");
            let _ = std::io::stdout().flush();
        })
        .await
    });
    Ok(match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("fleetctl emulator: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Start(msg)) => {
            eprintln!("fleetctl emulator: {msg}");
            ExitCode::from(1)
        }
    })
}

/// Parses `NAME=VALUE`; the value is never echoed (it is a key).
fn parse_key(text: &str) -> Result<SasKey, Failure> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.is_empty() => {
            Ok(SasKey::new(name.trim(), value))
        }
        _ => Err(Failure::Usage(
            "--key must be NAME=VALUE with both parts non-empty".to_owned(),
        )),
    }
}

fn load_topology(config: Option<&PathBuf>) -> Result<Topology, Failure> {
    let (origin, text) = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Start(format!("reading {}: {e}", path.display())))?;
            (path.display().to_string(), text)
        }
        None => (
            "the built-in Config.json".to_owned(),
            DEFAULT_CONFIG.to_owned(),
        ),
    };
    Topology::from_json(&text).map_err(|e| Failure::Start(format!("{origin}: {e}")))
}

/// Opens the engine, binds the listener, reports the bound address through `ready`, and serves
/// until `shutdown` completes; then closes every connection and returns.
async fn serve_until(
    args: &EmulatorArgs,
    shutdown: impl Future<Output = ()>,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), Failure> {
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        Failure::Usage(format!(
            "--listen {:?} is not an address: expected IP:PORT, e.g. 127.0.0.1:5672",
            args.listen
        ))
    })?;
    let keys = args
        .keys
        .iter()
        .map(|k| parse_key(k))
        .collect::<Result<Vec<_>, _>>()?;
    let topology = load_topology(args.config.as_ref())?;
    let emulator = Emulator::open(
        topology,
        args.data_dir.as_path(),
        Arc::new(SystemClock),
        EmulatorOptions::default(),
    )
    .await
    .map_err(|e| {
        Failure::Start(format!(
            "opening the engine in {}: {e}",
            args.data_dir.display()
        ))
    })?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::Start(format!("binding {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::Start(format!("binding {addr}: {e}")))?;
    let options = ListenerOptions {
        keys,
        ..ListenerOptions::default()
    };
    ready(bound);
    serve(
        listener,
        Arc::new(InProcessBus::new(emulator)),
        options,
        shutdown,
    )
    .await
    .map_err(|e| Failure::Start(format!("listener on {bound}: {e}")))
}

/// A future completing on SIGINT (Ctrl-C) or SIGTERM, listening from the moment it is built.
fn stop_signal() -> std::io::Result<impl Future<Output = ()> + Send> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fleet_bus::{Bus, EntityPath, Message, ReceiveOptions};
    use fleet_servicebus::ServiceBusBus;

    use super::*;

    fn args(listen: &str, dir: &std::path::Path) -> EmulatorArgs {
        EmulatorArgs {
            config: None,
            listen: listen.to_owned(),
            data_dir: dir.to_path_buf(),
            keys: Vec::new(),
        }
    }

    #[test]
    fn the_built_in_config_is_the_fleet_topology() {
        let t = load_topology(None).unwrap();
        let topic = t.topics.iter().find(|t| t.name == "fleet-events").unwrap();
        assert!(
            topic
                .subscriptions
                .iter()
                .any(|s| s.name == "configuration-sync")
        );
    }

    #[test]
    fn a_bad_config_names_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Config.json");
        std::fs::write(
            &path,
            r#"{"UserConfig": {"Namespaces": [{"Name": "ns", "Topics": 3}]}}"#,
        )
        .unwrap();
        let Err(Failure::Start(msg)) = load_topology(Some(&path)) else {
            panic!("a bad config is refused");
        };
        assert!(msg.contains("Config.json"), "{msg}");
        assert!(msg.contains("Topics"), "names the field: {msg}");
    }

    #[test]
    fn keys_need_a_name_and_a_value_and_are_never_echoed() {
        assert!(parse_key("RootManageSharedAccessKey=abc").is_ok());
        for bad in ["novalue", "=secret-value", "name="] {
            let Err(Failure::Usage(msg)) = parse_key(bad) else {
                panic!("{bad:?} is refused");
            };
            assert!(!msg.contains("secret-value"), "{msg}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bad_address_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = serve_until(&args("localhost-ish", dir.path()), async {}, |_| {}).await;
        assert!(matches!(out, Err(Failure::Usage(m)) if m.contains("localhost-ish")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_the_production_adapter_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let a = args("127.0.0.151:5672", dir.path());
        let server = tokio::spawn(async move {
            serve_until(
                &a,
                async {
                    let _ = stopped.await;
                },
                |addr| {
                    let _ = ready_tx.send(addr);
                },
            )
            .await
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(addr.to_string(), "127.0.0.151:5672");
        let bus = ServiceBusBus::from_connection_string(
            "Endpoint=sb://127.0.0.151/;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true",
        )
        .unwrap();
        let sender = bus.sender("fleet-events").await.unwrap();
        let mut msg = Message::new(b"{}".to_vec());
        msg.subject = Some("ConfigurationPublished".into());
        sender.send(msg).await.unwrap();
        let receiver = bus
            .receiver(
                &EntityPath::subscription("fleet-events", "configuration-sync"),
                ReceiveOptions::peek_lock(),
            )
            .await
            .unwrap();
        let got = receiver.receive(1, Duration::from_secs(10)).await.unwrap();
        assert_eq!(got.len(), 1, "the subscription's rule routed the message");
        let _ = bus.close().await;
        let _ = stop.send(());
        let out = tokio::time::timeout(Duration::from_secs(30), server)
            .await
            .unwrap()
            .unwrap();
        assert!(out.is_ok(), "{out:?}");
    }
}
