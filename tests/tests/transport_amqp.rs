//! The demo with every worker message crossing the AMQP wire: the same outcome as in-process.

use std::net::SocketAddr;

use fleet_e2e::{RUN_TIMEOUT, run_demo};
use fleet_local::scenario::StepStatus;
use fleet_local::{Scenario, Transport, UpOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_over_amqp_completes_like_the_in_process_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut options = UpOptions::new(dir.path());
    options.scenario = Some(Scenario::Demo);
    options.until_idle = true;
    options.transport = Transport::Amqp;
    options.listen = SocketAddr::from(([127, 0, 0, 160], 5672));
    let run = fleet_local::up(options, std::future::pending(), None);
    let amqp = match tokio::time::timeout(RUN_TIMEOUT, run).await {
        Ok(Ok(outcome)) => outcome.summary,
        Ok(Err(e)) => panic!("fleet over AMQP failed: {e:?}"),
        Err(_) => panic!("fleet over AMQP did not go idle within {RUN_TIMEOUT:?}"),
    };

    for step in &amqp.steps {
        assert_ne!(
            step.status,
            StepStatus::Failed,
            "step {}: {}",
            step.name,
            step.detail
        );
    }
    assert!(
        amqp.steps.iter().any(|s| s.status == StepStatus::Done),
        "steps ran: {:?}",
        amqp.steps
    );
    assert!(
        amqp.dead_letters.is_empty(),
        "a clean demo over AMQP dead-letters nothing: {:?}",
        amqp.dead_letters
    );

    let other = tempfile::tempdir().expect("temp dir");
    let local = run_demo(other.path(), None).await.summary;
    // Drift findings are left out of the exact comparison: whether a drift pass catches a
    // service between two steps of the scenario depends on timing, in-process as well. Each such
    // finding is remediated by one deployment, so deployments are compared net of the findings
    // beyond the injected one. The injected image drift must be found either way.
    let counts = |s: &fleet_local::Summary| -> Vec<(String, usize)> {
        let extra_findings = s.records["findings"]
            .iter()
            .filter(|f| !(f.record["serviceId"] == "search" && f.record["kind"] == "image"))
            .count();
        s.records
            .iter()
            .filter(|(k, _)| k.as_str() != "findings")
            .map(|(k, v)| {
                let n = if k == "deployments" {
                    v.len().saturating_sub(extra_findings)
                } else {
                    v.len()
                };
                (k.clone(), n)
            })
            .collect()
    };
    for (how, s) in [("over AMQP", &amqp), ("in-process", &local)] {
        let findings = &s.records["findings"];
        assert!(
            findings
                .iter()
                .any(|f| f.record["serviceId"] == "search" && f.record["kind"] == "image"),
            "{how}, the injected image drift became a finding: {findings:?}"
        );
    }
    assert_eq!(
        counts(&amqp),
        counts(&local),
        "the same records over AMQP as in-process"
    );
    let statuses = |s: &fleet_local::Summary| -> Vec<StepStatus> {
        s.steps.iter().map(|st| st.status).collect()
    };
    assert_eq!(statuses(&amqp), statuses(&local));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_or_unusable_listen_address_is_refused_by_name() {
    let busy = SocketAddr::from(([127, 0, 0, 161], 5672));
    let _held = tokio::net::TcpListener::bind(busy)
        .await
        .expect("holding the address");
    for (listen, says) in [
        (busy, "cannot bind the AMQP listener on 127.0.0.161:5672"),
        (
            SocketAddr::from(([127, 0, 0, 162], 5673)),
            "--listen 127.0.0.162:5673 must be a loopback address on port 5672",
        ),
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut options = UpOptions::new(dir.path());
        options.until_idle = true;
        options.transport = Transport::Amqp;
        options.listen = listen;
        let run = fleet_local::up(options, std::future::pending(), None);
        match tokio::time::timeout(RUN_TIMEOUT, run).await {
            Ok(Err(e)) => assert!(e.to_string().contains(says), "{e}"),
            Ok(Ok(_)) => panic!("the fleet ran with --listen {listen}"),
            Err(_) => panic!("the fleet with --listen {listen} neither ran nor failed"),
        }
    }
}
