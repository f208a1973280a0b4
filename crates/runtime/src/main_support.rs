//! Helpers that keep a worker's `main.rs` to a few lines:
//!
//! ```text
//! fn main() -> ExitCode {
//!     main_support::run("configuration-sync", RetryPolicy::attempts(5), |config, _store| async move {
//!         Ok(Setup { definition: handlers::definition(), ports: Arc::new(Ports::new(&config)?), bus: open_bus(&config).await? })
//!     })
//! }
//! ```
//!
//! [`run`] reads the configuration (a bad value prints one line naming the variable and exits
//! 64), initialises telemetry, sizes a Tokio runtime from the CPUs the container may use, opens
//! the store, lets the worker build its ports and bus, runs it until SIGTERM or SIGINT, drains,
//! and exits 0.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;

use fleet_bus::Bus;
use fleet_store::Store;

use crate::config::{Env, ProcessEnv, RuntimeConfig};
use crate::definition::WorkerDefinition;
use crate::error::{RuntimeError, RuntimeErrorKind};
use crate::retry::RetryPolicy;
use crate::worker::Worker;

/// Exit code for a bad configuration value (sysexits `EX_USAGE`).
pub const EX_USAGE: u8 = 64;
/// Exit code for any other failure (sysexits `EX_SOFTWARE`).
pub const EX_SOFTWARE: u8 = 70;

/// What a worker's setup hands back to [`run`].
pub struct Setup<P> {
    /// The handlers and timers.
    pub definition: WorkerDefinition<P>,
    /// The worker's ports (control-plane clients...).
    pub ports: Arc<P>,
    /// The bus to receive from and publish to.
    pub bus: Arc<dyn Bus>,
}

/// The exit code for `err`: 64 for configuration errors, 70 otherwise.
pub fn exit_code(err: &RuntimeError) -> ExitCode {
    match err.kind() {
        RuntimeErrorKind::Config => ExitCode::from(EX_USAGE),
        _ => ExitCode::from(EX_SOFTWARE),
    }
}

/// Reads the configuration; on a bad value prints it and returns the exit code to use.
pub fn read_config(
    env: &dyn Env,
    worker: &str,
    retry: RetryPolicy,
) -> Result<RuntimeConfig, ExitCode> {
    RuntimeConfig::from_env(env, worker, retry).map_err(|e| {
        eprintln!("{worker}: {e}");
        exit_code(&e)
    })
}

/// Completes on SIGTERM (Container Apps stopping a replica) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// A multi-threaded Tokio runtime with one worker thread per CPU the process may use (the
/// standard library reads the cgroup CPU quota on Linux).
pub fn tokio_runtime() -> Result<tokio::runtime::Runtime, RuntimeError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| {
            RuntimeError::new(
                RuntimeErrorKind::Definition,
                "building the Tokio runtime failed",
            )
            .with_source(e)
        })
}

/// Runs a worker binary end to end; returns the process exit code.
pub fn run<P, F, Fut>(worker: &str, retry: RetryPolicy, setup: F) -> ExitCode
where
    P: Send + Sync + 'static,
    F: FnOnce(RuntimeConfig, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = Result<Setup<P>, RuntimeError>>,
{
    let config = match read_config(&ProcessEnv, worker, retry) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let telemetry = match fleet_telemetry::TelemetryConfig::from_process_env(&config.worker_name) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{}: {e}", config.worker_name);
            return ExitCode::from(EX_USAGE);
        }
    };
    let guard = match fleet_telemetry::init(telemetry) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("{}: {e}", config.worker_name);
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    let name = config.worker_name.clone();
    let result = tokio_runtime().and_then(|rt| rt.block_on(run_async(config, setup)));
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "worker failed");
            eprintln!("{name}: {e}");
            exit_code(&e)
        }
    };
    if let Err(e) = guard.shutdown() {
        eprintln!("{name}: {e}");
    }
    code
}

async fn run_async<P, F, Fut>(config: RuntimeConfig, setup: F) -> Result<(), RuntimeError>
where
    P: Send + Sync + 'static,
    F: FnOnce(RuntimeConfig, Arc<dyn Store>) -> Fut,
    Fut: Future<Output = Result<Setup<P>, RuntimeError>>,
{
    let store = fleet_store::open(&config.store_url).await.map_err(|e| {
        RuntimeError::new(RuntimeErrorKind::Store, "opening the store failed").with_source(e)
    })?;
    let Setup {
        definition,
        ports,
        bus,
    } = setup(config.clone(), store.clone()).await?;
    Worker::new(definition, config, store, bus, ports)
        .run(shutdown_signal())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ENV_MAX_IN_FLIGHT, MapEnv};

    #[test]
    fn a_bad_value_maps_to_exit_64() {
        let env = MapEnv::from_pairs([(ENV_MAX_IN_FLIGHT, "many")]);
        let code = read_config(&env, "w", RetryPolicy::default()).unwrap_err();
        assert_eq!(code, ExitCode::from(EX_USAGE));
        let err = RuntimeConfig::from_env(&env, "w", RetryPolicy::default()).unwrap_err();
        assert_eq!(exit_code(&err), ExitCode::from(EX_USAGE));
        assert_eq!(
            exit_code(&RuntimeError::new(RuntimeErrorKind::Bus, "down")),
            ExitCode::from(EX_SOFTWARE)
        );
    }
}
