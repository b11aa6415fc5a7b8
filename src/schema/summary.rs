//! `summary.json`: the figures of a comparison, computed from `raw/` alone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::environment::Environment;
use super::run::Status;

/// Median with the smallest and largest value over repeats, and the figure's confidence
/// interval where one is computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median over repeats.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
    /// 95 % confidence interval of the median (see [`Resampling`]); absent for figures that
    /// get none (uncorrected latency, connect time, achieved rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<Ci>,
}

/// A 95 % confidence interval and the samples behind it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ci {
    /// Lower bound, in the figure's unit; `null` when too few samples stand behind the figure
    /// for an interval ("n/a").
    pub low: Option<f64>,
    /// Upper bound, in the figure's unit; `null` as `low`.
    pub high: Option<f64>,
    /// Repeats (runs) behind the figure.
    pub repeats: usize,
    /// Intervals behind it, over all repeats (0 for figures that come from repeats only).
    pub intervals: usize,
    /// Intervals per resampled block (0 for figures that come from repeats only).
    pub block_intervals: usize,
    /// Blocks the bootstrap resampled, over all repeats.
    pub blocks: usize,
}

impl Ci {
    /// The interval with both bounds multiplied by `k` (> 0).
    pub fn scaled(self, k: f64) -> Ci {
        Ci {
            low: self.low.map(|v| v * k),
            high: self.high.map(|v| v * k),
            ..self
        }
    }
}

/// How the confidence intervals were computed, as `summary.json` states it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resampling {
    /// Seed of the bootstrap (from `environment.json`; 0 when it recorded none).
    pub seed: u64,
    /// Bootstrap resamples per cell.
    pub resamples: usize,
    /// Confidence level of every interval.
    pub confidence: f64,
    /// Length of the intervals a run's histograms and server CPU are kept in, seconds.
    pub interval_s: f64,
    /// Fewest blocks (over all repeats) for an interval; below it the interval is "n/a".
    pub min_blocks: usize,
    /// Fewest repeats for memory per connection's interval, which comes from repeats only.
    pub min_repeats_memory: usize,
    /// The method, in words.
    pub method: String,
}

impl Spread {
    /// The spread of `values`; `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            ci: None,
        })
    }
}

