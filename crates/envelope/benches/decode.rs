//! Decode + validate of a ~1 KiB envelope: the per-message cost every worker pays first.
//!
//! `serde_json_value_baseline` parses the same bytes into a plain `serde_json::Value` with no
//! checks at all: the floor any decoder that keeps `data` as a `Value` stands on.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleet_envelope::{Envelope, EventType, Payload, cloudevents, examples};
use serde_json::json;

/// The health sample plus a realistic extension, about 1 KiB encoded.
fn one_kib_envelope() -> Envelope {
    let mut e = examples::sample_envelope(EventType::HealthCheckCompleted);
    e.extensions.insert(
        "replayedBy".into(),
        json!("fleetctl dlq replay --execute (on-call: oncall-7)"),
    );
    e.extensions.insert("region".into(), json!("westeurope"));
    e
}

fn decode(c: &mut Criterion) {
    let envelope = one_kib_envelope();
    let body = envelope.encode();
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(format!("decode_validate_{}_bytes", body.len()), |b| {
        b.iter(|| Envelope::decode(black_box(&body)))
    });
    group.bench_function("serde_json_value_baseline", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)))
    });
    group.bench_function("payload_typed_read", |b| {
        b.iter(|| Payload::from_data(envelope.event_type, 1, black_box(&envelope.data)))
    });
    group.bench_function("encode", |b| b.iter(|| black_box(&envelope).encode()));
    let ce = cloudevents::encode(&envelope);
    group.bench_function("decode_validate_cloudevent", |b| {
        b.iter(|| cloudevents::from_cloudevent(black_box(&ce)))
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
