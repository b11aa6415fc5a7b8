//! Server resources from `/proc`, over the server's whole session: every server starts in a
//! session of its own ([`super::launch`]), and everything it starts stays in it unless it
//! daemonizes. A [`Tree`] is what a sample reads: the processes under the session's leader,
//! walked at every sample, and the session's other processes (orphans that init adopted), found
//! by a scan of all `/proc` at every full sample only (the start and the end of the measured
//! time). The sampler runs on loadgen's CPUs: a scan cost it 0.66 ms of CPU with 64 processes on
//! the machine (more on a busier one), a walk of a one-process tree 0.02 ms; scans at every
//! 100 ms sample would stall the load for 7 ms in every second.
//!
//! Two kinds of sample: a cheap one (`stat` and `status` of each process) taken through the run
//! for peaks, and a full one (plus every thread's context switches and each process's PSS)
//! taken at the start and the end of the measured time for deltas.

use std::collections::HashMap;
use std::fs;

use crate::schema::ServerUsage;

/// One look at the process tree.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    /// CPU time of the session in clock ticks: live processes' user + system, plus what each
    /// has collected from children it reaped.
    pub cpu_ticks: u64,
    /// Sum of resident memory, KiB.
    pub rss_kib: u64,
    /// Sum of proportional set size, KiB (shared pages split between sharers); full samples only.
    pub pss_kib: Option<u64>,
    /// Threads in the tree.
    pub threads: u64,
    /// Processes in the tree.
    pub processes: u64,
    /// Open file descriptors in the tree (sockets included); full samples only.
    pub fds: Option<u64>,
    /// Voluntary and involuntary context switches of every live thread, by thread id; full
    /// samples only.
    pub switches: HashMap<u32, (u64, u64)>,
}

/// The processes of session `sid` with their `stat` lines: a server started in a session of
/// its own and whatever it started that stayed in it (children, and orphans of theirs that
/// init adopted), found by scanning `/proc`. A process that left the session (a daemon) is
/// not among them: see [`marked`].
pub fn session(sid: u32) -> Vec<(u32, String)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            (session_field(&stat) == Some(sid)).then_some((pid, stat))
        })
        .collect()
}

/// The session of process `pid`, while it lives.
pub fn session_of(pid: u32) -> Option<u32> {
    session_field(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn session_field(stat: &str) -> Option<u32> {
    // Fields after the command name, numbered as in proc(5) minus 3: session is 6.
    stat_fields(stat).get(3)?.parse().ok()
}

/// Processes other than this one whose environment holds the `NAME=value` entry `marker`
/// (readable only for this user's processes): what a started command and everything it
/// started carry, wherever they went, unless they cleared their environment.
pub fn marked(marker: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == marker.as_bytes()))
        })
        .collect()
}

/// A process's command name, for reports (`?` once it is gone).
pub fn name(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map_or_else(|_| "?".to_owned(), |c| c.trim().to_owned())
}

/// The processes of a server's session that samples read: see the module's documentation.
#[derive(Debug, Clone)]
pub struct Tree {
    /// The session, and its leader's pid.
    sid: u32,
    /// Processes of the session outside the leader's tree, as of the last scan.
    strays: Vec<u32>,
}

impl Tree {
    /// The tree of session `sid`, scanned once.
    pub fn of_session(sid: u32) -> Tree {
        let mut tree = Tree {
            sid,
            strays: Vec::new(),
        };
        tree.rescan();
        tree
    }

    /// Finds the session's processes outside the leader's tree again (a scan of `/proc`).
    pub fn rescan(&mut self) {
        let under = descendants(self.sid);
        self.strays = session(self.sid)
            .into_iter()
            .map(|(pid, _)| pid)
            .filter(|pid| !under.contains(pid))
            .collect();
    }

