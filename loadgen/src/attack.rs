//! `--attack`: hostile clients beside the load, from an address of their own (`--attack-from`,
//! 127.0.0.2 by default), counted apart from the legitimate clients ([`AttackReport`]). They
//! start a second before the load and stop when it ends.
//!
//! - `slowloris:N`: N connections, each sending one byte of a request every
//!   `--attack-interval` (1 s by default) and never finishing it (its header, in
//!   `echo-server --work`'s protocol, announces 1 MiB). A connection the server closes is
//!   opened again at the next tick, so that N stay open where the server lets them.
//! - `silent:N`: N connections that send nothing, kept open the same way.
//! - `connect-flood:R`: R new connections a second, each reading what the server says for up
//!   to 100 ms, then closed.
//!
//! The attackers close with a reset (`SO_LINGER` 0), as flood tools do: no TIME_WAIT is left
//! on their side, so a flood of thousands of connections a second does not use up the
//! attacking address's ports. One thread drives them all on one mio poll, pinned to
//! loadgen's CPUs.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::machine::pin_to;
use crate::numbers::{parse_count, parse_scaled};
use crate::report::AttackReport;
use crate::{source, work};

/// Where attack connections come from unless `--attack-from` says otherwise.
pub const DEFAULT_FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// `--attack-interval` unless given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// How long before the load the attackers start.
pub const HEAD_START: Duration = Duration::from_secs(1);

/// How long a flood connection reads what the server says before it closes.
pub const FLOOD_READ: Duration = Duration::from_millis(100);

/// The most connections `slowloris:N` and `silent:N` may hold.
pub const MAX_CONNECTIONS: usize = 100_000;

/// The highest `connect-flood:R`, connections a second.
pub const MAX_FLOOD_RATE: f64 = 1_000_000.0;

/// What the server says to a blocked client (echo-server's IP blocker, after the tutorial).
pub const BLOCKED_LINE: &[u8] = b"You have been blocked due to too many attempts.\n";

/// A slowloris request's length as its header announces it: 1 MiB, which its trickle never
/// reaches.
const SLOWLORIS_LEN: u32 = 1 << 20;

/// Bytes of what the server says that are kept, to find the blocked line in.
const SEEN: usize = 256;

/// One kind of attack.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// Connections that trickle a request and never finish it.
    Slowloris(usize),
    /// Connections that send nothing.
    Silent(usize),
    /// New connections a second, each closed after [`FLOOD_READ`].
    ConnectFlood(f64),
}

/// `--attack KIND:N` as given.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackSpec {
    /// The attack.
    pub kind: Kind,
    /// As written, for the report.
    pub text: String,
}

impl AttackSpec {
    /// Parses `slowloris:N`, `silent:N` or `connect-flood:R` (N and R take `k`, `M`).
    pub fn parse(text: &str) -> Result<AttackSpec, String> {
        let usage = "slowloris:N, silent:N or connect-flood:R";
        let (name, count) = text
            .split_once(':')
            .ok_or_else(|| format!("'{text}' is not {usage}"))?;
        let connections = || -> Result<usize, String> {
            let n = parse_count(count)?;
            match usize::try_from(n) {
                Ok(n) if (1..=MAX_CONNECTIONS).contains(&n) => Ok(n),
                _ => Err(format!(
                    "{name} takes 1 to {MAX_CONNECTIONS} connections, not {count}"
                )),
            }
        };
        let kind = match name {
            "slowloris" => Kind::Slowloris(connections()?),
            "silent" => Kind::Silent(connections()?),
            "connect-flood" => match parse_scaled(count)? {
                r if r > 0.0 && r <= MAX_FLOOD_RATE => Kind::ConnectFlood(r),
                _ => {
                    return Err(format!(
                        "connect-flood takes a rate above 0 and at most {MAX_FLOOD_RATE} a second, not {count}"
                    ))
                }
            },
            other => return Err(format!("unknown attack '{other}' (use {usage})")),
        };
        Ok(AttackSpec {
            kind,
            text: text.to_owned(),
        })
    }
}

/// Where and how the attackers run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The attack.
    pub spec: AttackSpec,
    /// The address its connections come from.
    pub from: IpAddr,
    /// A slowloris client's byte, and reopening closed connections, every this long.
    pub interval: Duration,
    /// The server.
    pub target: SocketAddr,
    /// How long a connect may take before it counts as refused.
    pub timeout: Duration,
    /// CPUs to pin the attackers' thread to; empty: not pinned.
    pub cpus: Vec<usize>,
}

/// Attackers running on their own thread until [`Attack::finish`].
pub struct Attack {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<AttackReport>>,
}

/// Starts the attackers.
pub fn start(plan: Plan) -> anyhow::Result<Attack> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let thread = thread::Builder::new()
        .name("attack".to_owned())
        .spawn(move || {
            if !plan.cpus.is_empty() {
                pin_to(&plan.cpus)?;
            }
            Attackers::new(plan)?.run(&flag)
        })
        .context("cannot start the attackers' thread")?;
    Ok(Attack { stop, thread })
}

