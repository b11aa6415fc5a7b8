//! The machine a comparison runs on, read once at its start for `environment.json`.

use std::process::Command;

use crate::plan::CompareOptions;
use crate::schema::{Environment, ServerSpec};

/// Reads the machine now, for a comparison run with `opts`.
pub fn capture(opts: &CompareOptions) -> Environment {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
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
        started_utc: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        hostname: hostname(),
        cpu_model: field(&cpuinfo, "model name"),
        // Online CPUs of the machine, not of this (pinned) process.
        cores: nix::unistd::sysconf(nix::unistd::SysconfVar::_NPROCESSORS_ONLN)
            .ok()
            .flatten()
            .map_or(1, |n| n as usize),
        memory_kib: memory_kib(),
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        rustc: env!("ECHOBENCH_RUSTC").to_owned(),
        echobench_version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: git_commit(),
        server_cpus: loadgen::format_cpus(&opts.server_cpus),
        loadgen_cpus: loadgen::format_cpus(&opts.loadgen_cpus),
        profile: opts.profile,
        models: opts.servers.iter().map(ServerSpec::label).collect(),
        nofile_limit: loadgen::original_fd_limit().map(|(soft, hard)| [soft, hard]),
        ephemeral_ports: loadgen::local_port_range().map(|(first, last)| format!("{first}-{last}")),
        source_addrs: source_addrs(opts),
        repeats: Some(opts.repeats()),
        seed: Some(opts.seed),
        external: opts.external.clone(),
        udp: opts.udp,
        python: opts.python.clone(),
        hosts: hosts_run(&opts.hosts),
        slo: opts
            .slo
            .as_ref()
            .filter(|_| opts.workloads().iter().any(|w| w.is_slo()))
            .map(loadgen::Slo::text),
    }
}

/// The source addresses loadgen inside echobench reaches the servers from (agents choose
/// their own toward their target, the same way).
fn source_addrs(opts: &CompareOptions) -> Option<String> {
    let target = opts
        .hosts
        .server_addr
        .as_deref()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let sources = loadgen::source::SourceAddrs::Auto.resolve(target).ok()??;
    Some(format!(
        "{} ({} addresses)",
        sources.spec,
        sources.addrs.len()
    ))
}

/// What `environment.json` says of the hosts, when any beyond this one (or agents) took part.
fn hosts_run(hosts: &crate::plan::Hosts) -> Option<crate::schema::environment::HostsRun> {
    let here = !hosts.has_agents() && hosts.server_host.is_none() && hosts.server_addr.is_none();
    (!here).then(|| crate::schema::environment::HostsRun {
        agents: hosts.agents.clone(),
        launcher: hosts.launcher_text(),
        agent_bin: hosts.bin.clone(),
        server_host: hosts.server_host.clone(),
        server_addr: hosts.server_addr.clone(),
    })
}

/// The machine's memory (`MemTotal`), KiB; 0 where it cannot be read.
pub fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The checkout's commit, with `-dirty` when tracked files have uncommitted changes; `None`
/// outside a checkout.
pub fn git_commit() -> Option<String> {
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
