//! The result of a run: the `--json` schema, the human summary, and the `--hgrm` percentile
//! distribution.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

pub use crate::tls::TlsInfo;

/// Version of the `--json` schema; bumped on any change to its keys or their meaning.
pub const SCHEMA_VERSION: u32 = 1;

/// Latency histograms record nanoseconds from 1 ns to an hour, to 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static histogram bounds are valid")
}

/// How load was offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each connection sends its next message when an echo completes (`--pipeline` in flight).
    Closed,
    /// Messages follow a fixed schedule at `--rate`; latency counts from the intended send time.
    Open,
    /// One connection per message: connect, send, receive the echo, close.
    Churn,
}

/// Errors by kind, counted over the whole run (warm-up included: an error is never hidden).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Errors {
    /// Connection attempts that failed or timed out.
    pub connect: u64,
    /// Connections reset or closed by the server while echo was still owed.
    pub reset: u64,
    /// Connections whose echo stopped for longer than `--timeout` after the server had
    /// answered them (they are reconnected), and connections whose measured messages were
    /// still unanswered when the end-of-run drain gave up.
    pub timeout: u64,
    /// Echoes that differed from what was sent (or bytes nobody sent).
    pub mismatch: u64,
    /// Any other socket error.
    pub other: u64,
}

impl Errors {
    /// Adds another count of errors into this one.
    pub fn add(&mut self, other: &Errors) {
        self.connect += other.connect;
        self.reset += other.reset;
        self.timeout += other.timeout;
        self.mismatch += other.mismatch;
        self.other += other.other;
    }

    /// All errors together.
    pub fn total(&self) -> u64 {
        self.connect + self.reset + self.timeout + self.mismatch + self.other
    }
}

/// UDP: what became of the datagrams whose intended send time lies in the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Datagrams {
    /// Sent, and judged: echoed, or not echoed within `--timeout`.
    pub sent: u64,
    /// Not echoed within `--timeout`.
    pub lost: u64,
    /// Lost, and echoed later after all (they stay lost).
    pub late: u64,
    /// Echoed after a datagram sent later on the same socket had been.
    pub reordered: u64,
    /// Echoes of a datagram already echoed.
    pub duplicated: u64,
}

impl Datagrams {
    /// Adds another count into this one.
    pub fn add(&mut self, other: &Datagrams) {
        self.sent += other.sent;
        self.lost += other.lost;
        self.late += other.late;
        self.reordered += other.reordered;
        self.duplicated += other.duplicated;
    }

    /// Lost over sent; 0 when nothing was sent.
    pub fn loss_ratio(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.lost as f64 / self.sent as f64
        }
    }
}

/// UDP: the kernel's receive drops over the run (warm-up included), from `/proc/net/udp`'s
/// per-socket `drops` and `/proc/net/snmp`'s `Udp: RcvbufErrors`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelDrops {
    /// Datagrams the kernel dropped at loadgen's sockets (their receive buffers were full).
    pub loadgen: u64,
    /// Datagrams the kernel dropped at the server's sockets (those bound to the target's
    /// port); `null` when the target is not on this machine.
    pub server: Option<u64>,
    /// The machine's `Udp: RcvbufErrors` counter over the run: every UDP socket's receive
    /// buffer overflows, other programs' included.
    pub rcvbuf_errors: u64,
}

/// A latency distribution, in microseconds (recorded in nanoseconds, so three decimals).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Smallest latency, µs.
    pub min: f64,
    /// Median, µs.
    pub p50: f64,
    /// 90th percentile, µs.
    pub p90: f64,
    /// 99th percentile, µs.
    pub p99: f64,
    /// 99.9th percentile, µs.
    pub p99_9: f64,
    /// Largest latency, µs.
    pub max: f64,
    /// Mean, µs.
    pub mean: f64,
}

impl Latency {
    /// Summarises a histogram of nanoseconds; all zeros when it is empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Latency {
            min: us(h.min_nz()),
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean().round() / 1000.0,
        }
    }
}