impl Attack {
    /// Stops the attackers, closes their connections, and says what they did.
    pub fn finish(self) -> anyhow::Result<AttackReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("the attackers' thread panicked"))?
    }
}

/// One attack connection.
struct Conn {
    stream: TcpStream,
    opened: Instant,
    connected: bool,
    /// Bytes of the request sent so far (slowloris).
    sent: usize,
    /// The first bytes the server said.
    seen: Vec<u8>,
}

struct Attackers {
    plan: Plan,
    poll: Poll,
    conns: Slab<Conn>,
    /// Flood connections by when they close, in that order.
    deadlines: VecDeque<(Instant, usize)>,
    report: AttackReport,
    started: Instant,
}

impl Attackers {
    fn new(plan: Plan) -> anyhow::Result<Attackers> {
        let report = AttackReport {
            spec: plan.spec.text.clone(),
            from: plan.from.to_string(),
            interval_s: plan.interval.as_secs_f64(),
            ..AttackReport::default()
        };
        Ok(Attackers {
            plan,
            poll: Poll::new().context("cannot create the attackers' poll")?,
            conns: Slab::new(),
            deadlines: VecDeque::new(),
            report,
            started: Instant::now(),
        })
    }

    fn run(mut self, stop: &AtomicBool) -> anyhow::Result<AttackReport> {
        let mut events = Events::with_capacity(1024);
        let mut next_tick = self.started;
        let mut flood_opened: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let next_due = match self.plan.spec.kind {
                Kind::Slowloris(n) | Kind::Silent(n) => {
                    if now >= next_tick {
                        self.tick(n)?;
                        next_tick = now + self.plan.interval;
                    }
                    next_tick
                }
                Kind::ConnectFlood(rate) => {
                    let due = (now.duration_since(self.started).as_secs_f64() * rate) as u64;
                    // After a stall, catch up by at most a tenth of a second's worth.
                    let burst = (rate / 10.0).max(1.0) as u64;
                    let behind = due.saturating_sub(flood_opened);
                    for _ in 0..behind.min(burst) {
                        self.open()?;
                    }
                    // Beyond a burst, what a stall missed is skipped, not made up.
                    flood_opened = flood_opened.max(due);
                    self.started + Duration::from_secs_f64((flood_opened + 1) as f64 / rate)
                }
            };
            self.close_overdue(now);
            let wake = [Some(next_due), self.deadlines.front().map(|&(at, _)| at)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + self.plan.interval);
            // At most 50 ms, so that a stop is seen soon.
            let timeout = wake
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50));
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).context("the attackers' poll failed"),
            }
            for event in events.iter() {
                self.ready(event.token().0);
            }
        }
        self.report.duration_s = self.started.elapsed().as_secs_f64();
        self.report.open_at_end = self.conns.iter().filter(|(_, c)| c.connected).count() as u64;
        for conn in self.conns.drain() {
            close(conn);
        }
        Ok(self.report)
    }

    /// Slowloris and silent: opens connections up to `n`, ends connects that took longer
    /// than the timeout, and (slowloris) sends each connected one its next byte.
    fn tick(&mut self, n: usize) -> anyhow::Result<()> {
        let now = Instant::now();
        let stuck: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.connected && now.duration_since(c.opened) >= self.plan.timeout)
            .map(|(key, _)| key)
            .collect();
        for key in stuck {
            self.report.refused += 1;
            close(self.conns.remove(key));
        }
        if matches!(self.plan.spec.kind, Kind::Slowloris(_)) {
            let mut gone = Vec::new();
            for (key, conn) in self.conns.iter_mut().filter(|(_, c)| c.connected) {
                if conn.stream.write(&[slowloris_byte(conn.sent)]).is_err() {
                    gone.push(key);
                } else {
                    conn.sent += 1;
                }
            }
            for key in gone {
                self.closed_by_server(key);
            }
        }
        while self.conns.len() < n {
            self.open()?;
        }
        Ok(())
    }

    /// Starts one connection from the attacking address; counts it.
    fn open(&mut self) -> anyhow::Result<()> {
        self.report.attempts += 1;
        let stream = match connect_from(self.plan.from, self.plan.target) {
            Ok(stream) => stream,
            Err(e) if is_local_shortage(&e) => {
                // Out of ports or descriptors: counted as refused; the next tick tries again.
                self.report.refused += 1;
                return Ok(());
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::AddrNotAvailable {
                    return Err(e).with_context(|| {
                        format!(
                            "--attack-from {}: not an address of this host",
                            self.plan.from
                        )
                    });
                }
                self.report.refused += 1;
                return Ok(());
            }
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let opened = Instant::now();
        let mut conn = Conn {
            stream,
            opened,
            connected: false,
            sent: 0,
            seen: Vec::new(),
        };
        self.poll
            .registry()
            .register(
                &mut conn.stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .context("cannot register an attack connection")?;
        entry.insert(conn);
        if matches!(self.plan.spec.kind, Kind::ConnectFlood(_)) {
            self.deadlines.push_back((opened + FLOOD_READ, key));
        }
        Ok(())
    }

    /// A flood connection's 100 ms are over: it closes (refused, if it never connected).
    fn close_overdue(&mut self, now: Instant) {
        while let Some(&(at, key)) = self.deadlines.front().filter(|(at, _)| *at <= now) {
            self.deadlines.pop_front();
            // The entry may be gone (closed by the server) and its key taken since.
            let Some(conn) = self.conns.get(key) else {
                continue;
            };
            if conn.opened + FLOOD_READ != at {
                continue;
            }
            let conn = self.conns.remove(key);
            if !conn.connected {
                self.report.refused += 1;
            }
            close(conn);
        }
    }

    /// Connection `key` is readable or writable.
    fn ready(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.connected {
            match conn.stream.take_error() {
                Ok(None) => {}
                _ => {
                    self.report.refused += 1;
                    close(self.conns.remove(key));
                    return;
                }
            }
            match conn.stream.peer_addr() {
                Ok(_) => {
                    conn.connected = true;
                    self.report.connected += 1;
                    // Only reads matter from here on.
                    let _ = self.poll.registry().reregister(
                        &mut conn.stream,
                        Token(key),
                        Interest::READABLE,
                    );
                    let slowloris = matches!(self.plan.spec.kind, Kind::Slowloris(_));
                    if slowloris && conn.stream.write(&[slowloris_byte(0)]).is_ok() {
                        conn.sent = 1;
                    }
                }
                // Still connecting.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(_) => {
                    self.report.refused += 1;
                    close(self.conns.remove(key));
                    return;
                }
            }
        }
        let mut buf = [0u8; 4096];
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => return self.closed_by_server(key),
                Ok(n) => {
                    let before = seen_blocked(&conn.seen);
                    let room = SEEN.saturating_sub(conn.seen.len());
                    conn.seen.extend_from_slice(&buf[..n.min(room)]);
                    if !before && seen_blocked(&conn.seen) {
                        self.report.blocked_lines += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.closed_by_server(key),
            }
        }
    }

    /// The server closed connection `key` (EOF, reset, or a failed write).
    fn closed_by_server(&mut self, key: usize) {
        if let Some(conn) = self.conns.try_remove(key) {
            self.report.closed_by_server += 1;
            close(conn);
        }
    }
}

