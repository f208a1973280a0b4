//! Bad input through `--publish` while the demo runs: every kind ends in a dead-letter queue
//! with its reason and no handler acts on it; a duplicate eventId is completed as a dedupe hit
//! and not handled again; the fleet keeps going and goes idle.

use std::collections::BTreeMap;

use fleet_e2e::run_demo;
use fleet_envelope::{Envelope, EventType, examples};
use fleet_local::observe::{FlowEvent, Outcome};
use fleet_local::seed::{ENVIRONMENT, TENANT};
use serde_json::json;

fn line(mut env: Envelope, edit: impl FnOnce(&mut Envelope)) -> (Envelope, String) {
    env.tenant_id = TENANT.to_owned();
    env.environment_id = ENVIRONMENT.to_owned();
    env.event_id = uuid::Uuid::now_v7();
    edit(&mut env);
    let text = String::from_utf8(env.encode()).expect("utf-8");
    (env, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_dead_lettered_with_its_reason_and_duplicates_are_not_rehandled() {
    let inventory = examples::sample_envelope(EventType::RuntimeInventoryUpdated);
    let (dup, dup_line) = line(inventory, |e| {
        let mut data = e.data.to_value();
        data["serviceId"] = json!("catalog");
        e.data = data.into();
        e.subject = Some("services/catalog".into());
    });
    let (mismatch, mismatch_line) = line(
        examples::sample_envelope(EventType::ConfigurationPublished),
        |e| e.tenant_id = "fabrikam".into(),
    );
    let (unknown_env, unknown_env_line) = line(
        examples::sample_envelope(EventType::ConfigurationPublished),
        |e| e.environment_id = "staging".into(),
    );
    let (unconsumed, unconsumed_line) = line(
        examples::sample_envelope(EventType::SecretRotationFailed),
        |_| {},
    );
    let mut unknown_type: serde_json::Value = serde_json::from_str(&mismatch_line).expect("json");
    unknown_type["eventType"] = json!("RuntimeExploded");
    unknown_type["tenantId"] = json!(TENANT);
    let file_text = [
        "this is not json at all \u{1}\u{2}".to_owned(),
        r#"{"eventType":"ConfigurationPublished","eventId":"not-a-uuid"}"#.to_owned(),
        unknown_type.to_string(),
        unconsumed_line,
        mismatch_line,
        unknown_env_line,
        dup_line.clone(),
        dup_line,
    ]
    .join("\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, file_text).expect("write input");
    let data = dir.path().join("fleet");
    let outcome = run_demo(&data, Some(&input)).await;
    let s = &outcome.summary;

    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for d in &s.dead_letters {
        *reasons.entry(d.reason.clone()).or_default() += 1;
    }
    assert_eq!(
        reasons,
        BTreeMap::from([
            ("MalformedEnvelope".to_owned(), 3),
            ("TenantMismatch".to_owned(), 1),
            ("UnknownEnvironment".to_owned(), 1),
            ("UnsupportedEventType".to_owned(), 1),
        ]),
        "{:#?}",
        s.dead_letters
    );
    let by_event = |id: uuid::Uuid| s.dead_letters.iter().find(|d| d.event_id == Some(id));
    let m = by_event(mismatch.event_id).expect("the tenant mismatch is dead-lettered");
    assert_eq!(
        (m.reason.as_str(), m.subscription.as_str()),
        ("TenantMismatch", "configuration-sync")
    );
    assert_eq!(m.worker.as_deref(), Some("configuration-sync"));
    let u = by_event(unknown_env.event_id).expect("the unknown environment is dead-lettered");
    assert_eq!(u.reason, "UnknownEnvironment");
    let t = by_event(unconsumed.event_id).expect("the unconsumed type reaches the front door");
    assert_eq!(
        (t.reason.as_str(), t.subscription.as_str()),
        ("UnsupportedEventType", "runtime-deployment")
    );
    assert!(
        s.dead_letters
            .iter()
            .all(|d| d.event_id != Some(dup.event_id)),
        "a duplicate is never dead-lettered"
    );

    // No handler ran for rejected input: nothing was emitted in their name.
    let published = outcome.flow.published();
    for rejected in [mismatch.event_id, unknown_env.event_id, unconsumed.event_id] {
        assert!(published.iter().all(|e| e.causation_id != Some(rejected)));
    }

    // The duplicate was handled once per consuming worker and then completed as a dedupe hit.
    let mut handled: BTreeMap<String, usize> = BTreeMap::new();
    let mut duplicates: BTreeMap<String, usize> = BTreeMap::new();
    for e in outcome.flow.events() {
        if let FlowEvent::Settled {
            worker,
            message,
            outcome,
            ..
        } = e
            && message.event_id == Some(dup.event_id)
        {
            match outcome {
                Outcome::Handled => *handled.entry(worker).or_default() += 1,
                Outcome::Duplicate => *duplicates.entry(worker).or_default() += 1,
                // A transient failure (e.g. a write conflict with a timer pass) retries later;
                // whichever copy commits first wins, the other is the dedupe hit.
                Outcome::RetryScheduled => {}
                other => panic!("unexpected outcome {other:?} for the duplicate at {worker}"),
            }
        }
    }
    let consumers = BTreeMap::from([
        ("drift-detection".to_owned(), 1),
        ("runtime-health".to_owned(), 1),
    ]);
    assert_eq!(handled, consumers);
    assert_eq!(duplicates, consumers);
    assert!(
        s.dedupe_hits >= 2,
        "dedupe hits are counted: {}",
        s.dedupe_hits
    );
    let health = s
        .workers
        .iter()
        .find(|w| w.name == "runtime-health")
        .expect("health runs");
    assert!(health.dedupe_hits >= 1);

    // The fleet kept going: the scenario still completed.
    assert!(s.scenario_ok(), "{:#?}", s.steps);
}