/// The result of one run: what `--json` writes, key for key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The `--addr` the load was sent to (comma-separated targets after a merge).
    pub target: String,
    /// How load was offered.
    pub mode: Mode,
    /// Active connections (churn: concurrent connect-send-close loops).
    pub connections: usize,
    /// Idle connections held open beside the active ones.
    pub idle: usize,
    /// Message size, bytes.
    pub size: usize,
    /// Messages in flight per connection (1 outside the closed loop).
    pub pipeline: usize,
    /// Target rate over all connections, messages/s; `null` outside the open loop.
    pub rate: Option<f64>,
    /// Measured time after warm-up, s.
    pub duration_s: f64,
    /// Warm-up before measuring, s.
    pub warmup_s: f64,
    /// Echoes completed (and verified) in the measured time.
    pub messages: u64,
    /// Echoed payload bytes in the measured time (`messages × size`).
    pub bytes: u64,
    /// `messages / duration_s`, messages/s.
    pub throughput_msgs_per_s: f64,
    /// Throughput over the target rate; `null` outside the open loop.
    pub achieved_rate_ratio: Option<f64>,
    /// Errors by kind over the whole run.
    pub errors: Errors,
    /// Active connections (slots, across reconnects) whose echoes all missed the measured
    /// window: an iterative server starves all but one. A connection the server has never
    /// answered is not reconnected (it is still in the server's queue).
    pub connections_starved: usize,
    /// Latency of every measured message. Open loop: from the intended send time
    /// (coordinated-omission corrected). Churn: from the start of the connect to the echo.
    pub latency_us: Latency,
    /// Open loop only: latency from the actual send time, which hides stalls; `null` otherwise.
    pub latency_uncorrected_us: Option<Latency>,
    /// Churn only: time to establish each connection; `null` otherwise.
    pub connect_us: Option<Latency>,
    /// loadgen's own CPU time (user + system) over the wall time of its cores, in the measured
    /// time: 1.0 means every core it had was busy.
    pub loadgen_cpu_ratio: f64,
    /// `loadgen_cpu_ratio` above 0.9: the load generator, not the server, may have been the
    /// limit.
    pub loadgen_saturated: bool,
    /// UDP: datagrams sent in the measured window and judged (echoed, or lost after
    /// `--timeout`); those the end of the run left unjudged are not counted. `null` for TCP.
    #[serde(default)]
    pub datagrams_sent: Option<u64>,
    /// UDP: of those, not echoed within `--timeout` (not also counted in `errors.timeout`).
    #[serde(default)]
    pub datagrams_lost: Option<u64>,
    /// UDP: lost datagrams whose echo came after `--timeout` (they stay lost).
    #[serde(default)]
    pub datagrams_late: Option<u64>,
    /// UDP: echoes that came after the echo of a datagram sent later on the same socket.
    #[serde(default)]
    pub datagrams_reordered: Option<u64>,
    /// UDP: echoes of a datagram already echoed.
    #[serde(default)]
    pub datagrams_duplicated: Option<u64>,
    /// UDP: `datagrams_lost / datagrams_sent`; `null` for TCP.
    #[serde(default)]
    pub loss_ratio: Option<f64>,
    /// UDP: the kernel's receive drops on both sides over the whole run; `null` for TCP.
    #[serde(default)]
    pub udp_kernel_drops: Option<KernelDrops>,
    /// `--tls`: the version and suite the server chose, how its certificate was checked,
    /// whether sessions were resumed; `null` without TLS.
    #[serde(default)]
    pub tls: Option<TlsInfo>,
    /// `--tls`: handshakes by kind, and loadgen's CPU per handshake; `null` without TLS.
    #[serde(default)]
    pub handshakes: Option<Handshakes>,
    /// `--tls`: time from the TCP connection to the end of the TLS handshake, of the
    /// handshakes begun in the measured time (the steady connections' and the arrivals');
    /// `null` without TLS.
    #[serde(default)]
    pub handshake_us: Option<Latency>,
    /// Open loop: how late sends were on the schedule: loadgen's own delay, or a connection
    /// still waiting for its previous echo (one in flight per connection); a late send is
    /// still measured from its intended time. `null` otherwise.
    #[serde(default)]
    pub send_late_us: Option<Latency>,
    /// Open loop: loadgen's own share of its send lateness (sends whose timers fired late,
    /// not those late because their connection's last echo came late), for `--find-rate`'s
    /// judgement; not serialized.
    #[serde(skip)]
    pub send_late_own_us: Option<Latency>,
    /// `--handshake-rate`: the arriving connections; `null` without it.
    #[serde(default)]
    pub handshake_arrivals: Option<Arrivals>,
    /// When the load really started (its workers began to connect), ns since the Unix epoch.
    #[serde(default)]
    pub started_at_ns: Option<u64>,
    /// `--start-at`: when the load was meant to start, ns since the Unix epoch; `null`
    /// without it. `started_at_ns` after it by more than a moment is a late start.
    #[serde(default)]
    pub start_at_ns: Option<u64>,
    /// `--conn-offset`: the number of this run's first connection in the whole plan; `null`
    /// unless the plan is split (`--conn-total`).
    #[serde(default)]
    pub conn_offset: Option<usize>,
    /// `--conn-total`: the connections of the whole plan this run is a part of; `null` unless
    /// split. With `--rate`, `rate` is this part's share of the plan's rate.
    #[serde(default)]
    pub conn_total: Option<usize>,
    /// `--source-addrs`: the local addresses the connections came from, in turn; `null` when
    /// the kernel picked them.
    #[serde(default)]
    pub source_addrs: Option<crate::source::SourceReport>,
    /// loadgen's own CPU time (user + system) in the measured time, s: what
    /// `loadgen_cpu_ratio` is of, for loadgen's CPU per message beside the server's.
    #[serde(default)]
    pub loadgen_cpu_s: Option<f64>,
    /// `--work`: the requests' classes, each with its latency; `null` without it.
    #[serde(default)]
    pub work: Option<WorkReport>,
    /// `--chat`: the rooms, the deliveries expected and received, their latency; `null`
    /// without it.
    #[serde(default)]
    pub chat: Option<ChatReport>,
    /// `--attack`: what the hostile clients beside the load did and met; `null` without it.
    #[serde(default)]
    pub attack: Option<AttackReport>,
    /// `--find-rate`: the search for the highest rate that holds the latency target, step by
    /// step; `null` without it. The rest of the report is the highest step that held (or,
    /// where none did, the last step).
    #[serde(default)]
    pub find_rate: Option<FindRate>,
    /// The first connect error, to explain a run that completed nothing; not serialized.
    #[serde(skip)]
    pub first_error: Option<String>,
}

