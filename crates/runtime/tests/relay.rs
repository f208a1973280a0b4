//! The outbox relay on a real store and the emulator engine.

mod common;

use std::sync::Arc;

use common::*;
use fleet_envelope::examples::sample_payload;
use fleet_runtime::{Clock, Relay, outbox_message};
use fleet_store::{Document, UnitOfWork};
use fleet_telemetry::Metrics;
use fleet_testkit::Harness;

#[tokio::test]
async fn a_damaged_outbox_row_is_reported_and_the_others_are_published() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let h = Harness::sqlite(WORKER, &[INPUT]).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(h.clock.clone());
        let now = clock.now();
        let env = input("services/svc-1");
        let mut unit = UnitOfWork::default();
        let mut ids = Vec::new();
        for i in 0..3 {
            let event = env.caused(WORKER, i, sample_payload(OUTPUT), None, now);
            let mut row = outbox_message(&event, WORKER, "fleet-events", now);
            if i == 1 {
                row.properties = Document::from(serde_json::json!("not an object"));
            }
            ids.push(event.event_id);
            unit.add_outbox(row);
        }
        h.store.commit(unit).await.unwrap();

        let metrics = Metrics::new();
        let relay = Relay::new(
            h.store.clone(),
            h.bus.clone(),
            clock,
            "relay-1".into(),
            metrics.clone(),
            WORKER.into(),
        );
        assert_eq!(relay.publish_pending().await.unwrap(), 2);
        let mut published: Vec<_> = h
            .emitted()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event_id)
            .collect();
        published.sort();
        let mut expected = vec![ids[0], ids[2]];
        expected.sort();
        assert_eq!(published, expected);
        assert_eq!(
            h.store.pending_outbox().await.unwrap(),
            1,
            "the damaged row stays"
        );
        let rendered = metrics.render_prometheus();
        assert!(
            rendered.contains(&format!(
                "fleet_outbox_publish_failures_total{{worker=\"{WORKER}\"}} 1"
            )),
            "{rendered}"
        );
    })
    .await
    .expect("test timed out");
}
