//! One run's record, `raw/<id>.run.json`, and the names of the matrix it belongs to.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How thorough a comparison is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Every workload once, short runs: within 5 minutes on 2 cores.
    Quick,
    /// Longer runs, more rates, each run repeated 3 times (median and spread).
    Full,
    /// A smoke test of the whole pipeline in seconds (for tests, not for conclusions).
    #[value(hide = true)]
    Tiny,
}

impl Profile {
    /// The profile's name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Quick => "quick",
            Profile::Full => "full",
            Profile::Tiny => "tiny",
        }
    }
}

/// One workload of the matrix, with its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "workload", rename_all = "lowercase")]
pub enum Workload {
    /// Closed loop, 64 B, this many connections.
    Pingpong {
        /// Concurrent connections.
        connections: usize,
    },
    /// Open loop at this total rate over 16 connections, 64 B.
    Rate {
        /// Offered messages per second.
        rate: f64,
    },
    /// One connection per message, 16 at a time.
    Churn,
    /// One active connection (closed loop) beside this many idle ones.
    Idle {
        /// Idle connections held open.
        idle: usize,
    },
    /// 64 KiB messages, 16 connections, closed loop.
    Bulk,
    /// Closed loop, 64 B, this many connections, against pools of blocking workers of every
    /// size of [`crate::plan::POOL_WORKERS`]: where a pool of N starves.
    Pool {
        /// Concurrent connections (clients).
        connections: usize,
    },
    /// UDP, closed loop, 64 B datagrams: this many sockets, each with `pipeline` datagrams in
    /// flight; loss judged after [`UDP_TIMEOUT`].
    #[serde(rename = "udp-pingpong")]
    UdpPingpong {
        /// Connected UDP sockets.
        connections: usize,
        /// Datagrams in flight per socket.
        pipeline: usize,
    },
    /// UDP, open loop at this total rate over 16 sockets, 64 B datagrams.
    #[serde(rename = "udp-rate")]
    UdpRate {
        /// Offered datagrams per second.
        rate: f64,
    },
    /// TLS, closed loop, 64 B, 16 connections (TLS-capable models).
    #[serde(rename = "tls-pingpong")]
    TlsPingpong,
    /// TLS, one connection per message (full handshake, or resumed with a ticket), 16 at a
    /// time: handshakes per second and server CPU per handshake.
    #[serde(rename = "tls-churn")]
    TlsChurn {
        /// Every connection resumes a session (`--tls-resume`).
        resumed: bool,
    },
    /// TLS, 64 KiB messages, 16 connections, closed loop.
    #[serde(rename = "tls-bulk")]
    TlsBulk,
    /// TLS, 16 long-lived connections in an open loop at [`TLS_MIXED_RATE`], beside new
    /// connections (full handshake, one echo, close) arriving at `share` % of the model's
    /// measured `tls-churn` rate: how handshakes delay everyone else.
    #[serde(rename = "tls-mixed")]
    TlsMixed {
        /// Arriving handshakes, per cent of the model's `tls-churn` handshakes per second (0:
        /// the control).
        share: u32,
    },
}

/// The long-lived connections' rate in `tls-mixed`, messages/s over 16 connections: light
/// enough that their latency shows the server's delays, not its queue, and that loadgen (one
/// core on 2) can also make the arrivals at half a model's `tls-churn` rate: at 10,000 it
/// could not, and its starved arrivals caught up in bursts.
pub const TLS_MIXED_RATE: f64 = 4000.0;

/// How long a UDP workload waits for an echo before the datagram counts as lost: the
/// loopback answers in microseconds, so 100 ms is a loss, not a slow echo.
pub const UDP_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(100);

/// Connections of the rate, churn and bulk workloads.
pub const SIXTEEN: usize = 16;

/// Message size of the bulk workload.
pub const BULK_SIZE: usize = 64 * 1024;

