//! One run's record, `raw/<id>.run.json`, and the names of the matrix it belongs to.

use serde::{Deserialize, Serialize};

use crate::workload::{Timing, Workload};

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

    /// The model handing `--work`'s CPU work to a pool (`--offload pool`), labelled
    /// `model+pool`.
    pub fn pooled(name: &str) -> ServerSpec {
        ServerSpec {
            model: name.to_owned(),
            args: vec![OFFLOAD.to_owned(), "pool".to_owned()],
        }
    }

    /// Whether the server hands `--work`'s CPU work to a pool ([`ServerSpec::pooled`]).
    pub fn is_pooled(&self) -> bool {
        self.args == [OFFLOAD, "pool"]
    }

    /// The name reports show: the model, with its arguments when it has any, e.g.
    /// `thread-pool(64)` for `--workers 64` alone, `mio+pool` for `--offload pool` alone,
    /// `mio(--max-conns 100)` otherwise.
    pub fn label(&self) -> String {
        label(&self.model, &self.args)
    }

    /// The model a [`ServerSpec::label`] names: `thread-pool(64)` → `thread-pool`, `mio+pool`
    /// → `mio`.
    pub fn model_of(label: &str) -> &str {
        let model = label.split_once('(').map_or(label, |(model, _)| model);
        model.strip_suffix(POOLED).unwrap_or(model)
    }

    /// The workers a [`ServerSpec::label`] names: `thread-pool(64)` → 64; `None` for a label
    /// without them alone.
    pub fn workers_of(label: &str) -> Option<usize> {
        label.split_once('(')?.1.strip_suffix(')')?.parse().ok()
    }
}

/// The flag of a server's worker count, the one argument a label shows bare.
const WORKERS: &str = "--workers";

/// The flag that hands `--work`'s CPU work to a pool.
const OFFLOAD: &str = "--offload";

/// How a label marks a server that offloads: `mio+pool`.
const POOLED: &str = echo_server::models::POOLED;

/// See [`ServerSpec::label`].
fn label(model: &str, args: &[String]) -> String {
    match args {
        [] => model.to_owned(),
        [flag, workers] if flag == WORKERS => format!("{model}({workers})"),
        [flag, pool] if flag == OFFLOAD && pool == "pool" => format!("{model}{POOLED}"),
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Completed; figures stand.
    #[default]
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
    /// The CPUs the server ran on when they were not the comparison's `--server-cpus`: a
    /// CPU-bound workload gives it the loadgen CPUs too ([`Workload::shares_cpus`]); absent
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_cpus: Option<String>,
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
        let pooled = ServerSpec::pooled("mio");
        assert!(pooled.is_pooled() && !ServerSpec::model("mio").is_pooled());
        assert_eq!(pooled.label(), "mio+pool");
        assert_eq!(ServerSpec::model_of(&pooled.label()), "mio");
        assert_eq!(ServerSpec::workers_of(&pooled.label()), None);
        spec.server_args = vec!["--max-conns".to_owned(), "100".to_owned()];
        assert_eq!(spec.server_label(), "thread-pool(--max-conns 100)");

        let old: RunSpec = serde_json::from_str(&plain).unwrap();
        assert!(old.server_args.is_empty());
    }
}