/// A latency target, `--find-rate p99=1ms`: a percentile and the most it may be.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// The percentile: 50, 90, 99 or 99.9.
    pub percentile: f64,
    /// The most it may be.
    pub target: Duration,
}

impl Slo {
    /// Parses `p99=1ms`, `p99.9=5ms`, `p50=200us`, `p90=2ms` (the percentiles a report has).
    pub fn parse(text: &str) -> Result<Slo, String> {
        let usage = "PERCENTILE=DURATION, e.g. p99=1ms, p99.9=5ms (p50, p90, p99, p99.9)";
        let (name, target) = text
            .split_once('=')
            .ok_or_else(|| format!("'{text}' is not {usage}"))?;
        let percentile = match name {
            "p50" => 50.0,
            "p90" => 90.0,
            "p99" => 99.0,
            "p99.9" | "p999" => 99.9,
            _ => return Err(format!("unknown percentile '{name}' in '{text}' ({usage})")),
        };
        let target = humantime::parse_duration(target)
            .map_err(|e| format!("'{target}' in '{text}' is not a duration: {e}"))?;
        if target.is_zero() || target > MAX_RUN {
            return Err(format!(
                "the target in '{text}' must be above 0 and at most a year"
            ));
        }
        Ok(Slo { percentile, target })
    }

    /// This target's percentile of `latency`, µs.
    pub fn of(&self, latency: &Latency) -> f64 {
        match self.percentile {
            p if p >= 99.9 => latency.p99_9,
            p if p >= 99.0 => latency.p99,
            p if p >= 90.0 => latency.p90,
            _ => latency.p50,
        }
    }

