//! Facts of the machine a run is made on: its descriptor limit, its ephemeral ports, the CPUs
//! this process may use (and pinning to them), and the process's own CPU time.

use std::sync::OnceLock;
use std::thread;

use anyhow::Context;

/// The descriptor limit (`RLIMIT_NOFILE`, soft and hard) this process started with, before
/// [`raise_fd_limit`] raised it.
static ORIGINAL_NOFILE: OnceLock<(u64, u64)> = OnceLock::new();

/// Raises this process's soft descriptor limit to its hard limit: thousands of connections
/// need more than the usual soft limit of 1024. Failure leaves the limit as it was.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        ORIGINAL_NOFILE.get_or_init(|| (soft, hard));
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// The descriptor limit this process started with (soft, hard), even after
/// [`raise_fd_limit`]: what programs it starts should get back.
pub fn original_fd_limit() -> Option<(u64, u64)> {
    use nix::sys::resource::{getrlimit, Resource};
    ORIGINAL_NOFILE
        .get()
        .copied()
        .or_else(|| getrlimit(Resource::RLIMIT_NOFILE).ok())
}

/// The ephemeral ports a connect may take, `net.ipv4.ip_local_port_range` (first, last).
pub fn local_port_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut ports = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    Some((ports.next()??, ports.next()??))
}

/// loadgen's CPU time so far, user + system over all its threads, in seconds.
pub(crate) fn cpu_seconds() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        secs(u.user_time()) + secs(u.system_time())
    })
}

/// The CPUs this process may run on.
pub fn affinity_cpus() -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    use nix::unistd::Pid;
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&c| set.is_set(c).unwrap_or(false))
            .collect(),
        Err(_) => (0..thread::available_parallelism().map_or(1, |n| n.get())).collect(),
    }
}

/// Pins the calling thread to the CPUs of `cpus`.
pub(crate) fn pin_to(cpus: &[usize]) -> anyhow::Result<()> {
    use nix::sched::{sched_setaffinity, CpuSet};
    use nix::unistd::Pid;
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu)
            .with_context(|| format!("--cpus: no CPU {cpu}"))?;
    }
    let plural = if cpus.len() == 1 { "" } else { "s" };
    sched_setaffinity(Pid::from_raw(0), &set)
        .with_context(|| format!("--cpus: cannot pin to CPU{plural} {}", format_cpus(cpus)))
}

/// Parses a CPU list such as `0-3,8`.
pub fn parse_cpus(list: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim) {
        let bad = || format!("'{part}' is not a CPU number or range like 0-3");
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (usize, usize) = (
                    lo.parse().map_err(|_| bad())?,
                    hi.parse().map_err(|_| bad())?,
                );
                if lo > hi {
                    return Err(bad());
                }
                cpus.extend(lo..=hi);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Formats CPUs as a list with ranges, e.g. `0-3,8`.
pub fn format_cpus(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}
