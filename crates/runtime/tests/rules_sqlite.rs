//! The consumer rules of DESIGN §4, at least one test each, on SQLite with the in-process bus
//! and a fake clock. Assertions read records, emitted events and the dead-letter queue.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::scenarios;
use common::*;
use fleet_bus::{Message, PropertyValue, ReceivedMessage};
use fleet_envelope::examples::sample_envelope;
use fleet_envelope::{EventType, emitted_event_id};
use fleet_runtime::HandlerErrorKind;
use fleet_testkit::{Fault, FaultPlan, Harness};

async fn harness(subscribed: &[EventType]) -> Harness {
    let h = Harness::sqlite(WORKER, subscribed).await.expect("harness");
    h.bind_tenant(ENVIRONMENT, TENANT).await.expect("bind");
    h
}

async fn one_dead_letter(h: &Harness) -> ReceivedMessage {
    h.wait_until("a dead-letter entry", WAIT, || async {
        !h.dead_letters().await.unwrap().is_empty()
    })
    .await
    .unwrap();
    let mut dl = h.dead_letters().await.unwrap();
    assert_eq!(dl.len(), 1, "exactly one dead-letter entry");
    dl.remove(0)
}

fn prop<'a>(m: &'a ReceivedMessage, key: &str) -> Option<&'a PropertyValue> {
    m.message.application_properties.get(key)
}

fn s(v: &str) -> PropertyValue {
    PropertyValue::String(v.to_owned())
}

async fn run<F: std::future::Future<Output = ()>>(test: F) {
    tokio::time::timeout(TEST_TIMEOUT, test)
        .await
        .expect("test timed out");
}