    /// The target, µs.
    pub fn target_us(&self) -> f64 {
        self.target.as_secs_f64() * 1e6
    }

    /// The percentile's name: `p99`.
    pub fn name(&self) -> &'static str {
        match self.percentile {
            p if p >= 99.9 => "p99.9",
            p if p >= 99.0 => "p99",
            p if p >= 90.0 => "p90",
            _ => "p50",
        }
    }

    /// As written: `p99=1ms`.
    pub fn text(&self) -> String {
        format!(
            "{}={}",
            self.name(),
            humantime::format_duration(self.target)
        )
    }
}

/// `--find-rate`: what the search found, and every step it took.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindRate {
    /// The target, as `p99=1ms`.
    pub slo: String,
    /// Its percentile: 50, 90, 99 or 99.9.
    pub percentile: f64,
    /// The most the percentile may be, µs.
    pub target_us: f64,
    /// The highest offered rate that held, requests/s; `null` where none held ("holds at no
    /// rate tried").
    pub rate: Option<f64>,
    /// Whether loadgen, not the server, limited the search: the server holds at least `rate`.
    pub at_least: bool,
    /// What ended the search: `server` (the server failed the step above `rate`, within 5 %
    /// of it), `loadgen` (loadgen could not send the step above on time, or was over 90 %
    /// busy, or a step held at its limit: `at_least`), `no rate` (no step held, down to a
    /// sixteenth of `--rate-start`), or `steps` (the most steps were taken).
    pub limited_by: String,
    /// Every step, in the order taken.
    pub steps: Vec<Step>,
}

/// One step of a `--find-rate` search: a short open-loop run at `offered` requests/s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The offered rate, requests/s.
    pub offered: f64,
    /// The achieved rate, requests/s.
    pub achieved: f64,
    /// Latency p50, µs (from each request's intended send time).
    pub p50_us: f64,
    /// Latency p99, µs.
    pub p99_us: f64,
    /// Latency p99.9, µs.
    pub p99_9_us: f64,
    /// How late loadgen sent its requests, p99, µs.
    pub send_late_p99_us: f64,
    /// loadgen's CPU over the CPUs it had.
    pub loadgen_cpu_ratio: f64,
    /// Whether the step held: 99 % of the offered rate achieved, the percentile within the
    /// target, nothing erred or starved.
    pub held: bool,
    /// Why it did not hold, or why loadgen limited it; `null` where it held cleanly.
    pub why: Option<String>,
}

/// One step as the progress and the summary say it.
pub fn step_text(s: &Step) -> String {
    format!(
        "{:>10.0}/s offered {:>10.0}/s achieved  p50 {:>8.1}  p99 {:>8.1}  p99.9 {:>8.1} µs  sent late p99 {:.1} µs  loadgen CPU {:.0} %  {}{}",
        s.offered,
        s.achieved,
        s.p50_us,
        s.p99_us,
        s.p99_9_us,
        s.send_late_p99_us,
        s.loadgen_cpu_ratio * 100.0,
        if s.held { "held" } else { "failed" },
        s.why.as_ref().map_or(String::new(), |w| format!(" ({w})"))
    )
}

/// `--attack`: the hostile clients beside the load, counted over their whole run (from a
/// second before the load to its end), apart from the legitimate clients.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttackReport {
    /// The attack as given: `slowloris:64`, `silent:100`, `connect-flood:2000`.
    pub spec: String,
    /// The address every attack connection came from (`--attack-from`).
    pub from: String,
    /// `--attack-interval`, s: how often a slowloris client sends its next byte and closed
    /// connections are opened again.
    pub interval_s: f64,
    /// Seconds the attackers ran, from a second before the load to its end.
    pub duration_s: f64,
    /// Connection attempts made.
    pub attempts: u64,
    /// Attempts that connected.
    pub connected: u64,
    /// Attempts refused or never answered (a connect error, or no connection within the
    /// attack's patience: `--timeout`, or a flood connection's 100 ms).
    pub refused: u64,
    /// Connections the server closed (EOF or reset) before the attacker did.
    pub closed_by_server: u64,
    /// Connections on which the server said `You have been blocked due to too many attempts.`
    pub blocked_lines: u64,
    /// Attack connections open when the load ended.
    pub open_at_end: u64,
}