    /// Every process of the session, with its `stat` line: the leader's tree walked now, the
    /// strays of the last scan; any that left the session meanwhile are left out.
    fn members(&self) -> Vec<(u32, String)> {
        let mut pids = descendants(self.sid);
        pids.extend(
            self.strays
                .iter()
                .filter(|p| !pids.contains(p))
                .collect::<Vec<_>>(),
        );
        pids.into_iter()
            .filter_map(|pid| {
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                (session_field(&stat) == Some(self.sid)).then_some((pid, stat))
            })
            .collect()
    }
}

/// `root` and all its descendants.
fn descendants(root: u32) -> Vec<u32> {
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        let pid = all[i];
        if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                if let Ok(list) = fs::read_to_string(task.path().join("children")) {
                    all.extend(
                        list.split_whitespace()
                            .filter_map(|p| p.parse::<u32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    all
}

/// Samples `tree`; `full` scans for strays first and adds PSS and per-thread context switches.
pub fn sample(tree: &mut Tree, full: bool) -> Sample {
    if full {
        tree.rescan();
    }
    let mut s = Sample::default();
    let mut pss = 0;
    let mut fds = 0;
    let members = tree.members();
    s.cpu_ticks = cpu_ticks_of(&members);
    for (pid, _) in members {
        if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
            s.rss_kib += status_value(&status, "VmRSS").unwrap_or(0);
            s.threads += status_value(&status, "Threads").unwrap_or(0);
        }
        s.processes += 1;
        if full {
            if let Ok(rollup) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
                pss += status_value(&rollup, "Pss").unwrap_or(0);
            }
            add_switches(pid, &mut s.switches);
            fds += fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        }
    }
    if full {
        s.pss_kib = Some(pss);
        s.fds = Some(fds);
    }
    s
}

/// CPU time of `tree` in clock ticks, as [`Sample::cpu_ticks`]: the cheapest look (a file or
/// two per process, no scan).
pub fn cpu_ticks(tree: &Tree) -> u64 {
    cpu_ticks_of(&tree.members())
}

/// The CPU time of processes (with their `stat` lines) in clock ticks, added up in
/// nanoseconds first: see [`process_cpu_ns`].
fn cpu_ticks_of(members: &[(u32, String)]) -> u64 {
    let ns: f64 = members
        .iter()
        .map(|(pid, stat)| process_cpu_ns(*pid, stat))
        .sum();
    (ns * ticks_per_second() as f64 / 1e9) as u64
}

/// One process's CPU time in nanoseconds: its own, plus what it has collected from children it
/// reaped. Summed over the live processes of a session, every process that ran in it counts
/// once, live in its own line or reaped in its reaper's (an orphan reaped by init is lost).
///
/// A single-threaded process's own time is the scheduler's count (`schedstat`, in ns): its
/// `stat` gives whole clock ticks (10 ms), truncated, so that a hundred processes that each
/// ran 15 ms read as one tick each, a third of their time lost (`fork-per-client` serving a
/// chat room of 128 members read 0.3 CPU where it used all of one). A process of several
/// threads reads its `stat`, the whole group's time in ticks, where one process's truncation
/// is one tick.
fn process_cpu_ns(pid: u32, stat: &str) -> f64 {
    let fields = stat_fields(stat);
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let tick_ns = 1e9 / ticks_per_second() as f64;
    // Fields after the command name, numbered as in proc(5) minus 3: utime is 14,
    // num_threads 20.
    let reaped = (field(13) + field(14)) as f64 * tick_ns;
    let ticks = (field(11) + field(12)) as f64 * tick_ns;
    let own = match field(17) {
        1 => fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(ticks),
        _ => ticks,
    };
    own + reaped
}

fn add_switches(pid: u32, into: &mut HashMap<u32, (u64, u64)>) {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        if let Ok(status) = fs::read_to_string(task.path().join("status")) {
            let voluntary = status_value(&status, "voluntary_ctxt_switches").unwrap_or(0);
            let involuntary = status_value(&status, "nonvoluntary_ctxt_switches").unwrap_or(0);
            into.insert(tid, (voluntary, involuntary));
        }
    }
}

