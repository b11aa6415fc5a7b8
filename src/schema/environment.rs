//! `environment.json`: the machine and the settings a comparison ran with.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::external::ExternalServer;
use crate::workload::Profile;

/// What a reader needs to know to trust, or redo, a comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    /// Version of this file's schema.
    pub schema_version: u32,
    /// When the comparison started, UTC, RFC 3339.
    pub started_utc: String,
    /// Host name.
    pub hostname: String,
    /// CPU model, from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// CPUs online.
    pub cores: usize,
    /// Memory, from `/proc/meminfo`, KiB.
    pub memory_kib: u64,
    /// Kernel release.
    pub kernel: String,
    /// Compiler that built echobench.
    pub rustc: String,
    /// echobench version.
    pub echobench_version: String,
    /// Git commit of the checkout, with `-dirty` when it had uncommitted changes; `null` outside
    /// a checkout.
    pub git_commit: Option<String>,
    /// CPUs the servers were pinned to.
    pub server_cpus: String,
    /// CPUs loadgen was pinned to.
    pub loadgen_cpus: String,
    /// Profile.
    pub profile: Profile,
    /// Servers in run order: model names, with their arguments when a run gave any.
    pub models: Vec<String>,
    /// The descriptor limit (`RLIMIT_NOFILE`) echobench started with: soft and hard. The
    /// runner and loadgen raise their soft limit to the hard one, and so do the servers
    /// echobench builds; servers it does not build get the original soft limit back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile_limit: Option<[u64; 2]>,
    /// `net.ipv4.ip_local_port_range`: the ephemeral ports loadgen's connections come from,
    /// e.g. `32768-60999`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_ports: Option<String>,
    /// The local addresses loadgen's connections came from, in turn (`loadgen
    /// --source-addrs`), with their count, e.g. `127.1.0.1-127.1.0.254 (254 addresses)`;
    /// absent when the kernel picked them, or in comparisons made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_addrs: Option<String>,
    /// Passes over the matrix (`--repeat`); absent in comparisons made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
    /// Seed of the run order and of the bootstrap (`--seed`); absent in comparisons made
    /// before it was recorded, which are resampled with seed 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The servers among `models` that echobench does not build, as they were given
    /// (`--server`, `--server-file`); absent when there were none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external: Vec<ExternalServer>,
    /// Whether the UDP workloads ran (`--udp`, or the full profile); absent when they did not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub udp: bool,
    /// The Python models' interpreter and what became of each (`--python`); absent when they
    /// were not asked for. Those that ran are also among `external`, which holds their command
    /// lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PythonRun>,
    /// Load agents and a server on another host (`--agents`, `--server-host`); absent when
    /// all ran here with loadgen inside echobench.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<HostsRun>,
    /// The capacity search's latency target (`--slo`, as `p99=1ms`); absent where it did not
    /// run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<String>,
}

/// Where the load and the servers ran, beyond this host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsRun {
    /// The agents' hosts, in order (empty: loadgen ran inside echobench).
    pub agents: Vec<String>,
    /// The launcher, with `{host}` (empty: direct exec).
    pub launcher: String,
    /// The echobench binary run on the hosts.
    pub agent_bin: String,
    /// The host the servers ran on; `null`: this one.
    pub server_host: Option<String>,
    /// Where the servers listened; `null`: loopback.
    pub server_addr: Option<String>,
}

/// How the Python models ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PythonRun {
    /// The interpreter as given (`python3`, or `--python=PATH`).
    pub program: String,
    /// Its own path (`sys.executable`).
    pub executable: String,
    /// `CPython`, `PyPy`, ...
    pub implementation: String,
    /// Its version, e.g. `3.11.7`.
    pub version: String,
    /// `py-multiprocessing`'s start method.
    pub start_method: String,
    /// Where the scripts that ran were written (inside the comparison's directory).
    pub scripts: String,
    /// The Python models that ran.
    pub models: Vec<String>,
    /// Those asked for that did not run, each with why (a package not importable).
    pub skipped: Vec<Skipped>,
}

/// A server left out of a comparison, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// Its name.
    pub model: String,
    /// Why, in one line.
    pub why: String,
}

impl Environment {
    /// The external server of this name, if `name` is one (echobench's own Python models are
    /// run as external servers, and are not: see [`Environment::is_python`]).
    pub fn external(&self, name: &str) -> Option<&ExternalServer> {
        self.external
            .iter()
            .find(|e| e.name == name && !self.is_python(name))
    }

    /// Whether `name` is one of echobench's Python models that this comparison ran.
    pub fn is_python(&self, name: &str) -> bool {
        self.python
            .as_ref()
            .is_some_and(|p| p.models.iter().any(|m| m == name))
    }
}

impl Environment {
    /// Writes `environment.json`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(path, json).with_context(|| format!("cannot write {}", path.display()))
    }

    /// Reads `environment.json`.
    pub fn read(path: &Path) -> anyhow::Result<Environment> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not an environment file", path.display()))
    }
}
