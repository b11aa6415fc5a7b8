//! `--attack`'s clients against a scripted server that records every connection (where it came
//! from, when, what it sent) and answers as told: echo for everyone, or, for the attackers, a
//! close after a few bytes, or the blocked line. The legitimate load runs beside them and must
//! be counted apart.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use loadgen::attack::{AttackSpec, BLOCKED_LINE};
use loadgen::Options;

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// What the scripted server does with an attack connection.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// Echo, as to everyone.
    Echo,
    /// Closes it once it has sent this many bytes.
    CloseAfter(usize),
    /// Says the blocked line and closes it.
    Blocked,
}

/// One connection the server saw.
#[derive(Debug, Clone)]
struct Seen {
    from: IpAddr,
    at: Instant,
    bytes: Vec<u8>,
}

/// A server that echoes, answers attack connections as `answer` says, and records every
/// connection; its address and the record. Its threads end with the process.
fn scripted(answer: Answer) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = Arc::clone(&seen);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let from = stream.peer_addr().unwrap().ip();
            let index = {
                let mut all = record.lock().unwrap();
                all.push(Seen {
                    from,
                    at: Instant::now(),
                    bytes: Vec::new(),
                });
                all.len() - 1
            };
            let record = Arc::clone(&record);
            thread::spawn(move || serve(&mut stream, from == ATTACKER, answer, &record, index));
        }
    });
    (addr, seen)
}