/// The fields of `/proc/<pid>/stat` after the parenthesised command name.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// `Key:   123 kB` → 123.
fn status_value(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Context switches between two full samples: threads seen in both count their difference,
/// threads new at the end count whole. Threads that came and went between the two samples are
/// not seen (the kernel keeps no per-process total of them outside `getrusage`).
pub fn switches_between(start: &Sample, end: &Sample) -> (u64, u64) {
    end.switches
        .iter()
        .fold((0, 0), |(v, i), (tid, &(ev, ei))| {
            let (sv, si) = start.switches.get(tid).copied().unwrap_or((0, 0));
            (v + ev.saturating_sub(sv), i + ei.saturating_sub(si))
        })
}

/// Clock ticks per second, for `cpu_ticks`.
pub fn ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map_or(100, |t| t as u64)
    })
}

/// Folds the samples of one run into its usage.
pub fn usage(start: &Sample, end: &Sample, peaks: &[Sample]) -> ServerUsage {
    let (voluntary, involuntary) = switches_between(start, end);
    let all = || peaks.iter().chain([start, end]);
    ServerUsage {
        cpu_s: end.cpu_ticks.saturating_sub(start.cpu_ticks) as f64 / ticks_per_second() as f64,
        peak_rss_kib: all().map(|s| s.rss_kib).max().unwrap_or(0),
        peak_pss_kib: all().filter_map(|s| s.pss_kib).max().unwrap_or(0),
        peak_threads: all().map(|s| s.threads).max().unwrap_or(0),
        peak_processes: all().map(|s| s.processes).max().unwrap_or(0),
        peak_fds: all().filter_map(|s| s.fds).max().unwrap_or(0),
        voluntary_switches: voluntary,
        involuntary_switches: involuntary,
        cpu_series: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_a_session_whose_cpu_time_only_grows() {
        use super::super::launch::{command, Launched};
        let argv = ["sh", "-c", "while :; do :; done"].map(str::to_owned);
        let (cmd, marker) = command(&argv, &[], &loadgen::affinity_cpus()).expect("a command");
        let mut busy = Launched::spawn(cmd, marker).expect("started");
        let mut tree = Tree::of_session(busy.sid);
        let s = sample(&mut tree, true);
        assert_eq!(s.processes, 1);
        assert!(s.threads >= 1);
        assert!(s.rss_kib > 0);
        assert!(s.pss_kib.expect("full") > 0);
        assert!(!s.switches.is_empty());
        assert!(s.fds.expect("full") >= 3, "stdin, stdout, stderr at least");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while cpu_ticks(&tree) <= s.cpu_ticks && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            cpu_ticks(&tree) > s.cpu_ticks,
            "a busy loop's CPU time grows"
        );
        busy.end(true, std::time::Duration::from_secs(1));
        assert!(session(busy.sid).is_empty());
    }

    #[test]
    fn a_single_threaded_process_is_read_in_nanoseconds_and_a_group_in_ticks() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("sleep runs");
        let pid = child.id();
        let scheduler: f64 = fs::read_to_string(format!("/proc/{pid}/schedstat"))
            .expect("schedstat")
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // A line that claims 1,000 ticks (10 s at 100 Hz) of its own and 3 reaped.
        let line = |threads: u32| {
            format!("{pid} (sleep) S 1 1 1 0 -1 0 0 0 0 0 600 400 2 1 20 0 {threads} 0 0 0 0")
        };
        let tick_ns = 1e9 / ticks_per_second() as f64;
        let one = process_cpu_ns(pid, &line(1));
        assert!(one >= scheduler + 3.0 * tick_ns, "{one} {scheduler}");
        assert!(
            one < 1000.0 * tick_ns,
            "the scheduler's count, not the ticks: {one}"
        );
        assert_eq!(process_cpu_ns(pid, &line(2)), 1003.0 * tick_ns);
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn switches_count_differences_and_new_threads() {
        let mut a = Sample::default();
        a.switches.insert(1, (10, 1));
        let mut b = Sample::default();
        b.switches.insert(1, (15, 3));
        b.switches.insert(2, (4, 0));
        assert_eq!(switches_between(&a, &b), (9, 2));
    }
}