/// The figures of one model under one workload, over its repeats.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cell {
    /// Server: the model name, with its arguments when its runs had any (`thread-pool(64)`).
    pub model: String,
    /// Workload name.
    pub workload: String,
    /// Workload with its parameter, e.g. `pingpong-c16`.
    pub label: String,
    /// Repeats run.
    pub repeats: usize,
    /// Worst status over the repeats.
    pub status: Status,
    /// Notes of the runs (failures, starvation, slow stops).
    pub notes: Vec<String>,
    /// Echoes per second.
    pub throughput_msgs_per_s: Option<Spread>,
    /// Median latency, µs (open loop: corrected).
    pub latency_p50_us: Option<Spread>,
    /// 99th percentile latency, µs (open loop: corrected).
    pub latency_p99_us: Option<Spread>,
    /// 99.9th percentile latency, µs (open loop: corrected).
    #[serde(default)]
    pub latency_p99_9_us: Option<Spread>,
    /// Open loop: uncorrected 99th percentile, µs.
    pub latency_uncorrected_p99_us: Option<Spread>,
    /// Open loop: throughput over the offered rate.
    pub achieved_rate_ratio: Option<Spread>,
    /// Churn: median connect time, µs.
    pub connect_p50_us: Option<Spread>,
    /// Server CPU per echoed message, µs (churn: per connection, as each carries one).
    pub server_cpu_us_per_msg: Option<Spread>,
    /// loadgen's own CPU per echoed message, µs, beside the server's; absent in comparisons
    /// made before loadgen reported its CPU time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadgen_cpu_us_per_msg: Option<Spread>,
    /// Peak resident memory of the server tree, KiB (median over repeats).
    pub peak_rss_kib: Option<f64>,
    /// Peak proportional set size of the server tree, KiB (median over repeats).
    pub peak_pss_kib: Option<f64>,
    /// Most server threads at once.
    pub peak_threads: Option<u64>,
    /// Most server processes at once.
    pub peak_processes: Option<u64>,
    /// Most open descriptors in the server tree (median over repeats).
    pub peak_fds: Option<f64>,
    /// Voluntary context switches per message (threads alive at the end of the run).
    pub voluntary_switches_per_msg: Option<f64>,
    /// Involuntary context switches per message (threads alive at the end of the run).
    pub involuntary_switches_per_msg: Option<f64>,
    /// Errors of all kinds, summed over repeats.
    pub errors: u64,
    /// Most connections starved in a repeat.
    pub connections_starved: usize,
    /// Connections of the workload.
    pub connections: usize,
    /// Whether loadgen was saturated in any repeat.
    pub loadgen_saturated: bool,
    /// UDP: datagrams lost over datagrams sent, median over the repeats; absent for TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_ratio: Option<Spread>,
    /// UDP: what became of the datagrams, over all the repeats; absent for TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datagrams: Option<DatagramCounts>,
    /// TLS: loadgen's CPU per handshake, µs (churn: its connections'; tls-mixed: the
    /// arrivals'); absent without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadgen_cpu_us_per_handshake: Option<Spread>,
    /// TLS: resumed over all handshakes of the load; absent without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_ratio: Option<Spread>,
    /// tls-mixed: the arriving handshakes per second asked for; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_rate: Option<Spread>,
    /// tls-mixed: the arrivals made over those asked for; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals_achieved_ratio: Option<Spread>,
    /// Open loop: the 99th percentile of how late loadgen's own sends were, µs; absent in
    /// records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_late_p99_us: Option<Spread>,
    /// `compare --agents`: each load agent's part, by its place in `--agents`; absent
    /// otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<AgentFigures>,
    /// Requests with a cost: each class of the requests (`mixed`: the light, then the heavy),
    /// measured apart; absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub work_classes: Vec<WorkClassFigures>,
    /// The CPUs the server ran on when not the comparison's server CPUs: a CPU-bound
    /// workload gives it the loadgen CPUs too; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpus: Option<String>,
    /// Where the server shared loadgen's CPUs: loadgen's CPU time over the time its CPUs
    /// had; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loadgen_cpu_ratio: Option<Spread>,
    /// The chat room's workloads: what only they have. Their deliveries are the cell's
    /// messages: `throughput_msgs_per_s` is deliveries/s, the latency figures are delivery
    /// latency (from a message's intended send time to a member's receipt), the per-message
    /// CPU and switches are per delivery. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatFigures>,
    /// The hostile clients' workloads: what the attackers did and met (the cell's other
    /// figures are the legitimate clients'). Absent otherwise, and for their control.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attack: Option<AttackFigures>,
    /// The capacity search (`slo-cN`): the highest rate held under the target, over the
    /// repeats, and every step. The cell's other figures are its highest step that held.
    /// Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<Capacity>,
}

/// A capacity search's cell (`loadgen --find-rate`), over its repeats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// The target, as `p99=1ms`.
    pub slo: String,
    /// The highest rate that held, requests/s: the median of the repeats where one held, with
    /// their range; absent where none did.
    pub rate: Option<Spread>,
    /// Whether loadgen, not the server, limited a repeat's search ("at least").
    pub at_least: bool,
    /// Repeats where no rate tried held.
    pub held_none: usize,
    /// What ended each repeat's search (`server`, `loadgen`, `no rate`, `steps`).
    pub limited_by: Vec<String>,
    /// Every step of every repeat: [offered requests/s, p99 µs], by offered rate.
    pub steps: Vec<[f64; 2]>,
}

/// An attack cell's attackers (`loadgen --attack`), the median of each count over the
/// repeats' runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttackFigures {
    /// The attack, as loadgen was given it: `slowloris:64`, `connect-flood:2000`.
    pub spec: String,
    /// Connection attempts.
    pub attempts: f64,
    /// Attempts that connected.
    pub connected: f64,
    /// Attempts refused or never answered.
    pub refused: f64,
    /// Connections the server closed before the attacker did.
    pub closed_by_server: f64,
    /// Connections on which the server said it had blocked the address.
    pub blocked_lines: f64,
    /// Attack connections open when the load ended.
    pub open_at_end: f64,
}

/// What one model's legitimate clients kept beside each attack, against the same model's run
/// without one (`attack-control`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttackModel {
    /// The server label.
    pub model: String,
    /// The legitimate requests/s without an attack (median).
    pub control_rate: Option<f64>,
    /// Their p99 without an attack, µs (median).
    pub control_p99_us: Option<f64>,
    /// Each attack workload that ran, in report order.
    pub kept: Vec<Kept>,
}

