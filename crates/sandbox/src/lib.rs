//! Fleet's local cloud.
//!
//! [`Sandbox`] implements every port of `fleet-cloud` — [`Compute`](fleet_cloud::Compute) for
//! all four platform kinds, [`Metrics`](fleet_cloud::Metrics) and [`Vault`](fleet_cloud::Vault)
//! — over simulated workloads persisted in a data directory. Each service answers real HTTP
//! liveness, readiness and dependency probes on a loopback server, following its simulated
//! state: not ready while a rollout converges, crash-looping on a `:broken` image, down under
//! injected health faults. Time comes from a [`Clock`], so tests drive long-running operations
//! with a [`ManualClock`] and demos speed them up with an [`AcceleratedClock`].
//!
//! Tests and demos turn the knobs on [`Sandbox`]: per-port faults ([`FaultPlan`]), drift
//! ([`Drift`]), health faults ([`HealthFaults`]), load ([`LoadProfile`]), and
//! [`Sandbox::seed_demo`] for a ready-made environment. Start with [`Sandbox::start`].

mod clock;
mod compute;
mod demo;
mod drift;
mod faults;
mod health;
mod load;
mod metrics;
mod shared;
mod state;
mod validate;
mod vault;
mod world;

pub use clock::{AcceleratedClock, Clock, ManualClock, SystemClock};
pub use demo::write_desired_state;
pub use drift::Drift;
pub use faults::{FaultPlan, Port};
pub use health::HealthFaults;
pub use load::{LoadProfile, METRICS};
pub use state::BROKEN_TAG;
pub use validate::LATEST;
pub use world::{Sandbox, SandboxConfig, Timings};
