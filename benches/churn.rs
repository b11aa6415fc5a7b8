//! `churn/<model>`: connect, echo 64 B, close: what one connection costs each model (a thread,
//! a process, a task or a slab entry). The server runs in its own process.
// criterion_group! and criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn churn_per_model(c: &mut Criterion) {
    common::pin_bench();
    let mut group = c.benchmark_group("churn");
    group.throughput(Throughput::Elements(1));
    let msg = common::message(64);
    for model in common::models() {
        let server = common::Server::start(model);
        group.bench_function(BenchmarkId::new(model, 64), |b| {
            b.iter_custom(|iters| {
                let mut echo = [0u8; 64];
                let start = Instant::now();
                for _ in 0..iters {
                    let mut stream = common::connect(server.addr);
                    stream.write_all(black_box(&msg)).expect("write");
                    stream.read_exact(&mut echo).expect("read the echo");
                }
                start.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = churn;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = churn_per_model
}
criterion_main!(churn);
