//! `fleet-e2e`: helpers for the end-to-end tests in `tests/tests/`, which run the whole fleet
//! in-process through [`fleet_local::up`] — the function `fleetctl up` calls — and check records,
//! event chains and dead-letter entries.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use fleet_envelope::Envelope;
use fleet_local::{Scenario, UpOptions, UpOutcome};
use uuid::Uuid;

/// The longest a whole run may take before the test fails (the target is well under 60 s).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the demo until idle in `dir`, with `publish` injected first; fails the test on error.
pub async fn run_demo(dir: &Path, publish: Option<&Path>) -> UpOutcome {
    let mut options = UpOptions::new(dir);
    options.scenario = Some(Scenario::Demo);
    options.until_idle = true;
    options.publish = publish.map(Path::to_path_buf);
    let run = fleet_local::up(options, std::future::pending(), None);
    match tokio::time::timeout(RUN_TIMEOUT, run).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => panic!("fleet failed: {e:?}"),
        Err(_) => panic!("fleet did not go idle within {RUN_TIMEOUT:?}"),
    }
}

/// Checks that every published event caused by another published event keeps its trigger's
/// traceId, correlationId, tenant and environment, and names it as causationId. Returns the
/// number of such hops.
pub fn check_chains(published: &[Envelope]) -> Result<usize, String> {
    let by_id: HashMap<Uuid, &Envelope> = published.iter().map(|e| (e.event_id, e)).collect();
    let mut hops = 0;
    for e in published {
        let Some(parent) = e.causation_id.and_then(|c| by_id.get(&c)) else {
            continue;
        };
        hops += 1;
        let what = format!(
            "{} {} caused by {} {}",
            e.event_type, e.event_id, parent.event_type, parent.event_id
        );
        if e.trace_id != parent.trace_id {
            return Err(format!(
                "{what}: traceId {} != {}",
                e.trace_id, parent.trace_id
            ));
        }
        if e.correlation_id != parent.correlation_id {
            return Err(format!(
                "{what}: correlationId {} != {}",
                e.correlation_id, parent.correlation_id
            ));
        }
        if e.tenant_id != parent.tenant_id || e.environment_id != parent.environment_id {
            return Err(format!("{what}: tenant or environment changed"));
        }
    }
    Ok(hops)
}

/// The published events of one chain (one correlationId), in publish order.
pub fn chain<'a>(published: &'a [Envelope], correlation: &str) -> Vec<&'a Envelope> {
    published
        .iter()
        .filter(|e| e.correlation_id == correlation)
        .collect()
}

/// The first event of `event_type` in `events` whose causationId is `cause`.
pub fn caused_by<'a>(
    events: &[&'a Envelope],
    event_type: &str,
    cause: Uuid,
) -> Option<&'a Envelope> {
    events
        .iter()
        .copied()
        .find(|e| e.event_type.as_str() == event_type && e.causation_id == Some(cause))
}
