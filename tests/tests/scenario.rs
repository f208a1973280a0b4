//! The demo scenario end to end, in-process, through the same function `fleetctl up` runs:
//! every step of the event-flow diagram settles, the records show what happened, and every
//! event chain keeps its traceId and correlationId with causationId linking each hop.

use fleet_e2e::{caused_by, chain, check_chains, run_demo};
use fleet_local::scenario::StepStatus;
use serde_json::Value;

fn record<'a>(records: &'a [fleet_local::records::ShownRecord], id: &str) -> &'a Value {
    &records
        .iter()
        .find(|r| r.record["id"] == id)
        .unwrap_or_else(|| panic!("no record {id}"))
        .record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_drives_every_path_of_the_event_flow_and_keeps_the_chains() {
    let dir = tempfile::tempdir().expect("temp dir");
    let outcome = run_demo(dir.path(), None).await;
    let s = &outcome.summary;

    // Every step whose workers are in the build ran to the end; none failed.
    for step in &s.steps {
        let needs_missing = s
            .missing_workers
            .iter()
            .any(|w| step.detail.contains(w.as_str()));
        let expected = if needs_missing {
            StepStatus::Skipped
        } else {
            StepStatus::Done
        };
        assert_eq!(step.status, expected, "step {}: {}", step.name, step.detail);
    }
    let names: Vec<&str> = s.steps.iter().map(|st| st.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "deploy",
            "health-and-scaling",
            "configuration",
            "secret-rotation",
            "drift"
        ]
    );
    assert!(
        s.dead_letters.is_empty(),
        "a clean demo dead-letters nothing: {:?}",
        s.dead_letters
    );

    // Records: the deployed service, its deployment, the synced configuration, health, drift.
    let services = &s.records["services"];
    assert_eq!(
        services.len(),
        9,
        "eight seeded services plus the deployed one"
    );
    let payments = record(services, "payments");
    assert_eq!(payments["image"], "fleetdemo.azurecr.io/payments:1.0.0");
    assert_eq!(payments["platform"], "containerapps");
    for platform in ["aks", "containerapps", "functions", "appservice"] {
        assert!(
            services.iter().any(|r| r.record["platform"] == platform),
            "a service on {platform}"
        );
    }
    let deployments = &s.records["deployments"];
    assert_eq!(record(deployments, "demo-payments-1")["state"], "Succeeded");
    assert!(
        deployments.iter().all(|d| d.record["state"] == "Succeeded"),
        "every rollout succeeded: {deployments:?}"
    );
    let config = record(&s.records["configs"], "orders-config");
    assert_eq!(config["latestVersion"], 2);
    assert_eq!(config["applied"]["orders-api"]["version"], 2);
    assert_eq!(
        s.records["health"].len(),
        9,
        "one latest health result per service"
    );
    let findings = &s.records["findings"];
    assert!(
        findings
            .iter()
            .any(|f| f.record["serviceId"] == "search" && f.record["kind"] == "image"),
        "the injected image drift became a finding: {findings:?}"
    );
    let cart_policy = record(&s.records["scaling"], "cart-autoscale");
    assert!(
        cart_policy["lastAction"]["toReplicas"].as_u64() > Some(2),
        "cart scaled out under load: {cart_policy}"
    );

    // Chains: every hop keeps traceId and correlationId and names its trigger.
    let published = outcome.flow.published();
    let hops = check_chains(&published).unwrap_or_else(|e| panic!("{e}"));
    // At least the hops asserted one by one below (deploy 2, configuration 3, scaling 1,
    // drift 1, rotation 2); timers add more, depending on timing.
    assert!(hops >= 9, "only {hops} hops observed");

    // deploy → completed → inventory updated, health re-evaluated.
    let deploy = chain(&published, "demo-deploy");
    let requested = deploy[0];
    assert_eq!(requested.event_type.as_str(), "RuntimeDeploymentRequested");
    assert_eq!(
        requested.causation_id, None,
        "a command from outside has no cause"
    );
    let completed = caused_by(&deploy, "RuntimeDeploymentCompleted", requested.event_id)
        .expect("the rollout completed");
    caused_by(&deploy, "RuntimeInventoryUpdated", completed.event_id)
        .expect("inventory recorded the deployment");
    assert!(deploy.iter().all(|e| e.trace_id == requested.trace_id));

    // configuration published → synced → redeployed → inventory.
    let cfg = chain(&published, "demo-configuration");
    let synced = caused_by(&cfg, "ConfigurationSynced", cfg[0].event_id).expect("synced");
    let redeployed =
        caused_by(&cfg, "RuntimeDeploymentCompleted", synced.event_id).expect("redeployed");
    caused_by(&cfg, "RuntimeInventoryUpdated", redeployed.event_id).expect("inventory updated");

    // health → scaling → inventory, started by the health timer.
    let scaled = published
        .iter()
        .find(|e| e.event_type.as_str() == "ScalingPolicyApplied" && e.data["serviceId"] == "cart")
        .expect("cart was scaled");
    let scaling_chain = chain(&published, &scaled.correlation_id);
    caused_by(&scaling_chain, "RuntimeInventoryUpdated", scaled.event_id)
        .expect("inventory recorded the new replica count");

    // drift finding → remediation → rollout completed.
    let finding = published
        .iter()
        .find(|e| {
            e.event_type.as_str() == "RuntimeDriftDetected" && e.data["serviceId"] == "search"
        })
        .expect("drift on search was detected");
    let drift_chain = chain(&published, &finding.correlation_id);
    let remediated = caused_by(&drift_chain, "RuntimeDeploymentCompleted", finding.event_id)
        .expect("the drift was remediated");
    assert_eq!(remediated.data["outcome"], "succeeded");
    assert_eq!(
        remediated.data["image"],
        "fleetdemo.azurecr.io/search:3.9.1"
    );

    // Secret rotation, when its worker is in the build.
    if !s.missing_workers.iter().any(|w| w == "secret-rotation") {
        let rot = chain(&published, "demo-secret-rotation");
        let rotated = caused_by(&rot, "SecretRotated", rot[0].event_id).expect("rotated");
        caused_by(&rot, "RuntimeDeploymentCompleted", rotated.event_id)
            .expect("bound services were redeployed");
    }
}