fn serve(
    stream: &mut TcpStream,
    attacker: bool,
    answer: Answer,
    record: &Mutex<Vec<Seen>>,
    index: usize,
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    if attacker && answer == Answer::Blocked {
        let _ = stream.write_all(BLOCKED_LINE);
        return;
    }
    let mut buf = [0u8; 4096];
    let mut got = 0;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        got += n;
        if attacker {
            record.lock().unwrap()[index]
                .bytes
                .extend_from_slice(&buf[..n]);
            if let Answer::CloseAfter(limit) = answer {
                if got >= limit {
                    return;
                }
            }
        }
        // `--work cpu=0`'s answer is the request itself: echo serves it.
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// The attack connections the server saw.
fn attackers(seen: &Mutex<Vec<Seen>>) -> u64 {
    let seen = seen.lock().unwrap();
    seen.iter().filter(|s| s.from == ATTACKER).count() as u64
}

/// A run of `duration` at 1,000 requests/s over 4 connections of `--work cpu=0`, beside
/// `attack` every `interval`.
fn options(addr: SocketAddr, attack: &str, interval: Duration, duration: Duration) -> Options {
    let mut o = Options::new(addr);
    o.connections = 4;
    o.rate = Some(1000.0);
    o.duration = duration;
    o.warmup = Duration::from_millis(200);
    o.progress = false;
    o.work = Some(loadgen::work::WorkSpec::parse("cpu=0").unwrap());
    o.attack = Some(AttackSpec::parse(attack).unwrap());
    o.attack_interval = interval;
    o
}

#[test]
fn slowloris_trickles_a_request_it_never_finishes_from_its_own_address() {
    let (addr, seen) = scripted(Answer::Echo);
    let interval = Duration::from_millis(100);
    let started = Instant::now();
    let report = loadgen::run(&options(
        addr,
        "slowloris:8",
        interval,
        Duration::from_secs(1),
    ))
    .unwrap();
    let ran = started.elapsed();
    // The legitimate load, counted apart, was served in full.
    assert!(
        report.messages > 0 && report.errors.total() == 0,
        "{report:?}"
    );
    assert_eq!(report.achieved_rate_ratio.map(|r| r > 0.95), Some(true));
    let attack = report.attack.clone().unwrap();
    assert_eq!(attack.spec, "slowloris:8");
    assert_eq!(attack.from, "127.0.0.2");
    assert_eq!((attack.attempts, attack.connected), (8, 8), "{attack:?}");
    assert_eq!((attack.open_at_end, attack.closed_by_server), (8, 0));
    let seen = seen.lock().unwrap().clone();
    let (attackers, legitimate): (Vec<Seen>, Vec<Seen>) =
        seen.into_iter().partition(|s| s.from == ATTACKER);
    assert_eq!(attackers.len(), 8);
    assert_eq!(legitimate.len(), 4);
    // The attackers came a second ahead of the load.
    let first_legit = legitimate.iter().map(|s| s.at).min().unwrap();
    let last_attacker = attackers.iter().map(|s| s.at).max().unwrap();
    assert!(first_legit.duration_since(last_attacker) >= Duration::from_millis(800));
    for a in &attackers {
        // A header that announces 1 MiB, then a byte a tick: about 2.2 s at 100 ms.
        assert_eq!(&a.bytes[..4], b"EBW1", "{:?}", a.bytes);
        let ticks = ran.as_secs_f64() / interval.as_secs_f64();
        let sent = a.bytes.len() as f64;
        assert!(
            sent >= ticks * 0.5 && sent <= ticks + 2.0,
            "{sent} bytes in {ran:?}"
        );
        assert!(a.bytes.len() < 1 << 20);
    }
}

#[test]
fn connections_the_server_closes_are_opened_again_and_counted() {
    let (addr, seen) = scripted(Answer::CloseAfter(3));
    let report = loadgen::run(&options(
        addr,
        "slowloris:4",
        Duration::from_millis(50),
        Duration::from_millis(800),
    ))
    .unwrap();
    let attack = report.attack.unwrap();
    // Each connection is closed after its third byte (three ticks) and reopened at the next.
    assert!(attack.closed_by_server >= 8, "{attack:?}");
    assert_eq!(attack.attempts, attack.connected);
    assert!(attack.attempts >= attack.closed_by_server, "{attack:?}");
    assert_eq!(attackers(&seen), attack.connected);
}

#[test]
fn silent_clients_send_nothing() {
    let (addr, seen) = scripted(Answer::Echo);
    let report = loadgen::run(&options(
        addr,
        "silent:5",
        Duration::from_millis(50),
        Duration::from_millis(500),
    ))
    .unwrap();
    let attack = report.attack.unwrap();
    assert_eq!((attack.connected, attack.open_at_end), (5, 5), "{attack:?}");
    let seen = seen.lock().unwrap();
    let attackers: Vec<&Seen> = seen.iter().filter(|s| s.from == ATTACKER).collect();
    assert_eq!(attackers.len(), 5);
    assert!(attackers.iter().all(|s| s.bytes.is_empty()));
}

#[test]
fn a_flood_connects_at_its_rate_and_counts_the_blocked_lines() {
    let (addr, seen) = scripted(Answer::Blocked);
    let started = Instant::now();
    let report = loadgen::run(&options(
        addr,
        "connect-flood:200",
        Duration::from_secs(1),
        Duration::from_millis(800),
    ))
    .unwrap();
    let ran = started.elapsed().as_secs_f64();
    assert!(
        report.messages > 0,
        "the legitimate load is served beside the flood"
    );
    let attack = report.attack.unwrap();
    let expected = 200.0 * ran;
    let attempts = attack.attempts as f64;
    assert!(
        attempts >= expected * 0.7 && attempts <= expected * 1.1,
        "{attempts} attempts in {ran:.2} s at 200/s"
    );
    // Every connection was told, and closed by the server.
    assert!(
        attack.blocked_lines as f64 >= attack.connected as f64 * 0.9,
        "{attack:?}"
    );
    assert!(attack.blocked_lines <= attack.connected);
    // The server closes each after its line; one read just before its 100 ms ran out may
    // not have seen the close.
    assert!(
        attack.closed_by_server as f64 >= attack.connected as f64 * 0.9,
        "{attack:?}"
    );
    assert_eq!(attackers(&seen), attack.connected);
}

#[test]
fn attacks_are_refused_where_they_cannot_run() {
    let addr = "127.0.0.1:9".parse().unwrap();
    let mut o = options(
        addr,
        "silent:1",
        Duration::from_secs(1),
        Duration::from_secs(1),
    );
    o.udp = true;
    o.work = None;
    assert!(o.validate().unwrap_err().contains("--attack"));
    let mut o = options(addr, "silent:1", Duration::ZERO, Duration::from_secs(1));
    assert!(o.validate().unwrap_err().contains("--attack-interval"));
    o.attack_interval = Duration::from_secs(1);
    o.attack_from = "::1".parse().unwrap();
    assert!(o.validate().unwrap_err().contains("--attack-from"));
}