#[tokio::test]
async fn rule_1_malformed_envelope_is_dead_lettered_with_raw_body() {
    run(async {
        let h = harness(&[INPUT]).await;
        let ports = Arc::new(Ports::default());
        let running = h.start(h.worker(definition(), h.config(), ports.clone()));
        let raw = Bytes::from_static(b"{\"eventId\": 42, not json");
        let msg = Message::new(raw.clone())
            .with_subject(INPUT.as_str())
            .with_property("x-origin", "probe-test");
        h.publish_message(msg).await.unwrap();
        let dl = one_dead_letter(&h).await;
        running.stop(WAIT).await.unwrap();
        assert_eq!(dl.dead_letter_reason.as_deref(), Some("MalformedEnvelope"));
        assert!(
            !dl.dead_letter_description
                .clone()
                .unwrap_or_default()
                .is_empty()
        );
        assert_eq!(dl.message.body, raw, "the original bytes are kept");
        assert_eq!(
            prop(&dl, "x-origin"),
            Some(&s("probe-test")),
            "original properties are kept"
        );
        assert_eq!(dl.message.subject.as_deref(), Some(INPUT.as_str()));
        assert_eq!(
            prop(&dl, fleet_runtime::PROP_DEAD_LETTER_WORKER),
            Some(&s(WORKER))
        );
        assert_eq!(
            prop(&dl, fleet_runtime::PROP_ATTEMPTS),
            Some(&PropertyValue::Int(1))
        );
        assert_eq!(ports.runs(), 0);
        assert!(notes(&h.store).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn rule_2_unsupported_event_type_is_dead_lettered() {
    run(async {
        let other = EventType::SecretRotated;
        let h = harness(&[INPUT, other]).await;
        let running = h.start(h.worker(definition(), h.config(), Arc::new(Ports::default())));
        let mut env = sample_envelope(other);
        env.event_id = uuid::Uuid::new_v4();
        h.publish(&env).await.unwrap();
        let dl = one_dead_letter(&h).await;
        let stats = running.stats.clone();
        running.stop(WAIT).await.unwrap();
        assert_eq!(
            dl.dead_letter_reason.as_deref(),
            Some("UnsupportedEventType")
        );
        assert!(
            dl.dead_letter_description
                .unwrap_or_default()
                .contains("SecretRotated")
        );
        assert_eq!(dl.message.body.as_ref(), env.encode().as_slice());
        assert_eq!(stats.snapshot().handled, 0);
        assert!(notes(&h.store).await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn rule_3_tenant_mismatch_never_reaches_handler() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new();
        let worker = h.worker(
            definition(),
            h.config(),
            Arc::new(Ports::with_plan(plan.clone())),
        );
        let running = h.start(worker);
        let mut env = input("services/svc-1");
        env.tenant_id = "tenant-fabrikam".into();
        h.publish(&env).await.unwrap();
        let dl = one_dead_letter(&h).await;
        running.stop(WAIT).await.unwrap();
        assert_eq!(dl.dead_letter_reason.as_deref(), Some("TenantMismatch"));
        assert_eq!(plan.calls(), 0, "the handler never ran");
        assert!(notes(&h.store).await.is_empty());
        assert!(h.emitted().await.unwrap().is_empty());
        assert_eq!(
            prop(&dl, "tenantId"),
            Some(&s("tenant-fabrikam")),
            "original properties are kept"
        );
    })
    .await;
}

#[tokio::test]
async fn rule_3_unknown_environment_is_dead_lettered() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new();
        let running = h.start(h.worker(
            definition(),
            h.config(),
            Arc::new(Ports::with_plan(plan.clone())),
        ));
        let mut env = input("services/svc-1");
        env.environment_id = "env-nowhere".into();
        h.publish(&env).await.unwrap();
        let dl = one_dead_letter(&h).await;
        running.stop(WAIT).await.unwrap();
        assert_eq!(dl.dead_letter_reason.as_deref(), Some("UnknownEnvironment"));
        assert_eq!(plan.calls(), 0);
    })
    .await;
}

#[tokio::test]
async fn rule_4_duplicate_delivery_runs_handler_once() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new();
        let running = h.start(h.worker(
            definition(),
            h.config(),
            Arc::new(Ports::with_plan(plan.clone())),
        ));
        let env = input("services/svc-1");
        h.publish(&env).await.unwrap();
        h.publish(&env).await.unwrap();
        let stats = running.stats.clone();
        h.wait_until("both deliveries settled", WAIT, || {
            let s = stats.snapshot();
            async move { s.handled + s.dedupe_hits == 2 }
        })
        .await
        .unwrap();
        h.wait_until("one event emitted", WAIT, || async {
            h.emitted().await.unwrap().len() == 1
        })
        .await
        .unwrap();
        running.stop(WAIT).await.unwrap();
        assert_eq!(plan.calls(), 1, "the handler ran once");
        assert_eq!(stats.snapshot().dedupe_hits, 1);
        assert_eq!(notes(&h.store).await.len(), 1);
        assert_eq!(h.emitted().await.unwrap().len(), 1);
        assert!(h.dead_letters().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn rule_4_duplicate_delivery_runs_once_across_two_replicas() {
    run(async {
        let h = harness(&[INPUT]).await;
        scenarios::duplicate_delivery_runs_once_across_replicas(&h).await;
    })
    .await;
}

#[tokio::test]
async fn rule_5_work_under_a_recorded_idempotency_key_is_a_noop() {
    run(async {
        let h = harness(&[INPUT]).await;
        let ports = Arc::new(Ports::default());
        *ports.idempotency_key.lock() = Some("deployment-7/step-2".into());
        let running = h.start(h.worker(definition(), h.config(), ports));
        // Two different events asking for the same piece of work.
        h.publish(&input("services/svc-1")).await.unwrap();
        let stats = running.stats.clone();
        h.wait_until("first handled", WAIT, || {
            let s = stats.snapshot();
            async move { s.handled == 1 }
        })
        .await
        .unwrap();
        h.publish(&input("services/svc-1")).await.unwrap();
        h.wait_until("second handled", WAIT, || {
            let s = stats.snapshot();
            async move { s.handled == 2 }
        })
        .await
        .unwrap();
        h.wait_until("first event published", WAIT, || async {
            h.emitted().await.unwrap().len() == 1
        })
        .await
        .unwrap();
        running.stop(WAIT).await.unwrap();
        assert_eq!(notes(&h.store).await.len(), 1, "the work was done once");
        assert_eq!(h.emitted().await.unwrap().len(), 1, "and emitted once");
        assert!(
            h.store
                .idempotency_key(WORKER, "deployment-7/step-2")
                .await
                .unwrap()
                .is_some()
        );
    })
    .await;
}

#[tokio::test]
async fn rule_6_failed_run_commits_nothing() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new().always(Fault::Fail(HandlerErrorKind::Permanent));
        let running = h.start(h.worker(definition(), h.config(), Arc::new(Ports::with_plan(plan))));
        let env = input("services/svc-1");
        h.publish(&env).await.unwrap();
        one_dead_letter(&h).await;
        running.stop(WAIT).await.unwrap();
        assert!(notes(&h.store).await.is_empty());
        assert_eq!(h.store.pending_outbox().await.unwrap(), 0);
        assert!(!h.store.inbox_contains(WORKER, env.event_id).await.unwrap());
        assert!(h.emitted().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn rule_6_crash_after_commit_publishes_outbox_once_with_same_ids() {
    run(async {
        let h = harness(&[INPUT]).await;
        scenarios::crash_after_commit_publishes_outbox_once(&h).await;
    })
    .await;
}

#[tokio::test]
async fn rule_7_transient_failure_retries_with_backoff_then_dead_letters() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new().always(Fault::Fail(HandlerErrorKind::Transient));
        let running = h.start(h.worker(
            definition(),
            h.config(),
            Arc::new(Ports::with_plan(plan.clone())),
        ));
        let env = input("services/svc-1");
        h.publish(&env).await.unwrap();
        for attempt in 1..=3 {
            h.wait_until("the next attempt", WAIT, || {
                let calls = plan.calls();
                async move { calls == attempt }
            })
            .await
            .unwrap();
            // Retry delays run on the fake clock (cap 1 s in the harness config).
            h.clock.advance(Duration::from_secs(2));
        }
        let dl = one_dead_letter(&h).await;
        let stats = running.stats.clone();
        running.stop(WAIT).await.unwrap();
        assert_eq!(plan.calls(), 3, "max attempts, no more");
        assert_eq!(stats.snapshot().retried, 2);
        assert_eq!(dl.dead_letter_reason.as_deref(), Some("MaxRetriesExceeded"));
        assert_eq!(
            dl.message.body.as_ref(),
            env.encode().as_slice(),
            "original body"
        );
        assert_eq!(
            prop(&dl, "tenantId"),
            Some(&s(TENANT)),
            "original properties"
        );
        assert_eq!(prop(&dl, "eventType"), Some(&s(INPUT.as_str())));
        assert_eq!(
            prop(&dl, fleet_runtime::PROP_ATTEMPTS),
            Some(&PropertyValue::Int(3))
        );
        assert_eq!(
            prop(&dl, fleet_runtime::PROP_DEAD_LETTER_WORKER),
            Some(&s(WORKER))
        );
        let (Some(PropertyValue::Timestamp(first)), Some(PropertyValue::Timestamp(last))) = (
            prop(&dl, fleet_runtime::PROP_FIRST_FAILURE),
            prop(&dl, fleet_runtime::PROP_LAST_FAILURE),
        ) else {
            panic!(
                "failure times missing: {:?}",
                dl.message.application_properties
            )
        };
        assert!(last > first, "first failure {first} precedes last {last}");
        let Some(PropertyValue::String(last_error)) = prop(&dl, fleet_runtime::PROP_LAST_ERROR)
        else {
            panic!("last error missing")
        };
        assert!(
            last_error.contains("injected fault on call 3"),
            "{last_error}"
        );
        assert!(notes(&h.store).await.is_empty());
        assert!(h.emitted().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn rule_7_transient_failure_then_success_commits_once() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new().on_call(
            1,
            Fault::Fail(HandlerErrorKind::Throttled {
                retry_after: Duration::from_secs(5),
            }),
        );
        let running = h.start(h.worker(
            definition(),
            h.config(),
            Arc::new(Ports::with_plan(plan.clone())),
        ));
        let env = input("services/svc-1");
        h.publish(&env).await.unwrap();
        let stats = running.stats.clone();
        h.wait_until("a retry is scheduled", WAIT, || {
            let s = stats.snapshot();
            async move { s.retried == 1 }
        })
        .await
        .unwrap();
        // Throttled: the copy waits for Retry-After (5 s) on the fake clock.
        h.clock.advance(Duration::from_secs(4));
        assert_eq!(plan.calls(), 1);
        h.clock.advance(Duration::from_secs(2));
        h.wait_until("handled on the retry", WAIT, || {
            let s = stats.snapshot();
            async move { s.handled == 1 }
        })
        .await
        .unwrap();
        h.wait_until("published", WAIT, || async {
            h.emitted().await.unwrap().len() == 1
        })
        .await
        .unwrap();
        running.stop(WAIT).await.unwrap();
        assert_eq!(plan.calls(), 2);
        assert_eq!(notes(&h.store).await.len(), 1);
        assert_eq!(
            h.emitted().await.unwrap()[0].event_id,
            emitted_event_id(env.event_id, WORKER, 0)
        );
        assert!(h.dead_letters().await.unwrap().is_empty());
        assert!(
            h.pending().await.unwrap().is_empty(),
            "the original was completed"
        );
    })
    .await;
}

#[tokio::test]
async fn rule_7_permanent_failure_is_dead_lettered_as_rejected() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new().always(Fault::Fail(HandlerErrorKind::Permanent));
        let running = h.start(h.worker(
            definition(),
            h.config(),
            Arc::new(Ports::with_plan(plan.clone())),
        ));
        h.publish(&input("services/svc-1")).await.unwrap();
        let dl = one_dead_letter(&h).await;
        running.stop(WAIT).await.unwrap();
        assert_eq!(dl.dead_letter_reason.as_deref(), Some("HandlerRejected"));
        assert_eq!(plan.calls(), 1, "never retried");
        assert_eq!(
            prop(&dl, fleet_runtime::PROP_ATTEMPTS),
            Some(&PropertyValue::Int(1))
        );
    })
    .await;
}