/// Byte `i` of a slowloris request: its header (`--work`'s, no cost), then payload, never the
/// last byte.
fn slowloris_byte(i: usize) -> u8 {
    work::header(SLOWLORIS_LEN, 0, 0)
        .get(i)
        .copied()
        .unwrap_or(b'.')
}

/// Whether the server's first bytes hold the blocked line.
fn seen_blocked(seen: &[u8]) -> bool {
    seen.windows(BLOCKED_LINE.len()).any(|w| w == BLOCKED_LINE)
}

/// An error of this host (ports, descriptors, memory) rather than of the server.
fn is_local_shortage(e: &io::Error) -> bool {
    use nix::libc::{EADDRINUSE, EMFILE, ENFILE, ENOBUFS, ENOMEM};
    matches!(
        e.raw_os_error(),
        Some(EMFILE | ENFILE | ENOBUFS | ENOMEM | EADDRINUSE)
    )
}

/// Starts a non-blocking connect to `target` from `from` (the port picked at connect time),
/// closing with a reset (see the module's note).
fn connect_from(from: IpAddr, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = source::connect_from(Some(from), target)?;
    socket.set_linger(Some(Duration::ZERO))?;
    Ok(TcpStream::from_std(socket.into()))
}

/// Closes an attack connection (with a reset: see the module's note).
fn close(conn: Conn) {
    drop(conn.stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacks_parse_with_their_counts() {
        let spec = AttackSpec::parse("slowloris:64").unwrap();
        assert_eq!(spec.kind, Kind::Slowloris(64));
        assert_eq!(spec.text, "slowloris:64");
        assert_eq!(
            AttackSpec::parse("silent:1k").unwrap().kind,
            Kind::Silent(1000)
        );
        assert_eq!(
            AttackSpec::parse("connect-flood:2000").unwrap().kind,
            Kind::ConnectFlood(2000.0)
        );
        for bad in [
            "slowloris",
            "slowloris:0",
            "silent:x",
            "flood:10",
            "connect-flood:0",
        ] {
            assert!(AttackSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(AttackSpec::parse("silent:200001")
            .unwrap_err()
            .contains("100000"));
    }

    #[test]
    fn a_slowloris_request_never_ends() {
        let header: Vec<u8> = (0..16).map(slowloris_byte).collect();
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        assert_eq!(&header[..4], b"EBW1");
        assert_eq!(len, 1 << 20);
        assert_eq!(slowloris_byte(1_000), b'.');
    }

    #[test]
    fn the_blocked_line_is_found_among_what_the_server_said() {
        assert!(seen_blocked(BLOCKED_LINE));
        let mut seen = b"hello ".to_vec();
        seen.extend_from_slice(BLOCKED_LINE);
        assert!(seen_blocked(&seen));
        assert!(!seen_blocked(&BLOCKED_LINE[..20]));
    }
}
