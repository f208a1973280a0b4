//! Spans reach an OTLP/HTTP receiver with the messaging attributes, and parent/child ids chain
//! across two hops: the envelope's traceparent → hop 1 → the event hop 1 emits → hop 2.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use fleet_telemetry::{
    MessageSpanInfo, TelemetryConfig, build_dispatch, current_traceparent, disposition,
    message_span, record_disposition, record_failure,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode as OtelStatus;
use prost::Message as _;
use support::LogBuffer;
use tokio::sync::Notify;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PUBLISHER_SPAN_ID: &str = "b7ad6b7169203331";
const ORPHAN_TRACE_ID: &str = "5b8aa5a2d2c872e8321cf37308d69df2";

/// What the in-test collector received.
#[derive(Default)]
struct Received {
    spans: Mutex<Vec<(String, Span)>>,
    arrived: Notify,
}

impl Received {
    fn spans(&self) -> Vec<(String, Span)> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

async fn accept_traces(State(received): State<Arc<Received>>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    {
        let mut spans = received
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for resource_spans in request.resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| r.attributes.iter())
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| string_value(kv.value.as_ref()?.value.as_ref()?))
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                spans.extend(scope.spans.into_iter().map(|s| (service.clone(), s)));
            }
        }
    }
    received.arrived.notify_one();
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

fn string_value(value: &AnyValue) -> Option<String> {
    match value {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(span: &Span) -> BTreeMap<String, AnyValue> {
    span.attributes
        .iter()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.as_ref()?.value.clone()?)))
        .collect()
}

fn attr_str(span: &Span, key: &str) -> Option<String> {
    attributes(span).get(key).and_then(string_value)
}

async fn start_collector() -> (String, Arc<Received>) {
    let received = Arc::new(Received::default());
    let app = Router::new()
        .route("/v1/traces", post(accept_traces))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

async fn wait_for_spans(received: &Received, count: usize) -> Vec<(String, Span)> {
    let waited = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let spans = received.spans();
            if spans.len() >= count {
                return spans;
            }
            received.arrived.notified().await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("expected {count} spans, got {:?}", received.spans().len()))
}

fn info<'a>(traceparent: Option<&'a str>, message_id: &'a str) -> MessageSpanInfo<'a> {
    MessageSpanInfo {
        worker: "runtime-deployment",
        destination: "fleet-events",
        subscription: Some("runtime-deployment"),
        message_id: Some(message_id),
        conversation_id: Some("corr-42"),
        delivery_count: 2,
        traceparent,
        trace_id: None,
        tenant_id: Some("tenant-a"),
        event_id: Some(message_id),
        event_type: Some("RuntimeDeploymentRequested"),
    }
}

