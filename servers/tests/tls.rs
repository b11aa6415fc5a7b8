//! TLS (`--tls`), checked against every model the registry says serves it, through the real
//! binary and clients that are not loadgen: rustls' own client here, and `openssl s_client`
//! where it is installed.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ProtocolVersion, StreamOwned};

use common::{
    assert_back_pressured, serves_one_at_a_time, tree_anon_kib, Rng, Server, BIN, IO_TIMEOUT,
};

/// The models that serve TLS, from `echo-server --list` and the registry.
fn tls_models() -> Vec<String> {
    common::models()
        .into_iter()
        .filter(|m| echo_server::Model::from_name(m).is_some_and(|m| m.supports_tls()))
        .collect()
}

/// One certificate and key for the whole test binary, made by `echo-server --gen-cert`.
fn cert_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("echobench-tls-{}", std::process::id()));
        let out = Command::new(BIN)
            .args(["--gen-cert", dir.to_str().unwrap(), "--san", "echo.test"])
            .args(["--san", "10.9.8.7"])
            .output()
            .unwrap();
        assert!(out.status.success(), "--gen-cert: {out:?}");
        dir
    })
}

/// Starts `model` serving TLS with the test certificate; `extra` goes on the command line.
fn start_tls(model: &str, extra: &[&str]) -> Server {
    let dir = cert_dir();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let mut args = vec!["--tls", "--tls-cert", cert.to_str().unwrap()];
    args.extend(["--tls-key", key.to_str().unwrap()]);
    args.extend(extra);
    Server::start(model, &args)
}

/// A rustls client configuration that trusts only the test certificate, for one version.
fn client_config(version: &'static rustls::SupportedProtocolVersion) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_dir().join("cert.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake, verifying the certificate for `name`.
fn connect_as(server: &Server, config: &Arc<ClientConfig>, name: &str) -> Tls {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut tls = StreamOwned::new(conn, server.connect());
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .unwrap_or_else(|e| panic!("{}: handshake: {e}", server.model));
    }
    tls
}

fn connect(server: &Server, config: &Arc<ClientConfig>) -> Tls {
    connect_as(server, config, "localhost")
}

/// Sends `msg` and reads exactly its echo back.
fn ping(tls: &mut Tls, msg: &[u8]) {
    tls.write_all(msg).unwrap();
    let mut echo = vec![0u8; msg.len()];
    tls.read_exact(&mut echo).unwrap();
    assert_eq!(echo, msg, "echo differs from what was sent");
}

/// The client's end as the semantics ask: `close_notify`, then the TCP half-close; then the
/// server's `close_notify` must arrive before its EOF (`read_to_end` fails on an EOF without
/// one).
fn close(mut tls: Tls, model: &str) {
    tls.conn.send_close_notify();
    tls.conn.complete_io(&mut tls.sock).unwrap();
    tls.sock.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest)
        .unwrap_or_else(|e| panic!("{model}: no close_notify before EOF: {e}"));
    assert!(
        rest.is_empty(),
        "{model}: {} bytes after our close",
        rest.len()
    );
}

/// The server's `echo-server: tls: ...` line after a clean exit.
fn tls_line(server: &mut Server) -> String {
    let (status, _) = server.terminate(Duration::from_secs(2));
    assert!(status.success(), "{}: exit {status}", server.model);
    let said = server.final_stderr();
    said.lines()
        .find(|l| l.starts_with("echo-server: tls: "))
        .unwrap_or_else(|| panic!("{}: no tls line in {said:?}", server.model))
        .to_owned()
}

#[test]
fn gen_cert_writes_a_p256_certificate_for_loopback_and_the_given_names() {
    let dir = cert_dir();
    let pem = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let key = std::fs::read_to_string(dir.join("key.pem")).unwrap();
    assert!(
        key.starts_with("-----BEGIN PRIVATE KEY-----"),
        "not PKCS#8 PEM"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "key.pem is readable by others: {mode:o}");
    // The certificate verifies for every name it was made for, and not for another.
    let server = start_tls("mio", &[]);
    let config = client_config(&rustls::version::TLS13);
    for name in ["localhost", "127.0.0.1", "::1", "echo.test", "10.9.8.7"] {
        let mut tls = connect_as(&server, &config, name);
        ping(&mut tls, name.as_bytes());
        let scheme = tls.conn.negotiated_cipher_suite().unwrap();
        assert_eq!(tls.conn.protocol_version(), Some(ProtocolVersion::TLSv1_3));
        assert!(format!("{scheme:?}").starts_with("TLS13_"), "{scheme:?}");
    }
    let name = ServerName::try_from("elsewhere.test").unwrap();
    let conn = ClientConnection::new(config, name).unwrap();
    let mut tls = StreamOwned::new(conn, server.connect());
    let refused = tls.write_all(b"x").and_then(|()| tls.flush());
    assert!(
        refused.is_err(),
        "a certificate for another name was accepted"
    );
}