/// `--chat`: how the room's deliveries went. `messages` (top level) are the messages sent in
/// the measured time, `latency_us` their delivery latency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatReport {
    /// Members per room (`--chat`).
    pub room: usize,
    /// Rooms: `--connections` / `room`.
    pub rooms: usize,
    /// Members per room that join and never read (`--chat-slow`).
    pub slow_per_room: usize,
    /// Deliveries owed: every measured message to every member of its room that reads and
    /// joined.
    pub deliveries_expected: u64,
    /// Deliveries of measured messages received, once each, whole.
    pub deliveries_received: u64,
    /// Deliveries owed and not received by the end of the drain.
    pub lost: u64,
    /// Deliveries of a message the member had already received.
    pub duplicated: u64,
    /// Deliveries out of the room's one order (every member's n-th delivery must be the same
    /// message).
    pub out_of_order: u64,
    /// `deliveries_received` per measured second.
    pub deliveries_per_s: f64,
    /// From a message's intended send time to each member's receipt, µs.
    pub delivery_latency_us: Latency,
    /// From a message's intended send time to its last member's receipt, µs.
    pub fanout_latency_us: Latency,
    /// Members whose connection the server closed (slow members it dropped among them).
    pub members_dropped: u64,
    /// Members that never had their `A` within `--timeout` (the server did not serve them).
    pub members_starved: u64,
}

/// `--work`: what the requests cost and how each class fared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkReport {
    /// `--work` as given.
    pub spec: String,
    /// `--seed`: what dealt the classes out to requests.
    pub seed: u64,
    /// The classes, the first of the spec first.
    pub classes: Vec<WorkClass>,
}

/// One class of `--work`'s requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkClass {
    /// The class, canonical (`cpu=20us`, `cpu=1ms,wait=2ms`, `cpu=0`).
    pub spec: String,
    /// Its share of the requests, 0 to 1.
    pub share: f64,
    /// CPU work each of its requests asks of the server, µs.
    pub cpu_us: f64,
    /// Wait each of its requests asks of the server, µs.
    pub wait_us: f64,
    /// Its echoes completed (and verified) in the measured time.
    pub messages: u64,
    /// Latency of its measured requests, µs (open loop: from the intended send time).
    pub latency_us: Latency,
}

/// `--tls`: the handshakes of a run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Handshakes {
    /// Full handshakes over the whole run (probe, priming and warm-up included): the count the
    /// server's own `tls:` line gives for the same connections.
    pub full: u64,
    /// Resumed handshakes over the whole run.
    pub resumed: u64,
    /// Of those, the handshakes made before the load: the certificate probe (full), and with
    /// `--tls-resume` the priming connections that collected a ticket for every connection
    /// (each resumes and brings the server's new tickets).
    pub priming: u64,
    /// Resumed over all handshakes of the load (the priming ones left out); `null` without
    /// any.
    pub resumed_ratio: Option<f64>,
    /// Handshakes of the steady connections begun in the measured time.
    pub measured: u64,
    /// loadgen's CPU time in the measured time per handshake begun in it, µs, over the threads
    /// that made them (the steady connections' under `--churn`, the arrivals' under
    /// `--handshake-rate`; each connection's one echo included); `null` when none was measured.
    pub loadgen_cpu_us_per_handshake: Option<f64>,
}

