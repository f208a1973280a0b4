//! Without `--until-idle` the fleet runs until its shutdown future completes (Ctrl-C in
//! `fleetctl up`), then drains every worker through the runtime and still reports.

use std::sync::{Arc, Mutex};

use fleet_e2e::RUN_TIMEOUT;
use fleet_local::observe::FlowEvent;
use fleet_local::{FlowSink, Scenario, UpOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_mid_scenario_drains_the_workers_and_returns_a_summary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let tx = Arc::new(Mutex::new(Some(tx)));
    // Stop as soon as the deploy command has been handled: work is still in flight then.
    let sink: FlowSink = Arc::new(move |e: &FlowEvent| {
        if let FlowEvent::Settled { worker, .. } = e
            && worker == "runtime-deployment"
            && let Some(tx) = tx.lock().ok().and_then(|mut t| t.take())
        {
            let _ = tx.send(());
        }
    });
    let mut options = UpOptions::new(dir.path());
    options.scenario = Some(Scenario::Demo);
    let run = fleet_local::up(
        options,
        async {
            let _ = rx.await;
        },
        Some(sink),
    );
    let outcome = tokio::time::timeout(RUN_TIMEOUT, run)
        .await
        .expect("the fleet stops when told to")
        .expect("a clean drain");
    let s = &outcome.summary;
    assert!(
        s.steps.is_empty(),
        "the scenario was interrupted: {:?}",
        s.steps
    );
    let deploy = s
        .workers
        .iter()
        .find(|w| w.name == "runtime-deployment")
        .expect("worker");
    assert!(deploy.handled >= 1);
    assert!(
        s.workers.iter().all(|w| w.dead_lettered == 0),
        "a shutdown never dead-letters"
    );
    assert_eq!(
        s.records["deployments"].len(),
        1,
        "the handled deploy committed"
    );
}
