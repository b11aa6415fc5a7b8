//! `loadgen_hot_path/*`: what loadgen spends per message besides the system calls: recording
//! a latency, checking an echo against the payload pattern, computing the open-loop plan.
// criterion_group! and criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use loadgen::{engine, payload, report};

fn hot_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("loadgen_hot_path");
    group.throughput(Throughput::Elements(1));
    let mut histogram = report::new_histogram();
    let mut ns = 80_000u64;
    group.bench_function("record", |b| {
        b.iter(|| {
            // A spread of values, so the bucket index is not always the same.
            ns = ns.wrapping_mul(6364136223846793005).wrapping_add(1) % 10_000_000;
            histogram.saturating_record(black_box(ns));
        });
    });
    let pos = payload::stream_start(7) + 12_345;
    let echo = payload::window(pos, 64).to_vec();
    group.throughput(Throughput::Bytes(64));
    group.bench_function("verify_64", |b| {
        b.iter(|| assert!(payload::matches(black_box(pos), black_box(&echo))));
    });
    group.throughput(Throughput::Elements(1));
    let mut seq = 0u64;
    group.bench_function("schedule", |b| {
        b.iter(|| {
            seq += 1;
            engine::intended_offset(
                black_box(5),
                black_box(seq),
                black_box(64),
                black_box(50_000.0),
            )
        });
    });
    group.finish();
}

criterion_group! {
    name = loadgen_hot_path;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = hot_path
}
criterion_main!(loadgen_hot_path);