/// What the legitimate clients kept in one attack workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    /// The workload's label: `slowloris-64`, `flood-2000-defended`.
    pub workload: String,
    /// Whether the server ran with the defences.
    pub defended: bool,
    /// Their requests/s over the control's (medians); absent without both.
    pub rate_share: Option<f64>,
    /// Their p99, µs (median); absent where none completed.
    pub p99_us: Option<f64>,
    /// `kept` (90 % of the control's rate or more), `degraded` (10 % to 90 %) or `denied`
    /// (under 10 %), or `no data`.
    pub verdict: String,
}
/// A chat cell's own figures, over its repeats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatFigures {
    /// Members per room.
    pub room: usize,
    /// Members per room that never read (`chat-slow`).
    pub slow_per_room: usize,
    /// Fan-out latency p99, µs: from a message's intended send time to its last member's
    /// receipt, with its interval.
    pub fanout_p99_us: Option<Spread>,
    /// Messages the members sent per second.
    pub messages_per_s: Option<Spread>,
    /// Most members the server closed in a repeat (slow members it dropped among them).
    pub members_dropped: u64,
    /// Deliveries owed to members that read and never received, over every repeat.
    pub lost: u64,
    /// Deliveries owed, over every repeat.
    pub deliveries_expected: u64,
}

/// How a model shares its chat rooms, and (where `chat-slow` ran) what it does with a slow
/// member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatModel {
    /// The server label.
    pub model: String,
    /// `lock`, `single owner`, `IPC` or `alone`.
    pub sharing: String,
    /// One line on the way it shares.
    pub how: String,
    /// What it did with `chat-slow`'s slow members; absent where that did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow: Option<SlowMember>,
}

/// What a model did with a member that never reads (`chat-slow`), over the workload's repeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowMember {
    /// The verdict.
    pub verdict: SlowVerdict,
    /// Slow members per repeat: one per room.
    pub slow_members: usize,
    /// Most members the server closed in a repeat.
    pub dropped: u64,
    /// Deliveries the reading members never received, over every repeat.
    pub lost: u64,
    /// Most members never let in, in a repeat.
    pub starved: usize,
    /// Peak memory (PSS) over the same model's in `chat-r16-c64`, KiB (median of each);
    /// absent where either did not run.
    pub memory_growth_kib: Option<f64>,
}

/// What a server did with a slow member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowVerdict {
    /// It dropped the slow members, and the rooms went on: nothing owed to a reader was lost.
    Dropped,
    /// It dropped members that read too: readers that fell a whole queue behind (their
    /// thread or process not run for long enough), beside or instead of the slow members.
    DroppedReaders,
    /// A room stopped: readers never received deliveries owed to them.
    Stalled,
    /// It kept the slow members, and its memory grew past what their queues may hold.
    MemoryGrew,
    /// It kept the slow members within a bounded memory through the run, the rooms going on.
    Kept,
    /// The slow members were never let in: it serves fewer members at once than a room has.
    NotServed,
    /// Every run failed: nothing to judge.
    NoData,
}

/// The CPU one way of sharing costs per delivery against another's, in one chat workload: the
/// ratio of two models' server CPU per delivery, with its interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharingCost {
    /// The workload's label.
    pub workload: String,
    /// The model compared (the numerator).
    pub model: String,
    /// Its sharing.
    pub sharing: String,
    /// The model it is compared with (the denominator).
    pub against: String,
    /// That model's sharing.
    pub against_sharing: String,
    /// The model's server CPU per delivery over the other's, of the medians.
    pub ratio: f64,
    /// Its 95 % interval, from the two cells' bootstraps resample by resample (3 repeats or
    /// more on each side); absent otherwise, `why` says.
    pub ratio_ci: Option<[f64; 2]>,
    /// Why there is no interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// One class of a cell's requests with a cost, over the cell's repeats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkClassFigures {
    /// The class as `loadgen --work` writes it (`cpu=20us`).
    pub spec: String,
    /// Its share of the requests, 0 to 1.
    pub share: f64,
    /// Its requests completed in a repeat's measured time.
    pub messages: Option<Spread>,
    /// Median latency, µs (open loop: from the intended send time).
    pub latency_p50_us: Option<Spread>,
    /// 99th percentile latency, µs, with its interval from the class's own intervals.
    pub latency_p99_us: Option<Spread>,
}