#[tokio::test]
async fn rule_8_trace_and_correlation_propagate_to_emitted_events() {
    run(async {
        let h = harness(&[INPUT]).await;
        let running = h.start(h.worker(definition(), h.config(), Arc::new(Ports::default())));
        let env = input("services/svc-1");
        h.publish(&env).await.unwrap();
        h.wait_until("published", WAIT, || async {
            h.emitted().await.unwrap().len() == 1
        })
        .await
        .unwrap();
        running.stop(WAIT).await.unwrap();
        let out = h.emitted().await.unwrap().remove(0);
        assert_eq!(out.trace_id, env.trace_id);
        assert_eq!(out.correlation_id, env.correlation_id);
        assert_eq!(out.causation_id, Some(env.event_id));
        assert_eq!(
            (out.tenant_id.as_str(), out.environment_id.as_str()),
            (TENANT, ENVIRONMENT)
        );
        assert_eq!(out.source, format!("/workers/{WORKER}"));
        assert_eq!(out.event_type, OUTPUT);
        let msg = h.emitted_messages().await.unwrap().remove(0);
        assert_eq!(
            msg.message.correlation_id.as_deref(),
            Some(env.correlation_id.as_str())
        );
        let Some(PropertyValue::String(traceparent)) = prop(&msg, "traceparent") else {
            panic!("no traceparent on the emitted message")
        };
        assert!(
            traceparent.starts_with(&format!("00-{}-", env.trace_id)),
            "{traceparent}"
        );
        assert_eq!(prop(&msg, "Diagnostic-Id"), Some(&s(traceparent)));
    })
    .await;
}

