//! `udp_roundtrip/<model>/64`: one connected UDP socket, one 64-byte datagram sent and its
//! echo received, per UDP model. The server runs in its own process, started before the timed
//! code. A datagram lost on loopback would stall the bench for the read timeout and fail it:
//! a lost echo must not pass for a slow one.
// criterion_group! and criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn udp_roundtrip_per_model(c: &mut Criterion) {
    common::pin_bench();
    let mut group = c.benchmark_group("udp_roundtrip");
    let size = 64usize;
    for model in common::udp_models() {
        let server = common::Server::start(model);
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a client socket");
        socket
            .connect(server.addr)
            .expect("connect the client socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let mut msg = common::message(size);
        // Each datagram numbered, as real clients' are: the servers drop the same bytes coming
        // back within 10 ms as an echo loop.
        let mut seq = 0u64;
        let mut echo = vec![0u8; size + 1];
        // One checked round trip first: a wrong echo must not be timed as a fast one.
        socket.send(&msg).expect("send");
        let n = socket.recv(&mut echo).expect("receive the echo");
        assert_eq!(echo[..n], msg[..], "{model}: wrong echo");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new(model, size), &size, |b, _| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    seq += 1;
                    msg[..8].copy_from_slice(&seq.to_le_bytes());
                    socket.send(black_box(&msg)).expect("send");
                    socket.recv(&mut echo).expect("receive the echo");
                }
                start.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = udp_roundtrip;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = udp_roundtrip_per_model
}
criterion_main!(udp_roundtrip);