/// Which of the tutorials' claims a [`Claim`] tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClaimGroup {
    /// Threads, and event loops, for clients that wait (I/O-bound work).
    IoBound,
    /// Processes, not threads, for CPU-bound work in Python (the GIL); alike in Rust.
    CpuBound,
    /// A CPU-heavy request blocks an event loop unless the work is handed to a pool.
    BlockedLoop,
}

/// Which way a claim says the ratio other / base goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expected {
    /// Above 1.
    Higher,
    /// Below 1.
    Lower,
    /// Within 0.9–1.1.
    Alike,
}

/// What the figures say of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The ratio's 95 % interval excludes 1 in the claimed direction (a claim of alike: it
    /// lies within 0.9–1.1).
    Holds,
    /// The interval lies within 0.9–1.1 where the claim says the two differ.
    Alike,
    /// The interval excludes 1 in the other direction (a claim of alike: it leaves 0.9–1.1
    /// and excludes 1).
    Opposite,
    /// None of these: no interval, or one that spans 1 and leaves 0.9–1.1; `why` says.
    CannotBeSeen,
}

/// One of the tutorials' claims, tested: a ratio of one figure between two servers in one
/// workload, with its interval and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    /// Which claim.
    pub group: ClaimGroup,
    /// The claim, in words.
    pub claim: String,
    /// The workload, as labelled.
    pub workload: String,
    /// The figure compared, by its key in the cells (`throughput_msgs_per_s`, or the light
    /// class's `latency_p99_us`).
    pub figure: String,
    /// The server the other is set against (the ratio's denominator).
    pub base: String,
    /// The other server (the numerator).
    pub other: String,
    /// Which way the claim says the ratio goes.
    pub expected: Expected,
    /// The base's figure (median over repeats).
    pub base_value: Option<f64>,
    /// The other's figure.
    pub other_value: Option<f64>,
    /// other / base.
    pub ratio: Option<f64>,
    /// The ratio's 95 % interval, from the two cells' bootstraps resample by resample.
    pub ratio_ci: Option<[f64; 2]>,
    /// What the figures say.
    pub verdict: Verdict,
    /// Why it cannot be seen, when it cannot.
    pub why: Option<String>,
}

/// One load agent's figures in a cell, over the cell's repeats.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AgentFigures {
    /// The host, as given to `--agents`.
    pub host: String,
    /// The machine it ran on, by the name it gives itself.
    pub machine: Option<String>,
    /// The CPUs it was pinned to; `null`: not pinned.
    pub cpus: Option<String>,
    /// Its active connections.
    pub connections: usize,
    /// Its throughput, messages/s.
    pub throughput_msgs_per_s: Option<Spread>,
    /// Its own CPU use over its cores.
    pub loadgen_cpu_ratio: Option<Spread>,
    /// Repeats in which it was saturated.
    pub saturated_repeats: usize,
    /// The latest start after the common one over the repeats, ms.
    pub start_late_ms_max: Option<f64>,
}

/// UDP: what became of a cell's datagrams, added up over its repeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DatagramCounts {
    /// Sent in the measured windows and judged (echoed, or lost after the timeout).
    pub sent: u64,
    /// Not echoed within the timeout.
    pub lost: u64,
    /// Lost, and echoed after the timeout after all.
    pub late: u64,
    /// Echoed after a datagram sent later on the same socket.
    pub reordered: u64,
    /// Echoed twice or more.
    pub duplicated: u64,
    /// Bounds of the 95 % Wilson score interval of the loss ratio, over all the datagrams of
    /// the repeats pooled (each datagram a trial).
    pub loss_low: f64,
    /// See `loss_low`.
    pub loss_high: f64,
    /// Receive drops the kernel counted at loadgen's sockets.
    pub kernel_drops_loadgen: u64,
    /// Receive drops the kernel counted at the server's sockets; `null` when not seen.
    pub kernel_drops_server: Option<u64>,
}

