//! The defences against hostile clients, checked against every Rust TCP model through the real
//! `echo-server` binary: the cap per address (`--per-ip-max-conns`) counted across threads,
//! workers and processes; the tutorial's IP blocker (`--block-after`), whose blocked clients
//! receive its line; `--idle-timeout`, which closes a silent or a slowloris connection but
//! not a slow answer or a client that takes its time between requests; and the `limits:` line
//! at exit, whose counts are exact. Attackers connect from 127.0.0.2, other clients from
//! 127.0.0.3 (all of 127.0.0.0/8 is loopback).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use echo_server::defence::BLOCKED_LINE;
use echo_server::work::{header, HEADER};
use socket2::{Domain, Socket, Type};

use common::{assert_refused, rust_tcp_models, serves_one_at_a_time, Server, IO_TIMEOUT};

const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const BYSTANDER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

/// A client of `server` from `from`, with timeouts on every read and write.
fn connect_from(server: &Server, from: Ipv4Addr) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::new(IpAddr::V4(from), 0).into())
        .unwrap();
    socket
        .connect_timeout(&server.addr.into(), IO_TIMEOUT)
        .unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// A `--work` request of 64 bytes with no cost but `wait_us`.
fn request(wait_us: u32) -> Vec<u8> {
    let mut r = header(64, 0, wait_us).to_vec();
    r.resize(64, 0x5a);
    r
}

/// Sends one request and reads its answer; false when the server closed the connection.
fn served(stream: &mut TcpStream) -> bool {
    let sent = request(0);
    if stream.write_all(&sent).is_err() {
        return false;
    }
    let mut back = vec![0u8; sent.len()];
    match stream.read_exact(&mut back) {
        Ok(()) => back == sent,
        Err(_) => false,
    }
}

/// Everything the server sends until it closes the connection (EOF or reset), and how long
/// that took.
fn read_to_close(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no close within {IO_TIMEOUT:?}: {e}"),
        }
    }
    (got, start.elapsed())
}

/// The `limits:` line of a server that has exited.
fn limits_line(server: &mut Server) -> String {
    let (status, _) = server.terminate(IO_TIMEOUT);
    assert!(status.success(), "{}: {status}", server.model);
    let said = server.final_stderr();
    said.lines()
        .find(|l| l.starts_with("echo-server: limits: "))
        .unwrap_or_else(|| panic!("{}: no limits line in {said:?}", server.model))
        .to_owned()
}