impl Workload {
    /// The workload's name, as in DESIGN.md's table.
    pub fn name(&self) -> &'static str {
        match self {
            Workload::Pingpong { .. } => "pingpong",
            Workload::Rate { .. } => "rate",
            Workload::Churn => "churn",
            Workload::Idle { .. } => "idle",
            Workload::Bulk => "bulk",
            Workload::Pool { .. } => "pool",
            Workload::UdpPingpong { .. } => "udp-pingpong",
            Workload::UdpRate { .. } => "udp-rate",
            Workload::TlsPingpong => "tls-pingpong",
            Workload::TlsChurn { .. } => "tls-churn",
            Workload::TlsBulk => "tls-bulk",
            Workload::TlsMixed { .. } => "tls-mixed",
        }
    }

    /// Whether the workload is sent over TLS (and runs the TLS-capable models only).
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            Workload::TlsPingpong
                | Workload::TlsChurn { .. }
                | Workload::TlsBulk
                | Workload::TlsMixed { .. }
        )
    }

    /// Whether the workload is sent over UDP (and runs the UDP models only).
    pub fn is_udp(&self) -> bool {
        matches!(
            self,
            Workload::UdpPingpong { .. } | Workload::UdpRate { .. }
        )
    }

    /// A short label with the parameter, e.g. `pingpong-c16`, `rate-20000`, `idle-1000`.
    pub fn label(&self) -> String {
        match self {
            Workload::Pingpong { connections } => format!("pingpong-c{connections}"),
            Workload::Rate { rate } => format!("rate-{rate:.0}"),
            Workload::Churn => "churn".to_owned(),
            Workload::Idle { idle } => format!("idle-{idle}"),
            Workload::Bulk => "bulk".to_owned(),
            Workload::Pool { connections } => format!("pool-c{connections}"),
            Workload::UdpPingpong {
                connections,
                pipeline: 1,
            } => format!("udp-pingpong-c{connections}"),
            Workload::UdpPingpong {
                connections,
                pipeline,
            } => format!("udp-pingpong-c{connections}-p{pipeline}"),
            Workload::UdpRate { rate } => format!("udp-rate-{rate:.0}"),
            Workload::TlsPingpong => "tls-pingpong".to_owned(),
            Workload::TlsChurn { resumed: false } => "tls-churn".to_owned(),
            Workload::TlsChurn { resumed: true } => "tls-churn-resumed".to_owned(),
            Workload::TlsBulk => "tls-bulk".to_owned(),
            Workload::TlsMixed { share } => format!("tls-mixed-{share}"),
        }
    }

    /// The workload a [`Workload::label`] names (rates are whole messages per second).
    pub fn from_label(label: &str) -> Option<Workload> {
        if let Some(udp) = label.strip_prefix("udp-") {
            return Workload::udp_from_label(udp);
        }
        match label {
            "tls-pingpong" => return Some(Workload::TlsPingpong),
            "tls-churn" => return Some(Workload::TlsChurn { resumed: false }),
            "tls-churn-resumed" => return Some(Workload::TlsChurn { resumed: true }),
            "tls-bulk" => return Some(Workload::TlsBulk),
            _ => {}
        }
        if let Some(share) = label.strip_prefix("tls-mixed-") {
            return Some(Workload::TlsMixed {
                share: share.parse().ok().filter(|s| *s < 100)?,
            });
        }
        let (name, parameter) = label.split_once('-').unwrap_or((label, ""));
        match (name, parameter) {
            ("pingpong", p) => Some(Workload::Pingpong {
                connections: p.strip_prefix('c')?.parse().ok()?,
            }),
            ("rate", p) => Some(Workload::Rate {
                rate: p.parse().ok()?,
            }),
            ("churn", "") => Some(Workload::Churn),
            ("idle", p) => Some(Workload::Idle {
                idle: p.parse().ok()?,
            }),
            ("bulk", "") => Some(Workload::Bulk),
            ("pool", p) => Some(Workload::Pool {
                connections: p.strip_prefix('c')?.parse().ok()?,
            }),
            _ => None,
        }
    }
}

impl Workload {
    /// The UDP workload a label names, less its `udp-`: `pingpong-c16`, `pingpong-c16-p8`,
    /// `rate-10000`.
    fn udp_from_label(label: &str) -> Option<Workload> {
        if let Some(rate) = label.strip_prefix("rate-") {
            return Some(Workload::UdpRate {
                rate: rate.parse().ok()?,
            });
        }
        let rest = label.strip_prefix("pingpong-c")?;
        let (connections, pipeline) = match rest.split_once("-p") {
            Some((c, p)) => (c, p.parse().ok().filter(|&p| p > 1)?),
            None => (rest, 1),
        };
        Some(Workload::UdpPingpong {
            connections: connections.parse().ok()?,
            pipeline,
        })
    }
}

/// Warm-up and measured time of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Warm-up, excluded from every figure.
    pub warmup: Duration,
    /// Measured time.
    pub duration: Duration,
}

/// A server as a comparison runs it: a model and the arguments it is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// Model name, as `echo-server --list` gives it.
    pub model: String,
    /// Further `echo-server` arguments, e.g. `["--workers", "64"]`; empty for the defaults.
    pub args: Vec<String>,
}

impl ServerSpec {
    /// The model with its defaults.
    pub fn model(name: &str) -> ServerSpec {
        ServerSpec {
            model: name.to_owned(),
            args: Vec::new(),
        }
    }

    /// The model with `--workers n`, labelled `model(n)`.
    pub fn with_workers(name: &str, n: usize) -> ServerSpec {
        ServerSpec {
            model: name.to_owned(),
            args: vec![WORKERS.to_owned(), n.to_string()],
        }
    }