#[test]
fn every_tls_model_echoes_byte_exact_over_tls13_and_tls12_and_closes_with_close_notify() {
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    for model in tls_models() {
        let mut server = start_tls(&model, &[]);
        for version in versions {
            let config = client_config(version);
            let mut tls = connect(&server, &config);
            let mut rng = Rng::new(7);
            // Small messages, then messages spanning several records.
            for len in [1, 100, 1_000, 16_384, 16_385, 65_536] {
                ping(&mut tls, &rng.bytes(len));
            }
            for _ in 0..20 {
                let len = rng.range(1, 4_000);
                ping(&mut tls, &rng.bytes(len));
            }
            let expected = match version.version {
                ProtocolVersion::TLSv1_2 => "TLSv1_2",
                _ => "TLSv1_3",
            };
            let got = format!("{:?}", tls.conn.protocol_version().unwrap());
            assert_eq!(got, expected, "{model}");
            close(tls, &model);
        }
        let line = tls_line(&mut server);
        assert_eq!(
            line,
            "echo-server: tls: 2 full handshakes, 0 resumed, 0 handshake timeouts, \
             0 handshake failures, 0 eof without close_notify",
            "{model}"
        );
    }
}

#[test]
fn openssl_s_client_echoes_through_every_tls_model() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let cert = cert_dir().join("cert.pem");
    for model in tls_models() {
        let server = start_tls(&model, &[]);
        for version in ["-tls1_3", "-tls1_2"] {
            let mut client = Command::new("timeout")
                .arg("10")
                .args(["openssl", "s_client", "-connect", &server.addr.to_string()])
                .args(["-CAfile", cert.to_str().unwrap(), "-verify_return_error"])
                .args(["-servername", "localhost", "-quiet", "-no_ign_eof", version])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let line = format!("hello from openssl {version}\n");
            let mut stdin = client.stdin.take().unwrap();
            stdin.write_all(line.as_bytes()).unwrap();
            // The echo, read before our stdin ends (at its end s_client sends close_notify
            // and stops reading).
            let stdout = client.stdout.take().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut echoed = String::new();
                let _ =
                    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut echoed);
                let _ = tx.send(echoed);
            });
            let echoed = rx.recv_timeout(IO_TIMEOUT).unwrap_or_default();
            drop(stdin);
            let out = client.wait_with_output().unwrap();
            assert_eq!(
                echoed,
                line,
                "{model} {version}: s_client stderr {:?}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.success(),
                "{model} {version}: s_client {}",
                out.status
            );
        }
    }
}

#[test]
fn garbage_instead_of_a_client_hello_is_refused_and_service_goes_on() {
    let config = client_config(&rustls::version::TLS13);
    for model in tls_models() {
        let mut server = start_tls(&model, &[]);
        let mut garbage = server.connect();
        garbage
            .write_all(b"GET / HTTP/1.0\r\n\r\nnot tls at all")
            .unwrap();
        garbage.write_all(&Rng::new(3).bytes(4_000)).unwrap();
        // The server answers with an alert at most, then closes (or resets).
        let mut answer = Vec::new();
        match garbage.read_to_end(&mut answer) {
            Ok(_) => assert!(answer.len() < 100, "{model}: answered {answer:?}"),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            Err(e) => panic!("{model}: garbage connection not closed: {e}"),
        }
        let mut tls = connect(&server, &config);
        ping(&mut tls, b"still serving");
        close(tls, &model);
        assert!(
            tls_line(&mut server).contains(" 1 handshake failures,"),
            "{model}"
        );
    }
}

#[test]
fn a_client_that_never_sends_its_hello_is_cut_off_at_the_handshake_timeout() {
    let config = client_config(&rustls::version::TLS13);
    for model in tls_models() {
        let mut server = start_tls(&model, &["--tls-handshake-timeout", "300ms"]);
        let mut silent = server.connect();
        // For the models with few workers: as many silent clients as there are workers.
        let more: Vec<TcpStream> = (1..4).map(|_| server.connect()).collect();
        // Cut off by the server within the read timeout: EOF, or a reset.
        match silent.read(&mut [0u8; 16]) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("{model}: a silent client was not cut off: {other:?}"),
        }
        drop(more);
        // The worker it held serves the next client.
        let mut tls = connect(&server, &config);
        ping(&mut tls, b"served after the timeout");
        close(tls, &model);
        let line = tls_line(&mut server);
        assert!(line.contains(" handshake timeouts,"), "{model}: {line}");
        assert!(!line.contains(" 0 handshake timeouts,"), "{model}: {line}");
    }
}

