//! Decode + validate of a ~1 KiB envelope: the per-message cost every worker pays first.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fleet_envelope::{Envelope, EventType, examples};

fn decode(c: &mut Criterion) {
    let body = examples::sample_envelope(EventType::HealthCheckCompleted).encode();
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(format!("decode_validate_{}_bytes", body.len()), |b| {
        b.iter(|| Envelope::decode(black_box(&body)))
    });
    let ce = fleet_envelope::cloudevents::encode(&examples::sample_envelope(
        EventType::HealthCheckCompleted,
    ));
    group.bench_function(format!("decode_cloudevent_{}_bytes", ce.len()), |b| {
        b.iter(|| fleet_envelope::cloudevents::from_cloudevent(black_box(&ce)))
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