    /// The name reports show: the model, with its arguments when it has any, e.g.
    /// `thread-pool(64)` for `--workers 64` alone, `mio(--max-conns 100)` otherwise.
    pub fn label(&self) -> String {
        label(&self.model, &self.args)
    }

    /// The model a [`ServerSpec::label`] names: `thread-pool(64)` → `thread-pool`.
    pub fn model_of(label: &str) -> &str {
        label.split_once('(').map_or(label, |(model, _)| model)
    }

    /// The workers a [`ServerSpec::label`] names: `thread-pool(64)` → 64; `None` for a label
    /// without them alone.
    pub fn workers_of(label: &str) -> Option<usize> {
        label.split_once('(')?.1.strip_suffix(')')?.parse().ok()
    }
}

/// The flag of a server's worker count, the one argument a label shows bare.
const WORKERS: &str = "--workers";

/// See [`ServerSpec::label`].
fn label(model: &str, args: &[String]) -> String {
    match args {
        [] => model.to_owned(),
        [flag, workers] if flag == WORKERS => format!("{model}({workers})"),
        _ => format!("{model}({})", args.join(" ")),
    }
}

/// The label as a file name's part: `thread-pool_workers_64`.
fn stem(model: &str, args: &[String]) -> String {
    let args = args
        .iter()
        .map(|a| a.trim_start_matches('-'))
        .map(|a| a.replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "-"));
    std::iter::once(model.to_owned())
        .chain(args)
        .collect::<Vec<_>>()
        .join("_")
}

/// One run of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Model name.
    pub model: String,
    /// Further `echo-server` arguments; records without them ran with the model's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_args: Vec<String>,
    /// Workload and parameter.
    pub workload: Workload,
    /// Repeat number, from 1.
    pub repeat: u32,
}

impl RunSpec {
    /// The server this run started.
    pub fn server(&self) -> ServerSpec {
        ServerSpec {
            model: self.model.clone(),
            args: self.server_args.clone(),
        }
    }

    /// The name reports show for this run's server: see [`ServerSpec::label`].
    pub fn server_label(&self) -> String {
        label(&self.model, &self.server_args)
    }

    /// The run's file name stem under `raw/`, e.g. `mio.pingpong-c16.r1`.
    pub fn id(&self) -> String {
        format!(
            "{}.{}.r{}",
            stem(&self.model, &self.server_args),
            self.workload.label(),
            self.repeat
        )
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Completed; figures stand.
    Ok,
    /// Completed, but some connections completed no message (an iterative server's finding).
    Starved,
    /// No figures: the server did not start, no message completed, an echo mismatched, or
    /// the server ignored SIGTERM or daemonized.
    Failed,
    /// Not run: the workload needs more than an external server's caps allow
    /// (`max_idle`, `max_connections`); the note says how much.
    #[serde(rename = "not_run")]
    NotRun,
}

impl Status {
    /// The status as reports and progress lines write it: `ok`, `starved`, `failed`, `not run`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Starved => "starved",
            Status::Failed => "failed",
            Status::NotRun => "not run",
        }
    }

    /// Whether a run with this status has figures: it completed (starved connections or not).
    pub fn has_figures(self) -> bool {
        matches!(self, Status::Ok | Status::Starved)
    }
}

/// How a run's note begins when the run was not made because its server failed to start,
/// ignored SIGTERM or daemonized in an earlier run; the earlier run's reason follows.
pub const NOT_TRIED: &str = "not tried: ";

/// One run's record, `raw/<id>.run.json`; the loadgen report is beside it in `raw/<id>.json`
/// and its interval log in `raw/<id>.hlog`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`super::SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Model, server arguments, workload, repeat.
    pub spec: RunSpec,
    /// Warm-up and measured time.
    pub timing: Timing,
    /// How the run ended.
    pub status: Status,
    /// Why it failed or starved, or what else was seen (e.g. a slow stop).
    pub note: Option<String>,
    /// Server resources; `null` when the server never ran.
    pub server: Option<ServerUsage>,
    /// `compare --agents`: each load agent's part of the run; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<AgentRun>>,
}