#[tokio::test]
async fn spans_chain_across_two_hops_and_carry_messaging_attributes() {
    let (endpoint, received) = start_collector().await;
    let mut config = TelemetryConfig::new("otlp-test-worker");
    config.otlp_endpoint = Some(endpoint);
    let (dispatch, guard) = build_dispatch(&config, LogBuffer::default().writer()).expect("build");
    assert!(guard.is_exporting());
    let _default = tracing::dispatcher::set_default(&dispatch);

    // Hop 1: the publisher's traceparent T/P arrives with the message.
    let incoming = format!("00-{TRACE_ID}-{PUBLISHER_SPAN_ID}-01");
    let hop1 = message_span(&info(Some(&incoming), "msg-1"));
    let emitted = hop1
        .in_scope(current_traceparent)
        .expect("a traceparent inside the message span");
    record_disposition(&hop1, disposition::COMPLETE);
    drop(hop1);

    // Hop 2: the emitted event is consumed with the traceparent hop 1 produced.
    let hop2 = message_span(&info(Some(&emitted), "msg-2"));
    record_disposition(&hop2, disposition::DEAD_LETTER);
    record_failure(&hop2, "HandlerRejected");
    drop(hop2);

    // A message with an unusable traceparent but an envelope traceId stays in that trace.
    let orphan = message_span(&MessageSpanInfo {
        trace_id: Some(ORPHAN_TRACE_ID),
        ..info(Some("00-garbage"), "msg-3")
    });
    let orphan_traceparent = orphan.in_scope(current_traceparent).expect("traceparent");
    drop(orphan);

    let guard = tokio::task::spawn_blocking(move || {
        guard.flush().expect("flush reaches the collector");
        guard
    })
    .await
    .expect("flush task");

    let spans = wait_for_spans(&received, 3).await;
    let by_message = |id: &str| {
        spans
            .iter()
            .find(|(_, s)| attr_str(s, "messaging.message.id").as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no span for {id}"))
    };
    let (service, hop1) = by_message("msg-1");
    let (_, hop2) = by_message("msg-2");
    let (_, orphan) = by_message("msg-3");

    // Hop 1 is in trace T with parent P; its own id is the parent in the emitted traceparent.
    assert_eq!(service, "otlp-test-worker");
    assert_eq!(hex(&hop1.trace_id), TRACE_ID);
    assert_eq!(hex(&hop1.parent_span_id), PUBLISHER_SPAN_ID);
    assert_eq!(emitted, format!("00-{TRACE_ID}-{}-01", hex(&hop1.span_id)));

    // Hop 2 is hop 1's child, same trace.
    assert_eq!(hex(&hop2.trace_id), TRACE_ID);
    assert_eq!(hex(&hop2.parent_span_id), hex(&hop1.span_id));
    assert_ne!(hop2.span_id, hop1.span_id);

    // The orphan is a root in the envelope's trace.
    assert_eq!(hex(&orphan.trace_id), ORPHAN_TRACE_ID);
    assert!(orphan.parent_span_id.is_empty(), "orphan has a parent");
    assert!(orphan_traceparent.starts_with(&format!("00-{ORPHAN_TRACE_ID}-")));

    // Messaging semantic conventions.
    assert_eq!(hop1.name, "process fleet-events");
    assert_eq!(hop1.kind, SpanKind::Consumer as i32);
    let expected = [
        ("messaging.system", "servicebus"),
        ("messaging.destination.name", "fleet-events"),
        (
            "messaging.destination.subscription.name",
            "runtime-deployment",
        ),
        ("messaging.message.id", "msg-1"),
        ("messaging.message.conversation_id", "corr-42"),
        ("messaging.operation.type", "process"),
        ("messaging.operation.name", "process"),
        ("messaging.servicebus.disposition_status", "complete"),
        ("fleet.worker", "runtime-deployment"),
        ("fleet.tenant_id", "tenant-a"),
    ];
    for (key, value) in expected {
        assert_eq!(attr_str(hop1, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(
        attributes(hop1).get("messaging.servicebus.message.delivery_count"),
        Some(&AnyValue::IntValue(2))
    );
    assert_eq!(
        attr_str(hop2, "messaging.servicebus.disposition_status").as_deref(),
        Some("dead_letter")
    );
    assert_eq!(
        attr_str(hop2, "error.type").as_deref(),
        Some("HandlerRejected")
    );
    let status = hop2.status.as_ref().expect("hop 2 has a status");
    assert_eq!(status.code, OtelStatus::Error as i32);
    assert_eq!(
        hop1.status.as_ref().map_or(0, |s| s.code),
        OtelStatus::Unset as i32
    );

    tokio::task::spawn_blocking(move || guard.shutdown().expect("clean shutdown"))
        .await
        .expect("shutdown task");
}

#[tokio::test]
async fn an_unreachable_collector_surfaces_on_flush_and_never_breaks_processing() {
    // A port that was free a moment ago: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);

    let logs = LogBuffer::default();
    let mut config = TelemetryConfig::new("unreachable");
    config.otlp_endpoint = Some(endpoint);
    let (dispatch, guard) = build_dispatch(&config, logs.writer()).expect("build");
    let emitted = tracing::dispatcher::with_default(&dispatch, || {
        message_span(&info(None, "msg-x")).in_scope(|| {
            tracing::info!("handled");
            current_traceparent()
        })
    });
    assert!(emitted.is_some(), "ids exist whatever the exporter does");
    assert!(
        logs.text().contains("\"message\":\"handled\""),
        "{}",
        logs.text()
    );

    let flushed = tokio::task::spawn_blocking(move || {
        let result = guard.flush();
        drop(guard);
        result
    });
    let result = tokio::time::timeout(Duration::from_secs(30), flushed)
        .await
        .expect("flush gives up within the export timeout")
        .expect("flush task");
    let err = result.expect_err("a failed export is reported");
    assert_eq!(err.kind(), fleet_telemetry::TelemetryErrorKind::Shutdown);
}
