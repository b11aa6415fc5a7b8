//! Starting a server's command and ending it, the same way for the models echobench builds and
//! for a user's own: the program is executed directly (no shell in between), in a session of
//! its own (`setsid`, so the session and its process group are the server and all it starts),
//! pinned to the server CPUs and with the descriptor soft limit the user had, both before it
//! runs a line of its own; and marked with `ECHOBENCH_SERVER=<id>` in its environment, which
//! everything it starts inherits, so that a process that leaves the session (a daemon) is
//! still found. It ends with SIGTERM and, after a grace period, SIGKILL to the whole session.
//! While `compare` runs, an interrupt ends the live sessions before echobench exits
//! ([`end_sessions_on_interrupt`]).

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use super::procfs;

/// The environment variable that marks a started command and everything it starts.
pub const MARK: &str = "ECHOBENCH_SERVER";

/// Sessions started and not yet ended, for [`end_sessions_on_interrupt`].
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Set, under `LIVE`'s lock, once an interrupt is being handled: no session starts after it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A started command: the leader of its own session.
pub struct Launched {
    child: Child,
    /// The session's id: the leader's pid, also its process group's.
    pub sid: u32,
    /// `ECHOBENCH_SERVER=<id>`, unique to this start.
    marker: String,
    /// How the leader ended, once it has.
    status: Option<ExitStatus>,
}

/// How a session ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// From the signal to the last process gone.
    pub took: Duration,
    /// How the leader exited (`None`: it had been reaped before, see [`Launched::exited`]).
    pub status: Option<ExitStatus>,
    /// Whether it outlasted the grace period and was killed.
    pub killed: bool,
    /// Processes that had left the session, killed: `pid name` each.
    pub escaped: Vec<String>,
}

/// A command for `argv` with `env` set: run in a session of its own, pinned to `cpus`, with the
/// soft descriptor limit echobench started with (echobench raises its own for loadgen, and a
/// child would inherit that; a `select()`-based server breaks on a descriptor above 1,023),
/// stdin from /dev/null. Returns it with its marker, which it carries in its environment.
pub fn command(
    argv: &[String],
    env: &[(String, String)],
    cpus: &[usize],
) -> anyhow::Result<(Command, String)> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let Some((program, args)) = argv.split_first() else {
        anyhow::bail!("no program to run");
    };
    let set = cpu_set(cpus)?;
    let id = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(MARK, &id)
        .stdin(Stdio::null());
    in_own_session(&mut cmd, set, loadgen::original_fd_limit());
    Ok((cmd, format!("{MARK}={id}")))
}

/// The affinity set of `cpus`; an error names a CPU the set cannot hold.
pub fn cpu_set(cpus: &[usize]) -> anyhow::Result<nix::sched::CpuSet> {
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus {
        set.set(cpu).with_context(|| format!("no CPU {cpu}"))?;
    }
    Ok(set)
}

/// Makes `cmd`'s child call `setsid`, pin itself to `cpus` and set its descriptor limit
/// between fork and exec.
#[allow(unsafe_code)]
fn in_own_session(cmd: &mut Command, cpus: nix::sched::CpuSet, nofile: Option<(u64, u64)>) {
    use nix::sys::resource::{setrlimit, Resource};
    use std::os::unix::process::CommandExt;
    let setup = move || -> std::io::Result<()> {
        nix::unistd::setsid()?;
        nix::sched::sched_setaffinity(Pid::from_raw(0), &cpus)?;
        if let Some((soft, hard)) = nofile {
            setrlimit(Resource::RLIMIT_NOFILE, soft, hard)?;
        }
        Ok(())
    };
    // SAFETY: `pre_exec` runs `setup` in the forked child before exec, where only
    // async-signal-safe work is allowed. `setup` makes three plain system calls (setsid,
    // sched_setaffinity, setrlimit) on values prepared before the fork and moved in; it
    // allocates nothing and takes no lock, and its errors are raw OS errors.
    unsafe {
        cmd.pre_exec(setup);
    }
}

