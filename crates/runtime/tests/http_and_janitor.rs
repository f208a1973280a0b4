//! The per-replica HTTP endpoints and the janitor.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use fleet_envelope::examples::sample_payload;
use fleet_runtime::{RuntimeConfig, purge_once};
use fleet_store::UnitOfWork;
use fleet_testkit::{Fault, FaultPlan, Harness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn readyz_turns_503_while_draining_and_metrics_render() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let h = Harness::sqlite(WORKER, &[INPUT]).await.unwrap();
        h.bind_tenant(ENVIRONMENT, TENANT).await.unwrap();
        let plan = FaultPlan::new().on_call(1, Fault::Block);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let worker = h
            .worker(
                definition(),
                h.config(),
                Arc::new(Ports::with_plan(plan.clone())),
            )
            .with_http_listener(listener);
        let mut running = h.start(worker);
        assert_eq!(get(addr, "/healthz").await.0, 200);
        h.wait_until("ready", WAIT, || async {
            get(addr, "/readyz").await.0 == 200
        })
        .await
        .unwrap();

        h.publish(&input("services/svc-1")).await.unwrap();
        h.wait_until("in flight", WAIT, || async { plan.calls() == 1 })
            .await
            .unwrap();
        running.begin_shutdown();
        h.wait_until("not ready while draining", WAIT, || async {
            get(addr, "/readyz").await.0 == 503
        })
        .await
        .unwrap();
        assert_eq!(
            get(addr, "/healthz").await.0,
            200,
            "still alive while draining"
        );
        let (status, metrics) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(metrics.contains("fleet_"), "{metrics}");
        plan.release();
        running.stop(WAIT).await.unwrap();
    })
    .await
    .expect("test timed out");
}

fn emitted_id(env: &fleet_envelope::Envelope, ordinal: u32) -> uuid::Uuid {
    fleet_envelope::emitted_event_id(env.event_id, WORKER, ordinal)
}

#[tokio::test]
async fn janitor_purges_rows_older_than_the_windows_only() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let h = Harness::sqlite(WORKER, &[INPUT]).await.unwrap();
        let now = h.clock.now();
        let old = now - chrono::Duration::days(8);
        let recent = now - chrono::Duration::days(6);
        for (at, id) in [(old, uuid::Uuid::new_v4()), (recent, uuid::Uuid::new_v4())] {
            let mut unit = UnitOfWork::default();
            unit.set_inbox(WORKER, id, at);
            unit.add_idempotency_key(WORKER, &format!("key-{id}"), serde_json::Value::Null, at);
            h.store.commit(unit).await.unwrap();
        }
        let config = RuntimeConfig::new(WORKER);
        assert_eq!(config.dedupe_window, Duration::from_secs(7 * 86_400));
        let clock = h.clock.for_runtime();
        let counts = purge_once(h.store.as_ref(), clock.as_ref(), &config)
            .await
            .unwrap();
        assert_eq!((counts.inbox, counts.idempotency_keys), (1, 1));
        let again = purge_once(h.store.as_ref(), clock.as_ref(), &config)
            .await
            .unwrap();
        assert_eq!((again.inbox, again.idempotency_keys), (0, 0));

        // Dispatched outbox rows go after the audit window (24 h); pending rows never do.
        let env = input("services/svc-1");
        let mut unit = UnitOfWork::default();
        for (i, hours) in [30, 2, 40].into_iter().enumerate() {
            let at = now - chrono::Duration::hours(hours);
            let event = env.caused(WORKER, i as u32, sample_payload(OUTPUT), None, at);
            unit.add_outbox(fleet_runtime::outbox_message(
                &event,
                WORKER,
                "fleet-events",
                at,
            ));
        }
        h.store.commit(unit).await.unwrap();
        let claimed = h
            .store
            .claim_outbox("test", 10, Duration::from_secs(60), now)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 3);
        h.store
            .mark_dispatched(&[emitted_id(&env, 0)], now - chrono::Duration::hours(30))
            .await
            .unwrap();
        h.store
            .mark_dispatched(&[emitted_id(&env, 1)], now - chrono::Duration::hours(2))
            .await
            .unwrap();
        let counts = purge_once(h.store.as_ref(), clock.as_ref(), &config)
            .await
            .unwrap();
        assert_eq!(counts.outbox, 1, "only the row dispatched 30 h ago");
        assert_eq!(
            h.store.pending_outbox().await.unwrap(),
            1,
            "the pending row stays"
        );
    })
    .await
    .expect("test timed out");
}