#[tokio::test]
async fn rule_9_same_ordering_key_never_runs_concurrently() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new().always(Fault::Delay(Duration::from_millis(15)));
        let ports = Arc::new(Ports::with_plan(plan));
        let running = h.start(h.worker(definition(), h.config(), ports.clone()));
        for i in 0..12 {
            let subject = if i % 2 == 0 {
                "services/a"
            } else {
                "services/b"
            };
            h.publish(&input(subject)).await.unwrap();
        }
        let stats = running.stats.clone();
        h.wait_until("all handled", WAIT, || {
            let s = stats.snapshot();
            async move { s.handled == 12 }
        })
        .await
        .unwrap();
        running.stop(WAIT).await.unwrap();
        let max = ports.max_inside_per_key.lock().clone();
        assert_eq!(max.get("tenant-contoso/services/a"), Some(&1), "{max:?}");
        assert_eq!(max.get("tenant-contoso/services/b"), Some(&1), "{max:?}");
        // Different keys did overlap, so the per-key bound is not an accident of a serial run.
        assert!(ports.max_inside.load(Ordering::SeqCst) >= 2);
        assert_eq!(notes(&h.store).await.len(), 12);
    })
    .await;
}

#[tokio::test]
async fn rule_9_in_flight_messages_are_bounded() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new().always(Fault::Delay(Duration::from_millis(10)));
        let ports = Arc::new(Ports::with_plan(plan));
        let mut config = h.config();
        config.max_in_flight = 2;
        let running = h.start(h.worker(definition(), config, ports.clone()));
        for i in 0..8 {
            h.publish(&input(&format!("services/svc-{i}")))
                .await
                .unwrap();
        }
        let stats = running.stats.clone();
        h.wait_until("all handled", WAIT, || {
            let s = stats.snapshot();
            async move { s.handled == 8 }
        })
        .await
        .unwrap();
        running.stop(WAIT).await.unwrap();
        let max = ports.max_inside.load(Ordering::SeqCst);
        assert!((1..=2).contains(&max), "at most 2 in flight, saw {max}");
    })
    .await;
}