/// `--handshake-rate`: connections arriving on an open-loop schedule beside the load, each
/// making a handshake, one echo and a clean close, from a thread at `SCHED_IDLE`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Arrivals {
    /// Arrivals per second asked for.
    pub rate: f64,
    /// Arrivals scheduled in the measured time.
    pub scheduled: u64,
    /// Of those, arrivals whose echo came back.
    pub completed: u64,
    /// `completed / (rate × duration)`.
    pub achieved_rate_ratio: f64,
    /// Latency from each arrival's intended time to its echo (connect, handshake, echo), µs.
    pub latency_us: Latency,
    /// How late the arrivals' connects were on their schedule, µs.
    pub send_late_us: Latency,
    /// TLS handshake time of the arrivals, µs; `null` without TLS.
    pub handshake_us: Option<Latency>,
    /// Errors of the arriving connections, by kind.
    pub errors: Errors,
    /// Whether the thread got `SCHED_IDLE` (it runs at the normal policy when the kernel
    /// refused).
    pub sched_idle: bool,
}

/// Under `--tls-resume`, a run whose load resumed fewer of its handshakes fails.
pub const MIN_RESUMED: f64 = 0.9;

/// Above this share of its cores the load generator is flagged as the possible bottleneck.
pub const SATURATION: f64 = 0.9;

/// The longest warm-up or measured time a report read from elsewhere may state: a year.
pub const MAX_RUN: std::time::Duration = std::time::Duration::from_secs(366 * 24 * 3600);

/// The largest count a report read from elsewhere may state (2^50: a year at 35 million a
/// second), so that the counts of any number of agents add up without overflowing.
pub const MAX_COUNT: u64 = 1 << 50;

impl Report {
    /// Why this report, read from another host or a file, cannot be true, if it cannot: a
    /// negative figure, a count beyond [`MAX_COUNT`] (times since the epoch, `*_ns`, aside),
    /// a warm-up or duration beyond [`MAX_RUN`], more priming handshakes than handshakes.
    /// What is merged or computed from a report is checked here first, so that no value from
    /// elsewhere can overflow a sum or a time.
    pub fn implausible(&self) -> Option<String> {
        let value = match serde_json::to_value(self) {
            Ok(value) => value,
            Err(e) => return Some(format!("a report that cannot be encoded: {e}")),
        };
        if let Some(why) = implausible_number("", &value) {
            return Some(why);
        }
        for (key, seconds) in [("duration_s", self.duration_s), ("warmup_s", self.warmup_s)] {
            if seconds > MAX_RUN.as_secs_f64() {
                return Some(format!("a report with {key} {seconds}, over a year"));
            }
        }
        if let Some(h) = &self.handshakes {
            if h.priming > h.full + h.resumed {
                return Some(format!(
                    "a report with {} priming handshakes of {} in all",
                    h.priming,
                    h.full + h.resumed
                ));
            }
        }
        None
    }

    /// Why the run failed, if it did: no message completed, or an echo mismatched.
    pub fn failure(&self) -> Option<String> {
        if self.errors.mismatch > 0 {
            return Some(format!(
                "{} echo(es) from {} differed from what was sent",
                self.errors.mismatch, self.target
            ));
        }
        if let Some(c) = self
            .chat
            .as_ref()
            .filter(|c| c.duplicated + c.out_of_order > 0)
        {
            return Some(format!(
                "{} duplicated and {} out-of-order deliveries from {}: the room's one order was broken",
                c.duplicated, c.out_of_order, self.target
            ));
        }
        if let Some(ratio) = self.resumption_shortfall() {
            return Some(format!(
                "--tls-resume: only {:.1} % of the handshakes with {} resumed (at least {:.0} % \
                 expected): the server did not take the tickets",
                ratio * 100.0,
                self.target,
                MIN_RESUMED * 100.0
            ));
        }
        if self.messages == 0 {
            let why = self.first_error.as_deref().map_or_else(
                || format!("{} errors", self.errors.total()),
                |e| format!("connect: {e}"),
            );
            return Some(format!(
                "no message completed against {} ({why})",
                self.target
            ));
        }
        None
    }

    /// Under `--tls-resume`, the resumed share of the load's handshakes when it is below
    /// [`MIN_RESUMED`].
    pub fn resumption_shortfall(&self) -> Option<f64> {
        let resume = self.tls.as_ref().is_some_and(|t| t.resume);
        let ratio = self.handshakes.as_ref().and_then(|h| h.resumed_ratio)?;
        (resume && ratio < MIN_RESUMED).then_some(ratio)
    }

