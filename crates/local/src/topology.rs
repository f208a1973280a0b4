//! The fleet's Service Bus topology: `deploy/emulator/Config.json`, compiled in so `fleetctl up`
//! works from any directory. One topic, `fleet-events`; one subscription per worker with a
//! correlation rule on `Subject` per event type it consumes, plus the runtime's delayed-retry rule.

use fleet_emulator::{Filter, Topology};

use crate::error::{LocalError, LocalErrorKind};

/// The topology file as shipped.
pub const CONFIG_JSON: &str = include_str!("../../../deploy/emulator/Config.json");

/// The topic every worker publishes to and subscribes on.
pub const TOPIC: &str = "fleet-events";

/// The parsed topology.
pub fn topology() -> Result<Topology, LocalError> {
    Topology::from_json(CONFIG_JSON).map_err(|e| {
        LocalError::new(
            LocalErrorKind::Component,
            "deploy/emulator/Config.json is invalid",
        )
        .with_source(e)
    })
}

/// The subscriptions of the topic, by name.
pub fn subscriptions(topology: &Topology) -> Vec<String> {
    topology
        .topics
        .iter()
        .filter(|t| t.name == TOPIC)
        .flat_map(|t| t.subscriptions.iter().map(|s| s.name.clone()))
        .collect()
}

/// The event types (`Subject` rules) a subscription routes, sorted.
pub fn subscribed_types(topology: &Topology, subscription: &str) -> Vec<String> {
    let mut types: Vec<String> = topology
        .topics
        .iter()
        .filter(|t| t.name == TOPIC)
        .flat_map(|t| t.subscriptions.iter())
        .filter(|s| s.name == subscription)
        .flat_map(|s| s.rules.iter())
        .filter_map(|r| match &r.filter {
            Filter::Correlation(c) => c.subject.clone(),
            _ => None,
        })
        .collect();
    types.sort();
    types
}
