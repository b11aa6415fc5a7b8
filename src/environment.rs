//! `environment.json`: the machine and the settings a comparison ran with.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::runner::CompareOptions;
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
    /// Models, in run order.
    pub models: Vec<String>,
}

impl Environment {
    /// Reads the machine now.
    pub fn capture(opts: &CompareOptions) -> Environment {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let field = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(key)?
                        .split_once(':')
                        .map(|(_, v)| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        Environment {
            schema_version: 1,
            started_utc: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string(),
            hostname: hostname(),
            cpu_model: field(&cpuinfo, "model name"),
            // Online CPUs of the machine, not of this (pinned) process.
            cores: nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
                .ok()
                .flatten()
                .map_or(1, |n| n as usize),
            memory_kib: field(&meminfo, "MemTotal")
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            rustc: env!("ECHOBENCH_RUSTC").to_owned(),
            echobench_version: env!("CARGO_PKG_VERSION").to_owned(),
            git_commit: git_commit(),
            server_cpus: loadgen::format_cpus(&opts.server_cpus),
            loadgen_cpus: loadgen::format_cpus(&opts.loadgen_cpus),
            profile: opts.profile,
            models: opts.models.clone(),
        }
    }

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

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}
