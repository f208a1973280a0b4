//! Decode + validate of a ~1 KiB envelope: the per-message cost every worker pays first.
//!
//! Two clocks: criterion's wall clock, and this thread's on-CPU time (the `cpu/` lines, from
//! `/proc/thread-self/schedstat`), which stays meaningful when other processes compete for the
//! two cores. `serde_json_value_baseline` parses the same bytes into a plain `serde_json::Value` with
//! no checks at all, for comparison. `payload_typed_read` is a handler's typed read of a decoded
//! envelope (its `data` already checked).

use std::hint::black_box;

use criterion::measurement::Measurement;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group};
use fleet_envelope::{Envelope, EventType, cloudevents, examples};
use serde_json::json;

/// The health sample plus two extensions: about 1 KiB encoded.
fn one_kib_envelope() -> Envelope {
    let mut e = examples::sample_envelope(EventType::HealthCheckCompleted);
    e.extensions.insert(
        "replayedBy".into(),
        json!("fleetctl dlq replay --execute (on-call: oncall-7)"),
    );
    e.extensions.insert("region".into(), json!("westeurope"));
    e
}

fn cases<M: Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    let envelope = one_kib_envelope();
    let body = envelope.encode();
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(format!("decode_validate_{}_bytes", body.len()), |b| {
        b.iter(|| Envelope::decode(black_box(&body)))
    });
    group.bench_function("serde_json_value_baseline", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)))
    });
    let decoded = Envelope::decode(&body).unwrap_or_else(|_| envelope.clone());
    group.bench_function("payload_typed_read", |b| {
        b.iter(|| black_box(&decoded).payload())
    });
    group.bench_function("encode", |b| b.iter(|| black_box(&envelope).encode()));
    group.bench_function("emitted_event_id", |b| {
        b.iter(|| {
            fleet_envelope::emitted_event_id(black_box(envelope.event_id), "runtime-health", 0)
        })
    });
    group.bench_function("uuid_v5_of_the_same_name", |b| {
        b.iter(|| {
            let name = format!(
                "emitted:{}:14:runtime-health:0",
                black_box(envelope.event_id)
            );
            uuid::Uuid::new_v5(&fleet_envelope::FLEET_NAMESPACE, name.as_bytes())
        })
    });
    let ce = cloudevents::encode(&envelope);
    group.bench_function("decode_validate_cloudevent", |b| {
        b.iter(|| cloudevents::from_cloudevent(black_box(&ce)))
    });
}

fn wall(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    cases(&mut group);
    group.finish();
}

/// Nanoseconds this thread has spent on a CPU (Linux `schedstat`); `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// On-CPU nanoseconds per call of `f`, over at least two seconds of CPU time. `schedstat` only
/// advances at scheduler ticks, so short samples (criterion's first ones) would read as zero;
/// one long run makes the tick error negligible.
fn cpu_ns_per_iter(mut f: impl FnMut()) -> Option<(f64, u64)> {
    let start = thread_cpu_ns()?;
    let mut iters = 0u64;
    loop {
        for _ in 0..10_000 {
            f();
        }
        iters += 10_000;
        let spent = thread_cpu_ns()?.saturating_sub(start);
        if spent >= 2_000_000_000 {
            return Some((spent as f64 / iters as f64, iters));
        }
    }
}

/// One benchmarked call.
type Case<'a> = Box<dyn FnMut() + 'a>;

/// The same cases on the on-CPU clock, printed as `cpu/envelope/<case>: <ns> ns/iter`.
fn cpu_report() {
    let envelope = one_kib_envelope();
    let body = envelope.encode();
    let ce = cloudevents::encode(&envelope);
    let decoded = Envelope::decode(&body).unwrap_or_else(|_| envelope.clone());
    let cases: [(&str, Case<'_>); 5] = [
        (
            "decode_validate",
            Box::new(|| drop(black_box(Envelope::decode(black_box(&body))))),
        ),
        (
            "serde_json_value_baseline",
            Box::new(|| {
                drop(black_box(serde_json::from_slice::<serde_json::Value>(
                    black_box(&body),
                )))
            }),
        ),
        (
            "payload_typed_read",
            Box::new(|| drop(black_box(black_box(&decoded).payload()))),
        ),
        (
            "encode",
            Box::new(|| drop(black_box(black_box(&envelope).encode()))),
        ),
        (
            "decode_validate_cloudevent",
            Box::new(|| drop(black_box(cloudevents::from_cloudevent(black_box(&ce))))),
        ),
    ];
    for (name, mut f) in cases {
        match cpu_ns_per_iter(&mut f) {
            Some((ns, iters)) => println!(
                "cpu/envelope/{name} ({} bytes): {ns:.0} ns/iter on-CPU over {iters} iterations",
                body.len()
            ),
            None => println!("cpu/envelope/{name}: no per-thread CPU clock on this system"),
        }
    }
}

criterion_group!(wall_clock, wall);

fn main() {
    wall_clock();
    // `cargo test --benches` runs this binary with `--test`: check the cases once, measure nothing.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--test" || a == "--list") {
        cpu_report();
    }
    Criterion::default().configure_from_args().final_summary();
}