impl Launched {
    /// Starts `cmd` (from [`command`], with its `marker`).
    pub fn spawn(mut cmd: Command, marker: String) -> anyhow::Result<Launched> {
        let mut child = cmd.spawn().map_err(anyhow::Error::from)?;
        let sid = child.id();
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        if INTERRUPTED.load(Ordering::SeqCst) {
            // The interrupt's handler has taken its list of sessions to end: end this one here.
            let _ = killpg(Pid::from_raw(sid as i32), Signal::SIGKILL);
            let _ = child.wait();
            anyhow::bail!("interrupted");
        }
        live.push(sid);
        drop(live);
        Ok(Launched {
            child,
            sid,
            marker,
            status: None,
        })
    }

    /// The leader's stdout, if it was piped and not yet taken.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// How the leader exited, once it has (reaping it).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Whether nothing of the session runs any more: the leader exited and no process of its
    /// session lives.
    pub fn is_gone(&mut self) -> bool {
        self.exited().is_some() && self.members().is_empty()
    }

    /// Live processes of the session (zombies left out: they are gone but for their reaper).
    pub fn members(&self) -> Vec<u32> {
        procfs::session(self.sid)
            .into_iter()
            .filter(|(_, stat)| !is_zombie(stat))
            .map(|(pid, _)| pid)
            .collect()
    }

    /// Live processes started from this command that left its session: daemons.
    pub fn escaped(&self) -> Vec<u32> {
        procfs::marked(&self.marker)
            .into_iter()
            .filter(|&pid| procfs::session_of(pid).is_some_and(|sid| sid != self.sid))
            .collect()
    }

    /// Ends the session: SIGTERM to the leader alone (`group` false: a built-in model ends its
    /// own children, as its contract says) or to the whole process group; then, once `grace`
    /// has passed with any process of the session left, SIGKILL to every one. Processes that
    /// left the session are killed too, and named.
    pub fn end(&mut self, group: bool, grace: Duration) -> Ended {
        let started = Instant::now();
        let pgid = Pid::from_raw(self.sid as i32);
        if group {
            let _ = killpg(pgid, Signal::SIGTERM);
        } else if self.exited().is_none() {
            let _ = kill(pgid, Signal::SIGTERM);
        }
        let mut ended = Ended::default();
        while !self.is_gone() {
            if started.elapsed() > grace {
                self.kill_all();
                ended.killed = true;
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        ended.took = started.elapsed();
        ended.status = self.status;
        ended.escaped = self.kill_escaped();
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|&sid| sid != self.sid);
        }
        ended
    }

    /// SIGKILL to the group and to every live process of the session, reaps the leader and waits
    /// (a second at most) until none of them lives.
    fn kill_all(&mut self) {
        let _ = killpg(Pid::from_raw(self.sid as i32), Signal::SIGKILL);
        for pid in self.members() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let _ = self.child.kill();
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
        // A killed process lingers a moment before it is gone (or a zombie): wait for that, so
        // that nothing of this server runs when the next one starts.
        let deadline = Instant::now() + Duration::from_secs(1);
        while !self.members().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills the processes that left the session, each found again by its marker just before;
    /// `pid name` of each.
    fn kill_escaped(&self) -> Vec<String> {
        let escaped = self.escaped();
        escaped
            .iter()
            .map(|&pid| {
                let named = format!("{pid} {}", procfs::name(pid));
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                named
            })
            .collect()
    }
}

impl Drop for Launched {
    /// A session not ended (an error on the way) is killed, escapees included.
    fn drop(&mut self) {
        if !self.is_gone() {
            self.end(true, Duration::ZERO);
        }
    }
}

fn is_zombie(stat: &str) -> bool {
    matches!(
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next()),
        Some("Z" | "X")
    )
}