impl DatagramCounts {
    /// Lost over sent, of the pooled counts; 0 when nothing was sent.
    pub fn loss_ratio(&self) -> f64 {
        loadgen::Datagrams {
            sent: self.sent,
            lost: self.lost,
            ..loadgen::Datagrams::default()
        }
        .loss_ratio()
    }

    /// The 95 % Wilson score interval of `lost` out of `sent` (0 to 1; 0 to 0 when nothing
    /// was sent): unlike the normal approximation it stays inside 0–1 and says something
    /// when no datagram was lost.
    pub fn wilson(lost: u64, sent: u64) -> (f64, f64) {
        if sent == 0 {
            return (0.0, 0.0);
        }
        const Z: f64 = 1.959_964;
        let (n, p) = (sent as f64, lost as f64 / sent as f64);
        let z2 = Z * Z;
        let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
        let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
        ((centre - half).max(0.0), (centre + half).min(1.0))
    }
}

/// Memory per connection of one model: the slope of memory over idle connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryPerConnection {
    /// Server: the model name, with its arguments when its runs had any (`thread-pool(64)`).
    pub model: String,
    /// Least-squares slope of peak PSS over idle connections, bytes per connection.
    pub pss_bytes_per_connection: Option<f64>,
    /// The same for peak RSS (shared pages counted once per process).
    pub rss_bytes_per_connection: Option<f64>,
    /// (idle connections, peak PSS KiB) points the slope was fitted to.
    pub points: Vec<(usize, f64)>,
    /// Set when the server did not take the idle connections (they waited in the listen
    /// backlog, as with an iterative server or a pool smaller than the crowd): then there is
    /// no memory per connection to speak of, and no slope is given.
    pub not_accepted: Option<String>,
    /// 95 % confidence interval of the PSS slope, bytes per connection, from the slopes of the
    /// repeats alone (Student's t); absent when no slope is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pss_ci: Option<Ci>,
}

/// One model's row of the headline table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Headline {
    /// Server: the model name, with its arguments when its runs had any (`thread-pool(64)`).
    pub model: String,
    /// Best pingpong throughput, messages/s.
    pub peak_msgs_per_s: Option<f64>,
    /// Connections at which it was reached.
    pub peak_at_connections: Option<usize>,
    /// p99 latency at `rate_for_p99`, µs.
    pub p99_us_at_rate: Option<f64>,
    /// Whether that rate was achieved (≥ 95 %).
    pub rate_achieved: bool,
    /// Churn: connections per second.
    pub churn_conns_per_s: Option<f64>,
    /// Memory per idle connection, bytes (PSS slope).
    pub bytes_per_idle_connection: Option<f64>,
    /// Server CPU per message at 16 connections, µs.
    pub cpu_us_per_msg: Option<f64>,
    /// Bulk bandwidth (echoed payload), MB/s.
    pub bulk_mb_per_s: Option<f64>,
    /// TLS: full handshakes per second in tls-churn (16 at a time); absent without TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_handshakes_per_s: Option<f64>,
    /// The capacity search over 16 connections (`slo-c16`): the highest rate held under the
    /// target, with its range over the repeats; absent where it did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo_rate: Option<Spread>,
    /// Whether loadgen limited that search ("at least").
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slo_at_least: bool,
    /// Findings and caveats: starvation, loadgen-bound runs, errors, failures.
    pub flags: Vec<String>,
    /// The figures above (by key, e.g. `peak_msgs_per_s`) whose run loadgen limited: it used
    /// over 90 % of its CPUs, so the server may do more than the figure says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loadgen_bound: Vec<String>,
    /// Confidence intervals of the figures above, by their key (e.g. `peak_msgs_per_s`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci: BTreeMap<String, Ci>,
}

/// The findings the report opens with ("Which model for what", "Who leads each workload"), then "Starved or failed": statements generated from the figures and their intervals, never
/// written by hand.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// Per workload, in report order: who leads and by how much. A workload where loadgen
    /// was the limit for some servers has two rankings: the others by the workload's figure,
    /// those by server CPU per message.
    pub rankings: Vec<Ranking>,
    /// Servers whose runs starved connections or failed, in report order.
    pub troubles: Vec<Trouble>,
    /// Memory per connection (PSS slope), least first.
    pub memory: Vec<Standing>,
    /// Servers with idle runs but no memory per connection, and why.
    pub memory_unknown: Vec<LeftOut>,
}

