//! `tls/<kind>/<model>`: what TLS costs each model that serves it (`--tls`), through a rustls
//! client pinned to another CPU than the server.
//!
//! - `tls/full_handshake/<model>`: connect, full handshake (TLS 1.3, X25519, ECDSA P-256), one
//!   64-byte echo, `close_notify` both ways; a new client configuration each time, so nothing
//!   resumes.
//! - `tls/resumed_handshake/<model>`: the same with a resumed session.
//! - `tls/pingpong16_tcp/<model>` and `tls/pingpong16_tls/<model>`: 16 connections, each
//!   on its own client thread, closed-loop 64-byte round trips; the time is per message over all
//!   16, so `tcp / tls` is the throughput TLS keeps.
//!
//! After each, the bench prints the server's CPU time per handshake or per message, read from
//! `/proc` over the measured iterations: the server's own cost, whoever the bottleneck.
// criterion_group! and criterion_main! generate undocumented public functions.
#![allow(missing_docs)]

mod common;

use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, StreamOwned};

const CONNECTIONS: usize = 16;
const SIZE: usize = 64;

/// The models that serve TLS (narrowed by `ECHOBENCH_MODELS`).
fn tls_models() -> Vec<&'static str> {
    common::models()
        .into_iter()
        .filter(|m| echo_server::Model::from_name(m).is_some_and(|m| m.supports_tls()))
        .collect()
}

/// A certificate and key made once by `echo-server --gen-cert`'s code.
fn cert_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("echobench-bench-tls-{}", std::process::id()));
        echo_server::tls::gen_cert(&dir, &[]).expect("cannot make a certificate");
        dir
    })
}

/// Starts `model`, with TLS or without, a pool with the workers a comparison gives it.
fn start(model: &str, tls: bool) -> common::Server {
    let dir = cert_dir();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut args = Vec::new();
    if tls {
        args.extend(["--tls", "--tls-cert", cert.to_str().expect("UTF-8 path")]);
        args.extend(["--tls-key", key.to_str().expect("UTF-8 path")]);
    }
    let workers = echo_server::Model::from_name(model)
        .and_then(|m| m.pool_workers())
        .map(|n| n.to_string());
    if let Some(workers) = &workers {
        args.extend(["--workers", workers]);
    }
    common::Server::start_with(model, &args)
}

/// A fresh client configuration (an empty session cache) trusting the bench's certificate.
fn client_config() -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_dir().join("cert.pem")).expect("cert.pem") {
        roots
            .add(cert.expect("a certificate"))
            .expect("a usable root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn handshake(server: &common::Server, config: &Arc<ClientConfig>) -> Tls {
    let name = ServerName::try_from("localhost").expect("a name");
    let conn = ClientConnection::new(Arc::clone(config), name).expect("a client connection");
    let mut tls = StreamOwned::new(conn, server.connect());
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("handshake");
    }
    tls
}

/// One checked 64-byte round trip.
fn ping(stream: &mut impl ReadWrite, msg: &[u8], echo: &mut [u8]) {
    stream.write_all(msg).expect("send");
    stream.read_exact(echo).expect("receive the echo");
    assert_eq!(echo, msg, "wrong echo");
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// One connection's life: handshake, one echo, `close_notify` both ways.
fn one_connection(server: &common::Server, config: &Arc<ClientConfig>, resumed: bool) {
    let msg = common::message(SIZE);
    let mut tls = handshake(server, config);
    ping(&mut tls, &msg, &mut [0u8; SIZE]);
    assert_eq!(
        tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        resumed,
        "handshake kind"
    );
    tls.conn.send_close_notify();
    tls.conn.complete_io(&mut tls.sock).expect("close_notify");
    let _ = tls.sock.shutdown(Shutdown::Write);
    let _ = tls.read_to_end(&mut Vec::new());
}

/// Prints the server's CPU time per unit over what `measure` did.
fn server_cpu(server: &common::Server, what: &str, measure: impl FnOnce() -> u64) {
    let before = server.cpu_time();
    let units = measure();
    let used = server.cpu_time().saturating_sub(before);
    // Test mode runs each bench once: too little to read a CPU time off.
    if units > 0 && used >= Duration::from_millis(100) {
        let per = used.as_secs_f64() * 1e6 / units as f64;
        println!("{what}: server CPU {per:.1} µs per unit over {units} ({used:?})");
    }
}

fn handshakes(c: &mut Criterion) {
    common::pin_bench();
    let mut group = c.benchmark_group("tls");
    for model in tls_models() {
        let server = start(model, true);
        let units = Cell::new(0u64);
        server_cpu(&server, &format!("tls/full_handshake/{model}"), || {
            group.bench_function(format!("full_handshake/{model}"), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        one_connection(&server, &client_config(), false);
                    }
                    units.set(units.get() + iters);
                    start.elapsed()
                });
            });
            units.get()
        });
        let config = client_config();
        one_connection(&server, &config, false);
        group.bench_function(format!("resumed_handshake/{model}"), |b| {
            b.iter(|| one_connection(&server, &config, true));
        });
    }
    group.finish();
}

/// `iters` round trips split over [`CONNECTIONS`] client threads, each on its own connection.
fn pingpong16(conns: &mut [Box<dyn ReadWrite + Send>], iters: u64) -> Duration {
    let per_conn = iters.div_ceil(CONNECTIONS as u64);
    let start = Instant::now();
    std::thread::scope(|s| {
        for conn in conns.iter_mut() {
            s.spawn(move || {
                let msg = common::message(SIZE);
                let mut echo = [0u8; SIZE];
                for _ in 0..per_conn {
                    ping(conn, &msg, &mut echo);
                }
            });
        }
    });
    start.elapsed()
}

fn pingpong(c: &mut Criterion) {
    common::pin_bench();
    let mut group = c.benchmark_group("tls");
    // The iterative server serves one of the 16 at a time: the others would wait forever.
    let concurrent = tls_models().into_iter().filter(|m| {
        echo_server::Model::from_name(m)
            .is_some_and(|m| m.info().clients_at_once != echo_server::models::ClientsAtOnce::One)
    });
    for model in concurrent {
        for transport in ["tcp", "tls"] {
            let server = start(model, transport == "tls");
            let config = client_config();
            let mut conns: Vec<Box<dyn ReadWrite + Send>> = (0..CONNECTIONS)
                .map(|_| -> Box<dyn ReadWrite + Send> {
                    match transport {
                        "tls" => Box::new(handshake(&server, &config)),
                        _ => Box::new(server.connect()),
                    }
                })
                .collect();
            let id = format!("pingpong16_{transport}/{model}");
            let units = Cell::new(0u64);
            server_cpu(&server, &format!("tls/{id}"), || {
                group.bench_function(&id, |b| {
                    b.iter_custom(|iters| {
                        units.set(
                            units.get() + iters.div_ceil(CONNECTIONS as u64) * CONNECTIONS as u64,
                        );
                        pingpong16(&mut conns, iters)
                    });
                });
                units.get()
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = tls;
    // 30 samples: a handshake takes most of a millisecond, and 100 samples would stretch each
    // bench past its 3 s; 20,000 resamples: the default 100,000 took longer than the sampling.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .nresamples(20_000);
    targets = handshakes, pingpong
}
criterion_main!(tls);