    /// The human summary printed at the end of a run.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let mode = match self.mode {
            Mode::Closed if self.pipeline > 1 => format!("closed loop, pipeline {}", self.pipeline),
            Mode::Closed => "closed loop".to_owned(),
            Mode::Open => format!("open loop at {} msgs/s", self.rate.unwrap_or(0.0)),
            Mode::Churn => "churn (one connection per message)".to_owned(),
        };
        let _ = writeln!(
            s,
            "{}: {mode}, {} connections, {} idle, {} B messages, {:.1} s after {:.1} s warm-up",
            self.target, self.connections, self.idle, self.size, self.duration_s, self.warmup_s
        );
        let _ = writeln!(
            s,
            "messages {}  throughput {:.1} msgs/s  ({:.2} MB/s echoed)",
            self.messages,
            self.throughput_msgs_per_s,
            self.bytes as f64 / self.duration_s.max(f64::MIN_POSITIVE) / 1e6
        );
        if let Some(ratio) = self.achieved_rate_ratio {
            let _ = writeln!(s, "achieved {:.1} % of the target rate", ratio * 100.0);
        }
        let line = |name: &str, l: &Latency| {
            format!(
                "{name:<20} min {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}\n",
                l.min, l.p50, l.p90, l.p99, l.p99_9, l.max, l.mean
            )
        };
        let name = match self.mode {
            Mode::Open => "latency (corrected)",
            _ => "latency",
        };
        s += &line(&format!("{name} µs"), &self.latency_us);
        if let Some(l) = &self.latency_uncorrected_us {
            s += &line("uncorrected µs", l);
        }
        if let Some(l) = &self.connect_us {
            s += &line("connect µs", l);
        }
        if let Some(l) = &self.send_late_us {
            s += &line("sends late µs", l);
        }
        if let Some(work) = &self.work {
            let _ = writeln!(s, "work: {} (seed {})", work.spec, work.seed);
            for class in &work.classes {
                let percent = (class.share * 1e6).round() / 1e4;
                let name = format!("  {} ({percent} %) µs", class.spec);
                s += &line(&name, &class.latency_us);
            }
        }
        if let Some(c) = &self.chat {
            let _ = writeln!(
                s,
                "chat: {} rooms of {} ({} slow each)  deliveries {} of {} expected ({:.1}/s)  lost {} duplicated {} out of order {}  members dropped {} starved {}",
                c.rooms, c.room, c.slow_per_room, c.deliveries_received, c.deliveries_expected,
                c.deliveries_per_s, c.lost, c.duplicated, c.out_of_order, c.members_dropped,
                c.members_starved
            );
            s += &line("fan-out µs", &c.fanout_latency_us);
        }
        if let Some(f) = &self.find_rate {
            let rate = match (f.rate, f.at_least) {
                (None, true) => "loadgen could not send any rate tried on time: the server holds at least what loadgen can offer".to_owned(),
                (None, false) => "holds at no rate tried".to_owned(),
                (Some(r), false) => format!("holds {r:.0} requests/s"),
                (Some(r), true) => format!("holds at least {r:.0} requests/s"),
            };
            let _ = writeln!(
                s,
                "find-rate {}: {rate} (limited by {}; {} step{}; the figures above are the highest step that held)",
                f.slo,
                f.limited_by,
                f.steps.len(),
                if f.steps.len() == 1 { "" } else { "s" }
            );
            for step in &f.steps {
                let _ = writeln!(s, "  {}", crate::report::step_text(step));
            }
        }
        if let Some(a) = &self.attack {
            let _ = writeln!(
                s,
                "attack: {} from {} over {:.1} s  attempts {} connected {} refused {}  closed by the server {}  blocked lines {}  open at the end {}",
                a.spec, a.from, a.duration_s, a.attempts, a.connected, a.refused,
                a.closed_by_server, a.blocked_lines, a.open_at_end
            );
        }
        self.tls_summary(&mut s, &line);
        if let (Some(sent), Some(lost)) = (self.datagrams_sent, self.datagrams_lost) {
            let n = |v: Option<u64>| v.unwrap_or(0);
            let _ = writeln!(
                s,
                "datagrams: sent {sent} lost {lost} ({:.3} %) late {} reordered {} duplicated {}",
                self.loss_ratio.unwrap_or(0.0) * 100.0,
                n(self.datagrams_late),
                n(self.datagrams_reordered),
                n(self.datagrams_duplicated)
            );
        }
        if let Some(k) = &self.udp_kernel_drops {
            let server = k.server.map_or("unknown".to_owned(), |d| d.to_string());
            let _ = writeln!(
                s,
                "kernel receive drops: loadgen {} server {server}  (machine RcvbufErrors {})",
                k.loadgen, k.rcvbuf_errors
            );
        }
        let e = &self.errors;
        let _ = writeln!(
            s,
            "errors: connect {} reset {} timeout {} mismatch {} other {}   starved connections: {}",
            e.connect, e.reset, e.timeout, e.mismatch, e.other, self.connections_starved
        );
        let _ = write!(
            s,
            "loadgen CPU {:.0} % of its cores",
            self.loadgen_cpu_ratio * 100.0
        );
        if self.loadgen_saturated {
            s += "  SATURATED: the load generator may have been the bottleneck";
        }
        s.push('\n');
        s
    }
}

