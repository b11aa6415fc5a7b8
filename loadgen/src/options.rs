//! A run's options, flag for flag as the command line gives them, and their validation: every
//! rule across flags, and the machine's limits a run must fit.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::attack::{self, AttackSpec};
use crate::machine::{affinity_cpus, format_cpus, local_port_range, original_fd_limit};
pub use crate::numbers::{parse_count, parse_scaled};
use crate::report::{Mode, Slo};
use crate::source::{SourceAddrs, Sources};
use crate::tls::{self, TlsOptions};
use crate::udp;
use crate::work::{self, WorkSpec};

/// `--hlog-interval` unless given.
pub const DEFAULT_HLOG_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest `--hlog-interval`: shorter intervals hold too few echoes to say anything.
pub const MIN_HLOG_INTERVAL: Duration = Duration::from_millis(10);

/// Largest `--size`.
pub const MAX_SIZE: usize = 64 << 20;

/// `--chat`: bytes of a message's payload before its pattern (sender, number, intended send
/// time), and so the smallest `--size` with `--chat`.
pub const CHAT_PAYLOAD_HEADER: usize = 20;

/// `--chat`: the largest `--size`: a frame's body is at most 64 KiB, its type included.
pub const CHAT_MAX_SIZE: usize = 64 * 1024 - 1;

/// `--rate-start` unless given: the search's first rate, requests/s.
pub const DEFAULT_RATE_START: f64 = 1000.0;

/// `--step` unless given: each step's measured time.
pub const DEFAULT_STEP: Duration = Duration::from_secs(2);

/// Everything a run needs; the command line maps onto it flag for flag.
#[derive(Debug, Clone)]
pub struct Options {
    /// The target, as given (`HOST:PORT`).
    pub target: String,
    /// The target, resolved.
    pub addr: SocketAddr,
    /// Active connections.
    pub connections: usize,
    /// Measured time after warm-up.
    pub duration: Duration,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Message size, bytes.
    pub size: usize,
    /// Open loop: total rate over all connections, messages/s.
    pub rate: Option<f64>,
    /// Closed loop: messages in flight per connection.
    pub pipeline: usize,
    /// One connection per message.
    pub churn: bool,
    /// Idle connections held open for the whole run.
    pub idle: usize,
    /// Worker threads; `None`: one per CPU of `cpus` (or of the affinity mask).
    pub threads: Option<usize>,
    /// CPUs to pin the workers to; empty: not pinned.
    pub cpus: Vec<usize>,
    /// Connect timeout and echo timeout.
    pub timeout: Duration,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
    /// Where to write the percentile distribution.
    pub hgrm: Option<PathBuf>,
    /// Where to write the interval log.
    pub hlog: Option<PathBuf>,
    /// Length of the interval log's intervals.
    pub hlog_interval: Duration,
    /// Show a progress line (only ever on a terminal).
    pub progress: bool,
    /// Echo over UDP: a connected UDP socket per connection, loss judged by `timeout`.
    pub udp: bool,
    /// `--tls`: every connection a TLS client session.
    pub tls: Option<TlsOptions>,
    /// `--handshake-rate`: new connections per second beside the load, each one echo.
    pub handshake_rate: Option<f64>,
    /// `--start-at`: when the load starts (and the open-loop schedule with it), by the wall
    /// clock; `None`: at once.
    pub start_at: Option<SystemTime>,
    /// `--conn-offset`: the number of this run's first connection in the whole plan.
    pub conn_offset: usize,
    /// `--share-cpus`: other loadgens share these CPUs; give the CPU up after every batch of
    /// events.
    pub share_cpus: bool,
    /// `--conn-total`: the connections of the whole plan; `None`: this run is the whole plan.
    /// With `rate`, the rate is the whole plan's, and this run sends its connections' share
    /// of it on the plan's own schedule.
    pub conn_total: Option<usize>,
    /// `--source-addrs`: the local addresses the connections come from.
    pub source_addrs: SourceAddrs,
    /// `--work`: requests with a cost; `None`: plain echo.
    pub work: Option<WorkSpec>,
    /// `--seed`: deals `--work`'s classes out to requests.
    pub seed: u64,
    /// `--chat ROOM`: members in rooms of ROOM, for `echo-server --chat`; `None`: echo.
    pub chat: Option<usize>,
    /// `--chat-slow N`: members per room that join and never read.
    pub chat_slow: usize,
    /// For a caller that runs the load in its own process (echobench, sampling the server):
    /// set to the instant the load begins, once every connection is ready (after `--chat`'s
    /// joins, which may take up to `--timeout`); warm-up and measured time follow it. Not a
    /// flag; set by `--chat` runs only.
    pub load_started: Option<Arc<OnceLock<Instant>>>,
    /// `--attack`: hostile clients beside the load; `None`: none.
    pub attack: Option<AttackSpec>,
    /// `--attack-from`: the address the attack connections come from.
    pub attack_from: IpAddr,
    /// `--attack-interval`: a slowloris client's byte, and reopening, every this long.
    pub attack_interval: Duration,
    /// `--find-rate`: search for the highest open-loop rate that holds this latency target;
    /// `None`: one run.
    pub find_rate: Option<Slo>,
    /// `--rate-start`: the search's first rate, requests/s.
    pub rate_start: f64,
    /// `--step`: each step's measured time (after `warmup`).
    pub step: Duration,
}