#[tokio::test]
async fn rule_9_long_handler_renews_its_lock() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new().on_call(1, Fault::Block);
        let ports = Arc::new(Ports::with_plan(plan.clone()));
        let running = h.start(h.worker(definition(), h.config(), ports.clone()));
        h.publish(&input("services/svc-1")).await.unwrap();
        h.wait_until("the handler started", WAIT, || async { plan.calls() == 1 })
            .await
            .unwrap();
        let stats = running.stats.clone();
        // The lock lasts 60 s; the runtime renews once two thirds of it have passed.
        for renewals in 1..=2u64 {
            h.clock.advance(Duration::from_secs(45));
            h.wait_until("a lock renewal", WAIT, || {
                let s = stats.snapshot();
                async move { s.lock_renewals >= renewals }
            })
            .await
            .unwrap();
        }
        // 90 s in: well past the first lock, still ours.
        plan.release();
        h.wait_until("handled", WAIT, || {
            let s = stats.snapshot();
            async move { s.handled == 1 }
        })
        .await
        .unwrap();
        running.stop(WAIT).await.unwrap();
        assert_eq!(plan.calls(), 1, "never redelivered");
        assert_eq!(stats.snapshot().dedupe_hits, 0);
        assert!(h.pending().await.unwrap().is_empty(), "completed");
        assert!(h.dead_letters().await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn rule_10_timer_window_runs_once_across_two_replicas() {
    run(async {
        let h = harness(&[INPUT]).await;
        scenarios::timer_window_runs_once_across_replicas(&h).await;
    })
    .await;
}

#[tokio::test]
async fn rule_11_shutdown_finishes_in_flight_and_dead_letters_nothing() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new().on_call(1, Fault::Block);
        let ports = Arc::new(Ports::with_plan(plan.clone()));
        let mut running = h.start(h.worker(definition(), h.config(), ports.clone()));
        let first = input("services/svc-1");
        h.publish(&first).await.unwrap();
        h.wait_until("the handler started", WAIT, || async { plan.calls() == 1 })
            .await
            .unwrap();
        let stats = running.stats.clone();
        running.begin_shutdown();
        h.wait_until("draining", WAIT, || {
            let d = stats.is_draining();
            async move { d }
        })
        .await
        .unwrap();
        let second = input("services/svc-2");
        h.publish(&second).await.unwrap();
        plan.release();
        running.stop(WAIT).await.unwrap();
        assert_eq!(
            stats.snapshot().handled,
            1,
            "the in-flight message finished"
        );
        assert_eq!(notes(&h.store).await.len(), 1);
        let emitted = h.emitted().await.unwrap();
        assert_eq!(emitted.len(), 1, "the outbox was flushed before exit");
        assert_eq!(emitted[0].causation_id, Some(first.event_id));
        assert!(h.dead_letters().await.unwrap().is_empty());
        let pending = h.pending().await.unwrap();
        assert_eq!(
            pending.len(),
            1,
            "the message that arrived while draining waits for the next replica"
        );
        assert_eq!(
            pending[0].message.message_id,
            Some(second.event_id.to_string())
        );
    })
    .await;
}

#[tokio::test]
async fn rule_11_grace_expiry_abandons_and_never_dead_letters() {
    run(async {
        let h = harness(&[INPUT]).await;
        let plan = FaultPlan::new().always(Fault::Block);
        let ports = Arc::new(Ports::with_plan(plan.clone()));
        let mut config = h.config();
        config.shutdown_grace = Duration::from_millis(200);
        let running = h.start(h.worker(definition(), config, ports.clone()));
        let env = input("services/svc-1");
        h.publish(&env).await.unwrap();
        h.wait_until("the handler started", WAIT, || async { plan.calls() == 1 })
            .await
            .unwrap();
        let stats = running.stats.clone();
        running.stop(WAIT).await.unwrap();
        assert_eq!(stats.snapshot().abandoned, 1);
        assert!(h.dead_letters().await.unwrap().is_empty());
        assert!(notes(&h.store).await.is_empty());
        let pending = h.pending().await.unwrap();
        assert_eq!(pending.len(), 1, "abandoned back to the subscription");
        assert_eq!(
            pending[0].message.message_id,
            Some(env.event_id.to_string())
        );
        plan.release();
    })
    .await;
}
