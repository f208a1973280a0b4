//! `scaling-policy-worker`: the binary. Configuration comes from `FLEET_*` variables (see
//! `docs/workers.md`); without an Azure adapter the ports are the local sandbox cloud.

use std::process::ExitCode;
use std::sync::Arc;

use fleet_runtime::{ProcessEnv, main_support};
use fleet_worker_scaling_policy as worker;
use fleet_worker_support::local::{LocalCloud, open_bus};

// The allocator: per-message work allocates often, and mimalloc costs less per call than
// the system allocator (docs/benchmarks.md, runtime).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    main_support::run(
        worker::NAME,
        worker::retry_policy(),
        |config, _store| async move {
            let settings = worker::Settings::from_env(&ProcessEnv)?;
            let environments = fleet_worker_support::Environments::from_env(&ProcessEnv)?;
            let cloud = LocalCloud::open(&ProcessEnv).await?;
            let bus = open_bus(&ProcessEnv, &config, worker::SUBSCRIBED).await?;
            Ok(main_support::Setup {
                definition: worker::definition(&settings)?,
                ports: Arc::new(worker::Ports::local(settings, environments, cloud)),
                bus,
            })
        },
    )
}
