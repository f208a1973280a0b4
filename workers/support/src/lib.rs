//! `fleet-worker-support`: the few things Fleet's seven workers share, so each worker crate holds
//! only its domain.
//!
//! Start at [`Environments`]: control loops (timers) span tenants, so every loop walks the
//! environments it was configured with and resolves each one's owning tenant through its tenant
//! binding — the resulting [`Scope`](fleet_cloud::Scope)s are the only places a loop may act.
//! Around it: [`cloud_error`] maps a control-plane failure to the handler error kind that drives
//! retries, [`await_operation`] waits out a long-running operation on the worker's clock,
//! [`settings`] parses worker variables (bad values name the variable and exit 64), and
//! [`local`] gives the worker binaries their ports when no Azure adapter is configured: a
//! sandbox cloud and an in-process emulator bus.

pub mod convert;
mod environments;
mod errors;
pub mod local;
mod operations;
pub mod settings;
#[cfg(feature = "testing")]
pub mod testing;

pub use environments::{ENV_ENVIRONMENTS, Environments};
pub use errors::{bad_payload, cloud_error, is_not_found, unexpected};
pub use operations::later;
pub use operations::{await_operation, wait_for};