impl Options {
    /// The defaults of the command line, against `addr`.
    pub fn new(addr: SocketAddr) -> Options {
        Options {
            target: addr.to_string(),
            addr,
            connections: 16,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            size: 64,
            rate: None,
            pipeline: 1,
            churn: false,
            idle: 0,
            threads: None,
            cpus: Vec::new(),
            timeout: Duration::from_secs(5),
            json: None,
            hgrm: None,
            hlog: None,
            hlog_interval: DEFAULT_HLOG_INTERVAL,
            progress: false,
            udp: false,
            tls: None,
            handshake_rate: None,
            start_at: None,
            conn_offset: 0,
            conn_total: None,
            share_cpus: false,
            source_addrs: SourceAddrs::Auto,
            work: None,
            seed: crate::work::DEFAULT_SEED,
            chat: None,
            attack: None,
            attack_from: attack::DEFAULT_FROM,
            attack_interval: attack::DEFAULT_INTERVAL,
            find_rate: None,
            rate_start: DEFAULT_RATE_START,
            step: DEFAULT_STEP,
            chat_slow: 0,
            load_started: None,
        }
    }

    /// The rules of `--chat`: whole rooms, a size that holds the payload's header, and none of
    /// the flags whose clocks or transports it cannot use.
    fn validate_chat(&self, room: usize) -> Result<(), String> {
        const MIN_SIZE: usize = CHAT_PAYLOAD_HEADER;
        const MAX_SIZE: usize = CHAT_MAX_SIZE;
        if room == 0 || self.connections % room != 0 {
            return Err(format!(
                "--chat {room}: --connections ({}) must be a whole number of rooms of {room}",
                self.connections
            ));
        }
        if self.chat_slow >= room {
            return Err(format!(
                "--chat-slow {}: a room of {room} needs at least one member that reads",
                self.chat_slow
            ));
        }
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return Err(format!(
                "--size with --chat must be from {MIN_SIZE} (the payload's header) to {MAX_SIZE} bytes"
            ));
        }
        let refused = [
            (self.udp, "--udp"),
            (self.tls.is_some(), "--tls"),
            (self.churn, "--churn"),
            (self.conn_total.is_some(), "--conn-total (agents)"),
            (self.work.is_some(), "--work"),
            (self.idle > 0, "--idle"),
            (self.handshake_rate.is_some(), "--handshake-rate"),
        ];
        if let Some((_, flag)) = refused.iter().find(|(on, _)| *on) {
            return Err(format!(
                "--chat cannot be combined with {flag}: a room's fan-out latency is read on one clock, over TCP"
            ));
        }
        Ok(())
    }

    /// The connections of the whole plan this run is a part of.
    pub fn plan_connections(&self) -> usize {
        self.conn_total.unwrap_or(self.connections)
    }

    /// This run's share of the plan's `--rate`.
    pub fn own_rate(&self) -> Option<f64> {
        self.rate
            .map(|rate| rate * self.connections as f64 / self.plan_connections() as f64)
    }

    /// How load is offered.
    pub fn mode(&self) -> Mode {
        match (self.churn, self.rate) {
            (true, _) => Mode::Churn,
            (false, Some(_)) => Mode::Open,
            (false, None) => Mode::Closed,
        }
    }

    /// Checks the rules between flags, and that the machine can hold the connections asked
    /// for (descriptors, ephemeral ports); the error names the flag and the limit.
    pub fn validate(&self) -> Result<(), String> {
        self.checked().map(|_| ())
    }

    /// The rules of `--find-rate`: a search of open-loop rates over TCP, one loadgen, each
    /// step its own run.
    fn validate_find_rate(&self) -> Result<(), String> {
        let alone = [
            (self.rate.is_some(), "--rate (the search sets the rate)"),
            (self.churn, "--churn"),
            (self.pipeline > 1, "--pipeline"),
            (self.udp, "--udp"),
            (self.chat.is_some(), "--chat"),
            (self.attack.is_some(), "--attack"),
            (self.handshake_rate.is_some(), "--handshake-rate"),
            (self.conn_total.is_some(), "--conn-total"),
            (self.start_at.is_some(), "--start-at"),
            (
                self.hgrm.is_some(),
                "--hgrm (--hlog keeps the chosen step's log)",
            ),
        ];
        if let Some((_, flag)) = alone.iter().find(|(on, _)| *on) {
            return Err(format!("--find-rate cannot be combined with {flag}"));
        }
        if !(self.rate_start.is_finite() && self.rate_start >= 1.0) {
            return Err("--rate-start must be at least 1 request per second".into());
        }
        if self.step.is_zero() {
            return Err("--step must be longer than 0".into());
        }
        Ok(())
    }

    /// The rules of `--attack`: TCP echo or `--work` only, from an address the target can
    /// tell apart from the legitimate clients'.
    fn validate_attack(&self) -> Result<(), String> {
        let alone = [
            (self.udp, "--udp"),
            (self.chat.is_some(), "--chat"),
            (self.tls.is_some(), "--tls"),
        ];
        if let Some((_, flag)) = alone.iter().find(|(on, _)| *on) {
            return Err(format!("--attack cannot be combined with {flag}"));
        }
        if self.attack_interval.is_zero() {
            return Err("--attack-interval must be longer than 0".into());
        }
        if self.attack_from.is_ipv4() != self.addr.is_ipv4() {
            return Err(format!(
                "--attack-from {} and --addr {} are not of one address family",
                self.attack_from, self.addr
            ));
        }
        Ok(())
    }

    /// [`Options::validate`], returning the source addresses the connections come from
    /// (`None`: the kernel's choice), resolved once: giving them binds a socket to each.
    pub fn checked(&self) -> Result<Option<Sources>, String> {
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.size == 0 || self.size > MAX_SIZE {
            return Err(format!("--size must be from 1 to {MAX_SIZE} bytes"));
        }
        if self.duration.is_zero() {
            return Err("--duration must be longer than 0".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be longer than 0".into());
        }
        if self.warmup.saturating_add(self.duration) > crate::report::MAX_RUN {
            return Err("--warmup and --duration together must be at most a year".into());
        }
        self.validate_start_at()?;
        if self.hlog_interval < MIN_HLOG_INTERVAL {
            return Err(format!(
                "--hlog-interval must be at least {}",
                humantime::format_duration(MIN_HLOG_INTERVAL)
            ));
        }
        if self.pipeline == 0 {
            return Err("--pipeline must be at least 1".into());
        }
        if self.churn && self.rate.is_some() {
            return Err("--churn and --rate cannot be combined: churn is a closed loop".into());
        }
        if self.pipeline > 1 && (self.churn || self.rate.is_some()) {
            return Err(
                "--pipeline applies to the closed loop only, not with --rate or --churn".into(),
            );
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("--rate must be a positive number of messages per second".into());
            }
        }
        if self.udp {
            self.validate_udp()?;
        }
        if let Some(work) = &self.work {
            self.validate_work(work)?;
        }
        if let Some(room) = self.chat {
            self.validate_chat(room)?;
        } else if self.chat_slow > 0 {
            return Err("--chat-slow needs --chat ROOM".into());
        }
        if self.attack.is_some() {
            self.validate_attack()?;
        }
        if self.find_rate.is_some() {
            self.validate_find_rate()?;
        }
        if let Some(tls) = &self.tls {
            // The CA file and the name to check are arguments: a bad one is refused up front.
            tls::Client::new(&self.target, tls)?;
        }
        if let Some(rate) = self.handshake_rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(
                    "--handshake-rate must be a positive number of connections per second".into(),
                );
            }
        }
        self.validate_split()?;
        let sources = self.source_addrs.resolve(self.addr)?;
        if self.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        let allowed = affinity_cpus();
        if let Some(cpu) = self.cpus.iter().find(|c| !allowed.contains(c)) {
            return Err(format!(
                "--cpus: CPU {cpu} is not available to this process (it may use {})",
                format_cpus(&allowed)
            ));
        }
        check_capacity(self, sources.as_ref().map_or(1, |s| s.addrs.len()))?;
        Ok(sources)
    }

    /// `--start-at` may be in the past (an agent that got there late still runs the rest of
    /// the plan), but not so far that the whole run, warm-up and measured time, has passed:
    /// nothing would be measured.
    fn validate_start_at(&self) -> Result<(), String> {
        let Some(start) = self.start_at else {
            return Ok(());
        };
        let end = start + self.warmup + self.duration;
        match SystemTime::now().duration_since(end) {
            Ok(ago) => Err(format!(
                "--start-at {}: the run's whole window (warm-up and duration) ended {} ago; \
                 nothing would be measured",
                crate::report::unix_ns(start),
                humantime::format_duration(Duration::from_millis(ago.as_millis() as u64))
            )),
            Err(_) => Ok(()),
        }
    }

    /// The rules of `--conn-offset` and `--conn-total`: this run's connections lie inside the
    /// plan.
    fn validate_split(&self) -> Result<(), String> {
        match self.conn_total {
            None if self.conn_offset > 0 => Err("--conn-offset needs --conn-total".into()),
            Some(total) if self.conn_offset.saturating_add(self.connections) > total => {
                Err(format!(
                    "--conn-offset {} with --connections {} reaches past --conn-total {total}",
                    self.conn_offset, self.connections
                ))
            }
            _ => Ok(()),
        }
    }

    /// The rules `--udp` adds: datagrams carry an 8-byte sequence number and fit in one
    /// IPv4 datagram; there is no connection to churn or to hold idle.
    fn validate_udp(&self) -> Result<(), String> {
        if self.churn {
            return Err("--churn cannot be combined with --udp: UDP has no connections".into());
        }
        if self.tls.is_some() || self.handshake_rate.is_some() {
            return Err(
                "--tls and --handshake-rate cannot be combined with --udp: they need TCP".into(),
            );
        }
        if self.idle > 0 {
            return Err("--idle cannot be combined with --udp: UDP has no connections".into());
        }
        if self.size < udp::HEADER || self.size > udp::MAX_DATAGRAM {
            return Err(format!(
                "--size with --udp must be from {} bytes (the sequence number) to {} (the \
                 largest IPv4 datagram)",
                udp::HEADER,
                udp::MAX_DATAGRAM
            ));
        }
        Ok(())
    }

    /// The rules `--work` adds: a request is a whole number of bytes past its header, over a
    /// TCP connection of its own (no TLS, no churn), and costs less than `--timeout`.
    fn validate_work(&self, work: &WorkSpec) -> Result<(), String> {
        if self.udp || self.tls.is_some() || self.churn || self.handshake_rate.is_some() {
            return Err(
                "--work cannot be combined with --udp, --tls, --churn or --handshake-rate: \
                 requests with a cost are served over plain TCP connections that stay open"
                    .into(),
            );
        }
        if !(work::HEADER..=work::MAX_LEN).contains(&self.size) {
            return Err(format!(
                "--size with --work is the whole request, from {} bytes (its header) to {} (1 MiB)",
                work::HEADER,
                work::MAX_LEN
            ));
        }
        if work.longest() >= self.timeout {
            return Err(format!(
                "--work: a request of {} costs {}, not less than --timeout {}: every one would \
                 time out",
                work.classes
                    .iter()
                    .max_by_key(|c| c.cost())
                    .map_or("", |c| c.spec.as_str()),
                humantime::format_duration(work.longest()),
                humantime::format_duration(self.timeout)
            ));
        }
        Ok(())
    }

    /// Worker threads this run uses: never more than there are connections.
    pub fn worker_threads(&self) -> usize {
        let cores = if self.cpus.is_empty() {
            affinity_cpus().len()
        } else {
            self.cpus.len()
        };
        self.threads
            .unwrap_or(cores)
            .clamp(1, (self.connections + self.idle).max(1))
    }
}