impl Report {
    /// The TLS and arrivals lines of the summary.
    fn tls_summary(&self, s: &mut String, line: &dyn Fn(&str, &Latency) -> String) {
        if let (Some(t), Some(h)) = (&self.tls, &self.handshakes) {
            let insecure = if t.verification == "insecure" {
                " (certificate NOT checked: --tls-insecure)"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "tls: {} {}{insecure}; handshakes: {} full ({} before the load), {} resumed",
                t.version, t.suite, h.full, h.priming, h.resumed
            );
            if let Some(cpu) = h.loadgen_cpu_us_per_handshake {
                let _ = writeln!(s, "loadgen CPU per handshake: {cpu:.1} µs");
            }
        }
        if let Some(l) = &self.handshake_us {
            *s += &line("handshake µs", l);
        }
        if let Some(a) = &self.handshake_arrivals {
            let _ = writeln!(
                s,
                "arrivals at {} /s: {} scheduled, {} completed ({:.1} % of the rate){}",
                a.rate,
                a.scheduled,
                a.completed,
                a.achieved_rate_ratio * 100.0,
                if a.sched_idle {
                    ""
                } else {
                    ", not at SCHED_IDLE"
                }
            );
            *s += &line("arrival latency µs", &a.latency_us);
            *s += &line("arrivals late µs", &a.send_late_us);
        }
    }
}

/// The first number under `value` (named by its key path, `at`) that no report can hold: a
/// negative one, or a count above [`MAX_COUNT`] other than a time since the epoch (`*_ns`) or
/// `--work`'s `seed` (any 64-bit number, and nothing adds it up).
fn implausible_number(at: &str, value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            let bad = match (n.as_u64(), n.as_f64()) {
                (Some(count), _) => count > MAX_COUNT && !at.ends_with("_ns") && at != "work.seed",
                (None, Some(x)) => !(x >= 0.0 && x.is_finite()),
                (None, None) => true,
            };
            bad.then(|| format!("a report with {at} {n}"))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| implausible_number(&format!("{at}[{i}]"), v)),
        Value::Object(fields) => fields.iter().find_map(|(key, v)| {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            implausible_number(&path, v)
        }),
        _ => None,
    }
}

/// The percentile distribution in HdrHistogram's `.hgrm` text format, values in microseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    const SCALE: f64 = 1000.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0;
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / SCALE;
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / SCALE,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        (2 * 10u64.pow(u32::from(h.sigfig()))).next_power_of_two()
    );
    s
}

/// Nanoseconds since the Unix epoch (0 before it).
pub fn unix_ns(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The wall-clock time `ns` since the Unix epoch.
pub fn from_unix_ns(ns: u64) -> std::time::SystemTime {
    std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(ns)
}