/// From now on, SIGINT, SIGTERM or SIGHUP to echobench ends every live server session (SIGTERM
/// to each group, SIGKILL after a second) and exits 130: servers run in sessions of their own,
/// so a terminal's ^C no longer reaches them.
pub fn end_sessions_on_interrupt() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot watch for interrupts")?;
    thread::spawn(move || {
        if signals.forever().next().is_some() {
            let sids = {
                let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
                INTERRUPTED.store(true, Ordering::SeqCst);
                live.clone()
            };
            for &sid in &sids {
                let _ = killpg(Pid::from_raw(sid as i32), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline && sids.iter().any(|&s| !procfs::session(s).is_empty())
            {
                thread::sleep(Duration::from_millis(10));
            }
            for &sid in &sids {
                let _ = killpg(Pid::from_raw(sid as i32), Signal::SIGKILL);
            }
            eprintln!("echobench: interrupted; the servers it started are stopped");
            std::process::exit(130);
        }
    });
    Ok(())
}

/// Never returns once an interrupt is being handled: its handler ends the sessions and exits
/// with 130, and nothing the interrupted work did since (a run failed because its server was
/// killed, a summary of that) must be written or decide the exit status before it does.
pub fn halt_if_interrupted() {
    while INTERRUPTED.load(Ordering::SeqCst) {
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> (Command, String) {
        let argv = ["sh", "-c", script].map(str::to_owned);
        command(&argv, &[], &loadgen::affinity_cpus()).expect("a command")
    }

    #[test]
    fn a_command_runs_in_a_session_of_its_own_and_its_whole_session_ends() {
        let (cmd, marker) = sh("sleep 30 & exec sleep 30");
        let mut s = Launched::spawn(cmd, marker).expect("started");
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.members().len() < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(s.members().len(), 2, "the leader and its child");
        assert_eq!(procfs::session_of(s.sid), Some(s.sid));
        let sample = procfs::sample(&mut procfs::Tree::of_session(s.sid), true);
        assert_eq!(sample.processes, 2);
        assert!(sample.rss_kib > 0 && sample.pss_kib.is_some_and(|p| p > 0));
        assert!(sample.fds.is_some_and(|f| f >= 2));
        let ended = s.end(true, Duration::from_secs(5));
        assert!(!ended.killed, "sleep ends on SIGTERM");
        assert!(ended.escaped.is_empty());
        assert!(s.members().is_empty());
    }

    #[test]
    fn a_process_that_leaves_the_session_is_found_and_killed() {
        let (cmd, marker) = sh("setsid sleep 30 & exec sleep 30");
        let mut s = Launched::spawn(cmd, marker).expect("started");
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.escaped().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let escaped = s.escaped();
        assert_eq!(escaped.len(), 1, "the setsid sleep");
        let ended = s.end(true, Duration::from_secs(5));
        assert_eq!(ended.escaped.len(), 1, "{:?}", ended.escaped);
        assert!(ended.escaped[0].ends_with("sleep"), "{:?}", ended.escaped);
        let gone = Instant::now() + Duration::from_secs(5);
        while procfs::session_of(escaped[0]).is_some() && Instant::now() < gone {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(s.escaped().is_empty());
    }

    #[test]
    fn a_session_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let (cmd, marker) = sh("trap '' TERM; sleep 30 & wait");
        let mut s = Launched::spawn(cmd, marker).expect("started");
        let deadline = Instant::now() + Duration::from_secs(5);
        while s.members().len() < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        let ended = s.end(true, Duration::from_millis(300));
        assert!(ended.killed);
        assert!(ended.took >= Duration::from_millis(300));
        assert!(s.members().is_empty());
    }

    #[test]
    fn the_command_is_pinned_and_gets_the_original_descriptor_limit() {
        let cpu = loadgen::affinity_cpus()[0];
        let argv = [
            "sh",
            "-c",
            "grep Cpus_allowed_list /proc/self/status; ulimit -Sn",
        ]
        .map(str::to_owned);
        let (mut cmd, _) =
            command(&argv, &[("A".to_owned(), "b".to_owned())], &[cpu]).expect("a command");
        let out = cmd.output().expect("ran");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Cpus_allowed_list:\t{cpu}\n")),
            "{text}"
        );
        let soft = loadgen::original_fd_limit().expect("a limit").0;
        assert!(text.ends_with(&format!("{soft}\n")), "{text}");
    }
}