/// One load agent's part of a run (`compare --agents`): its slice of the plan, how it started
/// and what it measured. Its report and interval log are `raw/<id>.agent-N.json` and `.hlog`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentRun {
    /// The host, as given to `--agents`.
    pub host: String,
    /// Its first connection's number in the run's plan.
    pub conn_offset: usize,
    /// Its active connections.
    pub connections: usize,
    /// Its idle connections.
    pub idle: usize,
    /// The machine it ran on, by the name it gives itself: agents of one machine (and the same
    /// `cpus`) share their CPUs.
    pub machine: Option<String>,
    /// The CPUs it was pinned to; `null`: not pinned.
    pub cpus: Option<String>,
    /// Whether another agent ran on the same machine and CPUs (it then gave the CPU up after
    /// every batch of events: `loadgen --share-cpus`).
    #[serde(default)]
    pub shares_cpus: bool,
    /// Its clock minus the coordinator's, ms, as measured before the run.
    pub clock_offset_ms: Option<f64>,
    /// How long after the common start its load really started, ms (its clock's offset taken
    /// out); `null` when it sent no report.
    pub start_late_ms: Option<f64>,
    /// Echoes it completed in the measured time.
    pub messages: Option<u64>,
    /// Its throughput, messages/s.
    pub throughput_msgs_per_s: Option<f64>,
    /// Its own CPU use over its cores (its `loadgen_cpu_ratio`).
    pub loadgen_cpu_ratio: Option<f64>,
    /// Whether it was saturated (its `loadgen_saturated`).
    pub loadgen_saturated: Option<bool>,
    /// Why it failed, started late or was stopped; `null` when it ran well.
    pub failure: Option<String>,
}

impl AgentRun {
    /// The record of an agent with its slice of the plan, before it runs.
    pub fn new(host: &str, conn_offset: usize, connections: usize, idle: usize) -> AgentRun {
        AgentRun {
            host: host.to_owned(),
            conn_offset,
            connections,
            idle,
            ..AgentRun::default()
        }
    }
}

/// The server's resources in one run, the `server` of its record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerUsage {
    /// CPU seconds (user + system, whole tree) in the measured time (scaled from the window
    /// between the two full samples).
    pub cpu_s: f64,
    /// Peak resident memory of the tree, KiB (sum over processes: shared pages counted in each).
    pub peak_rss_kib: u64,
    /// Peak proportional set size of the tree, KiB (shared pages split between processes).
    pub peak_pss_kib: u64,
    /// Most threads at once.
    pub peak_threads: u64,
    /// Most processes at once.
    pub peak_processes: u64,
    /// Most open file descriptors at once (at the start or end of the measured time): shows
    /// how many connections the server actually took.
    #[serde(default)]
    pub peak_fds: u64,
    /// Voluntary context switches in the measured time (threads alive at its end).
    pub voluntary_switches: u64,
    /// Involuntary context switches in the measured time (threads alive at its end).
    pub involuntary_switches: u64,
    /// The tree's CPU time through the measured time, one point per interval boundary
    /// (100 ms): `[seconds since the end of warm-up, CPU seconds since the first point]`.
    /// Empty in records written before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_series: Vec<[f64; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_their_workload_back() {
        for w in [
            Workload::Pingpong { connections: 1024 },
            Workload::Rate { rate: 50_000.0 },
            Workload::Churn,
            Workload::Idle { idle: 0 },
            Workload::Bulk,
            Workload::Pool { connections: 128 },
        ] {
            assert_eq!(Workload::from_label(&w.label()), Some(w));
        }
        assert_eq!(Workload::Pool { connections: 16 }.label(), "pool-c16");
        for bad in [
            "pingpong",
            "pingpong-16",
            "rate-fast",
            "churn-2",
            "pool-16",
            "nope",
        ] {
            assert_eq!(Workload::from_label(bad), None, "{bad}");
        }
    }

    #[test]
    fn server_arguments_are_recorded_and_absent_ones_read_as_the_defaults() {
        let mut spec = RunSpec {
            model: "thread-pool".to_owned(),
            server_args: Vec::new(),
            workload: Workload::Churn,
            repeat: 1,
        };
        let plain = serde_json::to_string(&spec).unwrap();
        assert!(!plain.contains("server_args"), "{plain}");
        assert_eq!(spec.id(), "thread-pool.churn.r1");
        assert_eq!(spec.server_label(), "thread-pool");

        spec.server_args = vec!["--workers".to_owned(), "64".to_owned()];
        let json = serde_json::to_string(&spec).unwrap();
        assert!(
            json.contains(r#""server_args":["--workers","64"]"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<RunSpec>(&json).unwrap(), spec);
        assert_eq!(spec.id(), "thread-pool_workers_64.churn.r1");
        assert_eq!(spec.server_label(), "thread-pool(64)");
        assert_eq!(spec.server(), ServerSpec::with_workers("thread-pool", 64));
        assert_eq!(ServerSpec::model_of(&spec.server_label()), "thread-pool");
        assert_eq!(ServerSpec::workers_of(&spec.server_label()), Some(64));
        assert_eq!(ServerSpec::workers_of("mio"), None);
        assert_eq!(ServerSpec::model_of("mio"), "mio");
        spec.server_args = vec!["--max-conns".to_owned(), "100".to_owned()];
        assert_eq!(spec.server_label(), "thread-pool(--max-conns 100)");

        let old: RunSpec = serde_json::from_str(&plain).unwrap();
        assert!(old.server_args.is_empty());
    }
}
