//! `roundtrip/<model>/<size>`: one connection, one message of 64 B or 4 KiB, sent and echoed
//! back, per model. The server runs in its own process, started before the timed code.
// criterion_group! and criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn roundtrip_per_model(c: &mut Criterion) {
    common::pin_bench();
    let mut group = c.benchmark_group("roundtrip");
    for model in common::models() {
        let server = common::Server::start(model);
        let mut stream = server.connect();
        for size in [64usize, 4096] {
            let msg = common::message(size);
            let mut echo = vec![0u8; size];
            // One checked round trip first: a wrong echo must not be timed as a fast one.
            stream.write_all(&msg).expect("write");
            stream.read_exact(&mut echo).expect("read the echo");
            assert_eq!(echo, msg, "{model}: wrong echo");
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new(model, size), &size, |b, _| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        stream.write_all(black_box(&msg)).expect("write");
                        stream.read_exact(&mut echo).expect("read the echo");
                    }
                    start.elapsed()
                });
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = roundtrip;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = roundtrip_per_model
}
criterion_main!(roundtrip);