/// Retries `attempt` until it holds or `IO_TIMEOUT` passes: a server learns of a close when
/// its thread, task or process gets to it.
fn eventually(mut attempt: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + IO_TIMEOUT;
    while Instant::now() < deadline {
        if attempt() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn the_cap_per_address_holds_across_threads_workers_and_processes() {
    for model in rust_tcp_models() {
        // One at a time: the cap can never be passed.
        if serves_one_at_a_time(&model) {
            continue;
        }
        let mut server = Server::start(&model, &["--work", "--per-ip-max-conns", "2"]);
        server.wait_for_workers();
        let mut first = connect_from(&server, ATTACKER);
        let mut second = connect_from(&server, ATTACKER);
        assert!(served(&mut first), "{model}: first connection");
        assert!(served(&mut second), "{model}: second connection");
        // With four workers, the third lands on a worker that serves neither of the first two:
        // only a count shared across processes refuses it.
        let mut third = connect_from(&server, ATTACKER);
        let (said, _) = read_to_close(&mut third);
        assert!(
            said.is_empty(),
            "{model}: the refused connection got {said:?}"
        );
        let mut other = connect_from(&server, BYSTANDER);
        assert!(
            served(&mut other),
            "{model}: another address has its own count"
        );
        drop(first);
        // Its place is given back once the server has seen the close.
        let mut refused = 1;
        assert!(
            eventually(|| {
                let mut again = connect_from(&server, ATTACKER);
                let ok = served(&mut again);
                refused += u32::from(!ok);
                ok
            }),
            "{model}: a closed connection's place was never given back"
        );
        drop((second, other));
        let line = limits_line(&mut server);
        assert_eq!(
            line,
            format!(
                "echo-server: limits: 0 idle timeouts, {refused} over per-address limit, 0 blocked"
            ),
            "{model}"
        );
    }
}

#[test]
fn the_blocker_blocks_the_nth_attempt_and_tells_the_client() {
    for model in rust_tcp_models() {
        let args = ["--block-after", "3", "--block-window", "10s"];
        let mut server = Server::start(&model, &args);
        server.wait_for_workers();
        for _ in 1..=2 {
            let mut client = connect_from(&server, ATTACKER);
            common::ping(&mut client, b"let me in");
        }
        // The third attempt within the window blocks the address; the fourth is still blocked.
        for attempt in 3..=4 {
            let mut client = connect_from(&server, ATTACKER);
            let (said, _) = read_to_close(&mut client);
            assert_eq!(
                String::from_utf8_lossy(&said),
                String::from_utf8_lossy(BLOCKED_LINE),
                "{model}: attempt {attempt}"
            );
        }
        let mut other = connect_from(&server, BYSTANDER);
        common::ping(&mut other, b"not blocked");
        drop(other);
        let line = limits_line(&mut server);
        assert_eq!(
            line, "echo-server: limits: 0 idle timeouts, 0 over per-address limit, 2 blocked",
            "{model}"
        );
    }
}

#[test]
fn the_idle_timeout_closes_silent_and_slowloris_clients_only() {
    const LIMIT: Duration = Duration::from_millis(400);
    let models = rust_tcp_models();
    // Each model in its own thread: the checks wait out the limit several times.
    let checks: Vec<_> = models
        .into_iter()
        .map(|model| {
            thread::spawn(move || {
                let mut server = Server::start(&model, &["--work", "--idle-timeout", "400ms"]);
                server.wait_for_workers();
                // A client that takes its time between requests, each answered at once.
                let mut patient = connect_from(&server, BYSTANDER);
                for _ in 0..3 {
                    thread::sleep(LIMIT / 2);
                    assert!(served(&mut patient), "{model}: a patient client was closed");
                }
                // A request whose answer takes longer than the limit: the server's time.
                let slow = request(600_000);
                patient.write_all(&slow).unwrap();
                let mut back = vec![0u8; slow.len()];
                patient.read_exact(&mut back).unwrap();
                drop(patient);
                // Silent: connects and sends nothing.
                let mut silent = connect_from(&server, ATTACKER);
                let (said, took) = read_to_close(&mut silent);
                assert!(said.is_empty(), "{model}: {said:?}");
                assert!(
                    took >= LIMIT - Duration::from_millis(50),
                    "{model}: {took:?}"
                );
                // Slowloris: a byte of a request every 100 ms, never the whole of it.
                let mut slowloris = connect_from(&server, ATTACKER);
                let start = Instant::now();
                let mut sent = 0;
                let closed = loop {
                    let bytes = request(0);
                    if sent == HEADER * 2 || slowloris.write_all(&bytes[sent..=sent]).is_err() {
                        break start.elapsed();
                    }
                    sent += 1;
                    let mut buf = [0u8; 16];
                    slowloris
                        .set_read_timeout(Some(Duration::from_millis(100)))
                        .unwrap();
                    match slowloris.read(&mut buf) {
                        Ok(0) => break start.elapsed(),
                        Err(e) if e.kind() == ErrorKind::ConnectionReset => break start.elapsed(),
                        _ => {}
                    }
                };
                assert!(
                    sent < HEADER * 2,
                    "{model}: a slowloris client was never closed"
                );
                assert!(
                    closed >= LIMIT - Duration::from_millis(50) && closed < LIMIT * 3,
                    "{model}: closed after {closed:?}"
                );
                let line = limits_line(&mut server);
                assert_eq!(
                    line,
                    "echo-server: limits: 2 idle timeouts, 0 over per-address limit, 0 blocked",
                    "{model}"
                );
            })
        })
        .collect();
    for check in checks {
        check.join().unwrap();
    }
}

#[test]
fn defences_without_what_they_guard_are_refused() {
    assert_refused(&["mio", "--idle-timeout", "2s"], "--work");
    assert_refused(&["mio", "--work", "--idle-timeout", "0s"], "--idle-timeout");
    assert_refused(&["mio", "--block-after", "3"], "--block-window");
    assert_refused(&["mio", "--block-for", "3s"], "--block-after");
    assert_refused(&["mio", "--per-ip-max-conns", "0"], "--per-ip-max-conns");
    assert_refused(
        &["udp-mio", "--per-ip-max-conns", "2"],
        "--per-ip-max-conns",
    );
}
