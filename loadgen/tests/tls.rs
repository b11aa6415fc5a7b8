//! `--tls`, `--tls-resume` and `--handshake-rate` against a small rustls echo server started in
//! the test (a thread per connection, TLS 1.3, tickets on), which counts its handshakes by kind.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use loadgen::{Options, TlsOptions, Trust};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{HandshakeKind, ServerConfig, ServerConnection, StreamOwned};

/// A TLS echo server on 127.0.0.1:0 with the certificate of `dir`, counting handshakes.
struct TlsServer {
    addr: SocketAddr,
    full: Arc<AtomicU64>,
    resumed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// A self-signed certificate for 127.0.0.1 in `dir/cert.pem` and its key in `dir/key.pem`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

fn tls_server(cert: &Path, key: &Path) -> TlsServer {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_file(cert).unwrap()],
            PrivateKeyDer::from_pem_file(key).unwrap(),
        )
        .unwrap();
    config.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = TlsServer {
        addr: listener.local_addr().unwrap(),
        full: Arc::default(),
        resumed: Arc::default(),
        stop: Arc::default(),
    };
    let (full, resumed, stop) = (
        server.full.clone(),
        server.resumed.clone(),
        server.stop.clone(),
    );
    thread::spawn(move || {
        for socket in listener.incoming() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let Ok(socket) = socket else { continue };
            let (config, full, resumed) = (config.clone(), full.clone(), resumed.clone());
            thread::spawn(move || {
                let _ = socket.set_nodelay(true);
                let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
                let mut session = ServerConnection::new(config).unwrap();
                let mut socket = socket;
                while session.is_handshaking() {
                    if session.complete_io(&mut socket).is_err() {
                        return;
                    }
                }
                match session.handshake_kind() {
                    Some(HandshakeKind::Resumed) => resumed.fetch_add(1, Ordering::Relaxed),
                    _ => full.fetch_add(1, Ordering::Relaxed),
                };
                let mut stream = StreamOwned::new(session, socket);
                let mut buf = [0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
                stream.conn.send_close_notify();
                let _ = stream.flush();
            });
        }
    });
    server
}

/// The tests that make load take turns: the arrivals' thread runs at `SCHED_IDLE`, and
/// another test's load on the same CPUs would starve it (and its rate with it).
static LOAD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    LOAD.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-tls-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(addr: SocketAddr, ca: &Path, resume: bool) -> Options {
    let mut o = Options::new(addr);
    o.warmup = Duration::from_millis(200);
    o.duration = Duration::from_millis(800);
    o.connections = 4;
    o.threads = Some(1);
    o.tls = Some(TlsOptions {
        trust: Trust::Ca(ca.to_owned()),
        resume,
    });
    o
}

#[test]
fn an_untrusted_certificate_is_refused_in_one_line_naming_the_flag() {
    let _turn = one_at_a_time();
    let dir = tempdir("untrusted");
    let (cert, key) = certificate(&dir.join("server"));
    let (other, _) = certificate(&dir.join("other"));
    let server = tls_server(&cert, &key);
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["--addr", &server.addr.to_string(), "--tls", "--tls-ca"])
        .arg(&other)
        .args(["--duration", "300ms", "--warmup", "0s", "--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("--tls-ca") && stderr.contains("does not trust"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "no load was sent, no summary");
    assert_eq!(server.full.load(Ordering::Relaxed), 0);
    // The same server with its own certificate: a run.
    let report = loadgen::run(&options(server.addr, &cert, false)).unwrap();
    assert!(report.failure().is_none(), "{:?}", report.failure());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn handshakes_by_kind_match_the_servers_count_with_and_without_resumption() {
    let _turn = one_at_a_time();
    let dir = tempdir("counts");
    let (cert, key) = certificate(&dir);
    for resume in [false, true] {
        let server = tls_server(&cert, &key);
        let mut o = options(server.addr, &cert, resume);
        o.churn = true;
        let report = loadgen::run(&o).unwrap();
        assert!(report.failure().is_none(), "{:?}", report.failure());
        let h = report.handshakes.clone().unwrap();
        // Every connection is over when the run returns.
        let server_full = server.full.load(Ordering::Relaxed);
        let server_resumed = server.resumed.load(Ordering::Relaxed);
        assert_eq!((h.full, h.resumed), (server_full, server_resumed), "{h:?}");
        assert!(
            h.full + h.resumed > 50,
            "a churn run makes handshakes: {h:?}"
        );
        let tls = report.tls.clone().unwrap();
        assert_eq!(tls.version, "TLSv1_3");
        assert_eq!(tls.verification, "ca");
        if resume {
            assert!(h.resumed_ratio.unwrap() >= 0.9, "{h:?}");
            assert!(h.priming >= 1);
        } else {
            assert_eq!(h.resumed, 0);
            assert_eq!(h.priming, 1, "the certificate probe");
        }
        assert!(h.loadgen_cpu_us_per_handshake.unwrap() > 0.0);
        assert!(report.handshake_us.as_ref().unwrap().p50 > 0.0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_resume_fails_a_run_whose_server_resumes_nothing() {
    let _turn = one_at_a_time();
    let dir = tempdir("noresume");
    let (cert, key) = certificate(&dir);
    let server = tls_server(&cert, &key);
    let mut o = options(server.addr, &cert, true);
    o.churn = true;
    let mut report = loadgen::run(&o).unwrap();
    assert!(report.failure().is_none());
    // The same run as if the server had taken no ticket: below 90 % resumed fails.
    let h = report.handshakes.as_mut().unwrap();
    h.resumed_ratio = Some(0.5);
    let why = report.failure().unwrap();
    assert!(
        why.contains("--tls-resume") && why.contains("50.0 %"),
        "{why}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn handshake_rate_achieves_its_rate_beside_the_load() {
    let _turn = one_at_a_time();
    let dir = tempdir("rate");
    let (cert, key) = certificate(&dir);
    let server = tls_server(&cert, &key);
    let mut o = options(server.addr, &cert, false);
    o.rate = Some(2000.0);
    o.duration = Duration::from_secs(2);
    o.handshake_rate = Some(200.0);
    let report = loadgen::run(&o).unwrap();
    assert!(report.failure().is_none(), "{:?}", report.failure());
    let a = report.handshake_arrivals.clone().unwrap();
    assert!(
        (a.achieved_rate_ratio - 1.0).abs() <= 0.03,
        "arrivals at {:.1} % of the rate: {a:?}",
        a.achieved_rate_ratio * 100.0
    );
    assert_eq!(a.errors.total(), 0, "{a:?}");
    assert!(a.scheduled >= 390 && a.scheduled <= 410, "{a:?}");
    assert!(a.handshake_us.is_some() && a.latency_us.p50 > 0.0);
    let h = report.handshakes.clone().unwrap();
    assert_eq!(
        h.full,
        server.full.load(Ordering::Relaxed),
        "arrivals' handshakes are counted too"
    );
    assert!(report.send_late_us.is_some(), "open loop: sends' lateness");
    let _ = std::fs::remove_dir_all(&dir);
}