/// The servers of one workload ranked by one figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ranking {
    /// Workload label.
    pub workload: String,
    /// The [`Cell`] figure ranked by: `throughput_msgs_per_s`, `latency_p99_us` or
    /// `server_cpu_us_per_msg`.
    pub figure: String,
    /// Whether a higher value is better.
    pub higher_is_better: bool,
    /// Whether these are the servers under which loadgen used over 90 % of its CPUs: their
    /// throughput and latency are loadgen's as much as the server's, so they are ranked by
    /// server CPU per message.
    pub loadgen_bound: bool,
    /// The servers ranked, best first.
    pub order: Vec<Standing>,
    /// How much better the first is than the second; absent with one server.
    pub margin: Option<Margin>,
    /// Servers of the workload left out of every ranking, and why.
    pub left_out: Vec<LeftOut>,
}

/// A server's figure with its confidence interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standing {
    /// Server label.
    pub model: String,
    /// The figure (median over repeats).
    pub value: f64,
    /// Its confidence interval, where it has one.
    pub ci: Option<Ci>,
}

/// How much better the leader is than the next, as a fraction of the next's figure (0.1: 10 %
/// more throughput, or 10 % less latency or CPU), with the 95 % interval of that fraction
/// from the two cells' bootstraps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Margin {
    /// The margin of the medians.
    pub value: f64,
    /// Lower bound of its interval; `null` where there is none.
    pub low: Option<f64>,
    /// Upper bound; `null` as `low`.
    pub high: Option<f64>,
    /// What the interval says.
    pub verdict: MarginVerdict,
}

/// Whether a margin is more than the noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarginVerdict {
    /// The interval lies above 0: the leader is better.
    Clear,
    /// The interval holds 0: the data do not rank the two.
    NoClearDifference,
    /// Too few samples for an interval (fewer than 3 repeats or 20 blocks).
    NoInterval,
}

/// A server left out of a ranking, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeftOut {
    /// Server label.
    pub model: String,
    /// Why, in words.
    pub why: String,
}

/// The runs of one server that starved connections or failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trouble {
    /// Server label.
    pub model: String,
    /// Workloads with starved connections: (workload label, most starved in a repeat, of
    /// how many connections).
    pub starved: Vec<(String, usize, usize)>,
    /// Workloads with a failed run.
    pub failed: Vec<String>,
    /// Why those runs failed: their notes, each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Workloads not run: they needed more than the server's caps allow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_run: Vec<String>,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Schema version.
    pub schema_version: u32,
    /// The environment the comparison ran in.
    pub environment: Environment,
    /// Models, in report order.
    pub models: Vec<String>,
    /// Workload labels, in report order.
    pub workloads: Vec<String>,
    /// The offered rate at which the headline compares p99 latency.
    pub rate_for_p99: Option<f64>,
    /// Headline rows, one per model.
    pub headline: Vec<Headline>,
    /// Every model × workload cell.
    pub cells: Vec<Cell>,
    /// Memory per connection, one per model.
    pub memory_per_connection: Vec<MemoryPerConnection>,
    /// How the confidence intervals were computed.
    pub resampling: Resampling,
    /// What the run shows, generated from the figures above.
    #[serde(default)]
    pub findings: Findings,
    /// The tutorials' claims, tested on the workloads of requests with a cost; absent when
    /// none ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<Claim>,
    /// The chat room: how each model that served it shares its rooms, and what it did with
    /// a slow member; absent when no chat workload ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chat_models: Vec<ChatModel>,
    /// The chat room: what each way of sharing costs per delivery against another's; absent
    /// when no chat workload ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sharing_costs: Vec<SharingCost>,
    /// Hostile clients: what each model's legitimate clients kept beside each attack,
    /// without and with defences; absent when no attack workload ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attack_models: Vec<AttackModel>,
}

impl Summary {
    /// The cells of one model (server label), by workload label.
    pub fn cells_of(&self, model: &str) -> BTreeMap<&str, &Cell> {
        self.cells
            .iter()
            .filter(|c| c.model == model)
            .map(|c| (c.label.as_str(), c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_median_of_odd_and_even_counts() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of([1.0, 2.0, 3.0, 10.0]).unwrap().median, 2.5);
        assert!(Spread::of([]).is_none());
    }
}
