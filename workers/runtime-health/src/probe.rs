//! Probing many services at once: every probe of every service goes through one bounded
//! stream, so the number of connections in flight never exceeds the configured concurrency.

use fleet_cloud::{HealthProber, ObservedService, ProbeResult};
use futures::StreamExt;

/// The probes of one service; `None` when the service does not expose that probe.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceProbes {
    /// The service.
    pub service_id: String,
    /// Liveness probe.
    pub liveness: Option<ProbeResult>,
    /// Readiness probe.
    pub readiness: Option<ProbeResult>,
    /// Dependency probes by dependency name.
    pub dependencies: Vec<(String, ProbeResult)>,
}

enum Slot {
    Liveness,
    Readiness,
    Dependency(String),
}

/// Probes every endpoint of `services` with at most `concurrency` probes in flight.
pub async fn probe_services(
    prober: &HealthProber,
    services: &[ObservedService],
    concurrency: usize,
) -> Vec<ServiceProbes> {
    let mut targets: Vec<(usize, Slot, String)> = Vec::new();
    for (i, s) in services.iter().enumerate() {
        if let Some(url) = &s.endpoints.liveness {
            targets.push((i, Slot::Liveness, url.clone()));
        }
        if let Some(url) = &s.endpoints.readiness {
            targets.push((i, Slot::Readiness, url.clone()));
        }
        for (name, url) in &s.endpoints.dependencies {
            targets.push((i, Slot::Dependency(name.clone()), url.clone()));
        }
    }
    // Each probe future owns its URL and a prober handle (clones share one connection pool), so
    // the stream is 'static and the handler future stays `Send`.
    let futures: Vec<_> = targets
        .iter()
        .map(|(_, _, url)| {
            let prober = prober.clone();
            let url = url.clone();
            async move { prober.probe(&url).await }
        })
        .collect();
    let results: Vec<ProbeResult> = futures::stream::iter(futures)
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut out: Vec<ServiceProbes> = services
        .iter()
        .map(|s| ServiceProbes {
            service_id: s.id.clone(),
            liveness: None,
            readiness: None,
            dependencies: Vec::new(),
        })
        .collect();
    for ((i, slot, _), result) in targets.into_iter().zip(results) {
        let Some(p) = out.get_mut(i) else { continue };
        match slot {
            Slot::Liveness => p.liveness = Some(result),
            Slot::Readiness => p.readiness = Some(result),
            Slot::Dependency(name) => p.dependencies.push((name, result)),
        }
    }
    out
}
