//! The Bus conformance suite: behaviour every adapter must show, run by each adapter's tests
//! (`fleet_emulator::InProcessBus` here, the AMQP adapter against the emulator's listener or
//! Azure later).
//!
//! The suite needs the entities of [`Topology`] (see [`Topology::config_json`] for them as an
//! emulator `Config.json`). It controls no clock: entities with a one-second lock and a
//! one-second message TTL make lock expiry and expiry observable by waiting on conditions
//! (a receive with a deadline), never by sleeping.
//!
//! ```no_run
//! # async fn check(bus: std::sync::Arc<dyn fleet_bus::Bus>) -> Result<(), fleet_bus::conformance::ConformanceFailure> {
//! use fleet_bus::conformance::{Topology, run_all};
//! run_all(bus, &Topology::default()).await
//! # }
//! ```

mod checks;
mod topology;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use topology::Topology;

use crate::{Bus, EntityPath, ReceiveOptions};

/// How long a receive that is expected to find nothing waits.
pub const QUIET_WAIT: Duration = Duration::from_millis(300);
/// How long a receive that is expected to find something (after a lock or TTL expiry) waits.
pub const EVENT_WAIT: Duration = Duration::from_secs(15);

/// A failed check: which one and what was observed.
#[derive(Debug)]
pub struct ConformanceFailure {
    /// The check's name.
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for ConformanceFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check {} failed: {}",
            self.check, self.message
        )
    }
}

impl std::error::Error for ConformanceFailure {}

/// What a check returns: `Err` carries what was observed.
pub type CheckResult = Result<(), String>;

type CheckFn =
    for<'a> fn(&'a dyn Bus, &'a Topology) -> Pin<Box<dyn Future<Output = CheckResult> + Send + 'a>>;

macro_rules! checks {
    ($($name:ident),* $(,)?) => {
        /// Every check, by name, in the order `run_all` runs them.
        pub const CHECKS: &[(&str, CheckFn)] = &[
            $((stringify!($name), |bus, topology| Box::pin(checks::$name(bus, topology)))),*
        ];
    };
}

checks!(
    round_trip_preserves_the_message,
    unknown_entity_is_entity_not_found,
    abandon_redelivers_with_modified_properties,
    settling_with_a_stale_or_foreign_token_is_lock_lost,
    expired_lock_redelivers_with_a_higher_delivery_count,
    max_delivery_count_dead_letters,
    dead_letter_keeps_body_and_properties,
    defer_then_receive_deferred,
    schedule_then_cancel,
    scheduled_message_arrives_when_due,
    renew_lock_extends_the_lock,
    topic_fans_out_by_filter,
    duplicate_detection_drops_a_repeated_message_id,
    receive_and_delete_removes_the_message,
    peek_does_not_lock,
    batch_is_atomic_and_size_limited,
    expired_message_is_dead_lettered,
    prefetch_locks_ahead,
    receivers_are_woken_by_sends,
);

/// Runs one check by name (after emptying the entities it uses).
pub async fn run_one(
    bus: &dyn Bus,
    topology: &Topology,
    name: &str,
) -> Result<(), ConformanceFailure> {
    let Some((check, f)) = CHECKS.iter().find(|(n, _)| *n == name) else {
        return Err(ConformanceFailure {
            check: "run_one",
            message: format!("no check named {name:?}"),
        });
    };
    let fail = |message: String| ConformanceFailure { check, message };
    drain_all(bus, topology).await.map_err(fail)?;
    f(bus, topology).await.map_err(fail)
}

/// Runs every check in order, stopping at the first failure.
pub async fn run_all(bus: Arc<dyn Bus>, topology: &Topology) -> Result<(), ConformanceFailure> {
    for (name, _) in CHECKS {
        run_one(bus.as_ref(), topology, name).await?;
    }
    Ok(())
}

/// Empties every receivable entity of the topology (and their dead-letter subqueues).
pub async fn drain_all(bus: &dyn Bus, t: &Topology) -> CheckResult {
    for path in t.receivable() {
        drain(bus, &path).await?;
        drain(bus, &path.dead_letter()).await?;
    }
    Ok(())
}

/// Deletes everything available or deferred in `path`.
pub async fn drain(bus: &dyn Bus, path: &EntityPath) -> CheckResult {
    let receiver = bus
        .receiver(path, ReceiveOptions::receive_and_delete())
        .await
        .map_err(|e| format!("receiver {path}: {e}"))?;
    loop {
        let got = receiver
            .receive(100, Duration::from_millis(50))
            .await
            .map_err(|e| format!("drain {path}: {e}"))?;
        if got.is_empty() {
            break;
        }
    }
    let peeked = receiver
        .peek(Some(0), 1000)
        .await
        .map_err(|e| format!("peek {path}: {e}"))?;
    let deferred: Vec<i64> = peeked
        .iter()
        .filter(|m| m.state == crate::MessageState::Deferred && m.locked_until.is_none())
        .map(|m| m.sequence_number)
        .collect();
    if !deferred.is_empty() {
        receiver
            .receive_deferred(&deferred)
            .await
            .map_err(|e| format!("drain deferred {path}: {e}"))?;
    }
    receiver
        .close()
        .await
        .map_err(|e| format!("close {path}: {e}"))
}