#[test]
fn a_client_that_drips_its_hello_is_cut_off_at_the_handshake_timeout() {
    let config = client_config(&rustls::version::TLS13);
    for model in tls_models() {
        let mut server = start_tls(&model, &["--tls-handshake-timeout", "1s"]);
        let mut drip = server.connect();
        // A handshake record announcing 16 KiB, then one byte of it every 100 ms: each read
        // brings something, so only a deadline checked between reads cuts the client off.
        drip.write_all(&[0x16, 0x03, 0x01, 0x40, 0x00]).unwrap();
        drip.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let cut_off = (0..40).any(|_| {
            if drip.write_all(&[1]).is_err() {
                return true;
            }
            match drip.read(&mut [0u8; 16]) {
                Ok(0) => true,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
                other => panic!("{model}: a dripped hello was answered: {other:?}"),
            }
        });
        // 40 drips of 100 ms each are 4 s, four times the timeout.
        assert!(
            cut_off,
            "{model}: a client dripping its hello for 4 s outlived --tls-handshake-timeout 1s"
        );
        // The worker it held serves the next client.
        let mut tls = connect(&server, &config);
        ping(&mut tls, b"served after the drip");
        close(tls, &model);
        // A stop while a client drips is seen within 2 s, as any other stop.
        let mut drip = server.connect();
        drip.write_all(&[0x16, 0x03, 0x01, 0x40, 0x00]).unwrap();
        let dripping = std::thread::spawn(move || {
            for _ in 0..60 {
                if drip.write_all(&[1]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let line = tls_line(&mut server);
        assert!(line.contains(" 1 handshake timeouts,"), "{model}: {line}");
        dripping.join().unwrap();
    }
}

#[test]
fn clients_reset_during_and_after_the_handshake_leave_the_server_serving() {
    for model in tls_models() {
        // A configuration per client: no session to resume.
        let config = || client_config(&rustls::version::TLS13);
        let mut server = start_tls(&model, &[]);
        // Reset after a complete handshake, with echo in flight.
        let mut tls = connect(&server, &config());
        ping(&mut tls, b"before the reset");
        tls.write_all(&[7u8; 20_000]).unwrap();
        reset(tls.sock);
        // Reset halfway through a ClientHello.
        let mut half = server.connect();
        half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .unwrap();
        reset(half);
        let mut tls = connect(&server, &config());
        ping(&mut tls, b"served after the resets");
        close(tls, &model);
        assert!(server.is_running(), "{model}: died");
        let said = tls_line(&mut server);
        assert!(said.contains(" 2 full handshakes,"), "{model}: {said}");
        assert!(said.contains(" 1 handshake failures,"), "{model}: {said}");
    }
}

/// Closes `stream` with a TCP reset (`SO_LINGER` 0).
fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

#[test]
fn sessions_resume_in_every_tls_model_forked_workers_included() {
    for model in tls_models() {
        let mut server = start_tls(&model, &[]);
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            // One client configuration: its session cache holds the tickets.
            let config = client_config(version);
            for i in 0..6 {
                let mut tls = connect(&server, &config);
                ping(&mut tls, b"tickets arrive with the first echo");
                let expected = if i == 0 {
                    HandshakeKind::Full
                } else {
                    HandshakeKind::Resumed
                };
                let kind = tls.conn.handshake_kind();
                assert_eq!(kind, Some(expected), "{model} {version:?} connection {i}");
                close(tls, &model);
            }
        }
        let line = tls_line(&mut server);
        assert!(
            line.starts_with("echo-server: tls: 2 full handshakes, 10 resumed,"),
            "{model}: {line}"
        );
    }
}

#[test]
fn a_tls_client_that_never_reads_is_back_pressured_with_bounded_memory() {
    const CEILING: usize = 64 << 20;
    let config = client_config(&rustls::version::TLS13);
    let chunk = Rng::new(5).bytes(16 * 1024);
    for model in tls_models() {
        let server = start_tls(&model, &[]);
        let mut hog = connect(&server, &config);
        ping(&mut hog, b"warm");
        server.wait_for_workers();
        let before = tree_anon_kib(server.pid());
        hog.sock
            .set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        // Records out until the socket takes no more: the server has stopped reading.
        hog.conn.set_buffer_limit(None);
        let mut sent = 0;
        'send: while sent < CEILING {
            hog.conn.writer().write_all(&chunk).unwrap();
            sent += chunk.len();
            while hog.conn.wants_write() {
                match hog.conn.write_tls(&mut hog.sock) {
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break 'send
                    }
                    Err(e) => panic!("{model}: write failed after {sent} bytes: {e}"),
                }
            }
        }
        assert_back_pressured(&server, sent < CEILING, before);
        if serves_one_at_a_time(&model) {
            drop(hog);
        }
        let mut other = connect(&server, &config);
        ping(&mut other, b"others still served");
    }
}