/// Descriptors a run needs beyond its connections: standard streams, output files, and each
/// worker's poll and timer.
const SPARE_FDS_PER_RUN: usize = 16;

/// Refuses a run this machine cannot hold: more connections than the hard descriptor limit
/// allows, or than there are ephemeral ports to reach one address from. The error names the
/// limit and the flags.
fn check_capacity(opts: &Options, sources: usize) -> Result<(), String> {
    let sockets = opts.connections.saturating_add(opts.idle);
    let asked = if opts.idle > 0 {
        format!(
            "--connections {} + --idle {} need {sockets}",
            opts.connections, opts.idle
        )
    } else {
        format!("--connections {} needs {sockets}", opts.connections)
    };
    let fds = sockets
        .saturating_add(SPARE_FDS_PER_RUN)
        .saturating_add(2 * opts.worker_threads());
    if let Some((_, hard)) = original_fd_limit() {
        if fds as u64 > hard {
            return Err(format!(
                "{asked} sockets, {fds} descriptors in all, but the hard descriptor limit \
                 (ulimit -Hn) is {hard}"
            ));
        }
    }
    // Only churn closes and reopens; every other mode holds all its sockets at once, each
    // a port of one of the `sources` source addresses.
    if let Some((first, last)) = local_port_range() {
        let ports = (usize::from(last.saturating_sub(first)) + 1).saturating_mul(sources);
        if sockets > ports {
            return Err(format!(
                "{asked} ephemeral ports toward one address, but net.ipv4.ip_local_port_range \
                 ({first}-{last}) over {sources} source address(es) has {ports}"
            ));
        }
    }
    Ok(())
}
