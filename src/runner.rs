//! `echobench compare`: runs every selected model through every workload of the profile.
//!
//! Per run: start the server pinned to the server CPUs (this binary's hidden `serve` command,
//! which is `echo-server`), wait for its `listening on` line, run loadgen in-process pinned to
//! the loadgen CPUs, sample the server's process tree from `/proc` meanwhile, stop the server
//! with SIGTERM, and write the raw results. A model that fails or starves is recorded as such;
//! it never aborts the comparison.

use std::io::{BufRead, BufReader, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::environment::Environment;
use crate::procfs::{self, ServerUsage};
use crate::workload::{Profile, RunSpec, Timing};

/// Version of the `raw/*.run.json` and `summary.json` schemas.
pub const SCHEMA_VERSION: u32 = 1;

/// How often the server tree is sampled for peaks.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The contract: SIGTERM ends a server within this.
const STOP_LIMIT: Duration = Duration::from_secs(2);

/// What a comparison is asked to do.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Models to run, by name.
    pub models: Vec<String>,
    /// Profile.
    pub profile: Profile,
    /// Output directory.
    pub out: PathBuf,
    /// CPUs for the server.
    pub server_cpus: Vec<usize>,
    /// CPUs for loadgen (disjoint from the server's).
    pub loadgen_cpus: Vec<usize>,
    /// Show a progress bar on a terminal.
    pub progress: bool,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Completed; figures stand.
    Ok,
    /// Completed, but some connections completed no message (an iterative server's finding).
    Starved,
    /// No figures: the server did not start, no message completed, or an echo mismatched.
    Failed,
}

/// One run's record, `raw/<id>.run.json`; the loadgen report is beside it in `raw/<id>.json`
/// and its interval log in `raw/<id>.hlog`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Model, workload, repeat.
    pub spec: RunSpec,
    /// Warm-up and measured time.
    pub timing: Timing,
    /// How the run ended.
    pub status: Status,
    /// Why it failed or starved, or what else was seen (e.g. a slow stop).
    pub note: Option<String>,
    /// Server resources; `null` when the server never ran.
    pub server: Option<ServerUsage>,
}

/// Runs the whole matrix into `opts.out` and renders the reports.
pub fn compare(opts: &CompareOptions) -> anyhow::Result<PathBuf> {
    let raw = opts.out.join("raw");
    std::fs::create_dir_all(&raw)
        .with_context(|| format!("cannot create --out {}", opts.out.display()))?;
    loadgen::raise_fd_limit();
    // The runner's own threads (sampling, loadgen) stay off the server's CPUs.
    pin_process(&opts.loadgen_cpus)?;
    let exe = std::env::current_exe().context("cannot find the echobench binary")?;
    let env = Environment::capture(opts);
    env.write(&opts.out.join("environment.json"))?;

    let plan = opts.profile.plan(&opts.models);
    let timing = opts.profile.timing(plan.len());
    let bar = (opts.progress && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(plan.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} runs, {elapsed} of ~{duration} {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    for spec in &plan {
        if let Some(bar) = &bar {
            bar.set_message(spec.id());
        }
        let record = run_one(&exe, spec, timing, opts, &raw);
        let path = raw.join(format!("{}.run.json", spec.id()));
        let json = serde_json::to_string_pretty(&record)? + "\n";
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
        if let Some(bar) = &bar {
            bar.inc(1);
        } else if opts.progress {
            eprintln!("{} {:?}", spec.id(), record.status);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    crate::report::render(&opts.out)?;
    Ok(opts.out.join("report.html"))
}

/// One run; never fails: what went wrong is in the record.
fn run_one(
    exe: &Path,
    spec: &RunSpec,
    timing: Timing,
    opts: &CompareOptions,
    raw: &Path,
) -> RunRecord {
    let timing = spec.workload.timing(timing);
    let record = |status, note: Option<String>, server| RunRecord {
        schema_version: SCHEMA_VERSION,
        spec: spec.clone(),
        timing,
        status,
        note,
        server,
    };
    let log = raw.join(format!("{}.server.log", spec.id()));
    let mut server = match Server::start(exe, &spec.model, &opts.server_cpus, &log) {
        Ok(server) => server,
        Err(e) => {
            return record(
                Status::Failed,
                Some(format!("server did not start: {e:#}")),
                None,
            )
        }
    };
    let mut lg = spec.workload.loadgen_options(server.addr, timing);
    lg.cpus = opts.loadgen_cpus.clone();
    lg.json = Some(raw.join(format!("{}.json", spec.id())));
    lg.hlog = Some(raw.join(format!("{}.hlog", spec.id())));

    let started = Instant::now();
    let load = thread::spawn(move || loadgen::run(&lg));
    let usage = watch(server.pid(), started, timing, &load);
    let result = load.join();
    let mut notes = Vec::new();
    match server.stop() {
        Ok(took) if took > STOP_LIMIT => notes.push(format!("server took {took:?} to stop")),
        Ok(_) => {}
        Err(e) => notes.push(format!("server stop: {e:#}")),
    }
    // An empty server log is noise; keep it only when the server said something.
    if std::fs::metadata(&log).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(&log);
    }
    let (status, why) = match result {
        Ok(Ok(report)) => match report.failure() {
            Some(why) => (Status::Failed, Some(why)),
            None if report.connections_starved > 0 => (
                Status::Starved,
                Some(format!(
                    "{} of {} connections completed no message",
                    report.connections_starved, report.connections
                )),
            ),
            None => (Status::Ok, None),
        },
        Ok(Err(e)) => (Status::Failed, Some(format!("loadgen: {e:#}"))),
        Err(_) => (Status::Failed, Some("loadgen panicked".to_owned())),
    };
    notes.extend(why);
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    record(status, note, Some(usage))
}

/// Samples the server tree while loadgen runs: cheap samples for peaks through the whole run,
/// full ones at the start and the end of the measured time for the deltas. The CPU delta is
/// scaled from the window actually sampled to the measured time, so a late sample (a busy
/// machine) does not skew CPU per message.
fn watch<T>(
    pid: u32,
    started: Instant,
    timing: Timing,
    load: &thread::JoinHandle<T>,
) -> ServerUsage {
    let measure_start = started + timing.warmup;
    let end = measure_start + timing.duration;
    let mut peaks = Vec::new();
    let sleep_until = |t: Instant| thread::sleep(t.saturating_duration_since(Instant::now()));
    while Instant::now() < measure_start && !load.is_finished() {
        peaks.push(procfs::sample(pid, false));
        sleep_until((Instant::now() + SAMPLE_EVERY).min(measure_start));
    }
    let first_at = Instant::now();
    let first = procfs::sample(pid, true);
    while Instant::now() < end && !load.is_finished() {
        peaks.push(procfs::sample(pid, false));
        sleep_until((Instant::now() + SAMPLE_EVERY).min(end));
    }
    let last = procfs::sample(pid, true);
    let sampled = first_at.elapsed();
    let mut usage = procfs::usage(&first, &last, &peaks);
    if !sampled.is_zero() {
        usage.cpu_s *= timing.duration.as_secs_f64() / sampled.as_secs_f64();
    }
    usage
}

/// A server process started by the runner.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(exe: &Path, model: &str, cpus: &[usize], log: &Path) -> anyhow::Result<Server> {
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(exe)
            .args(["serve", "--cpus", &loadgen::format_cpus(cpus), "--", model])
            .args(["--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("cannot start the server")?;
        let Some(stdout) = child.stdout.take() else {
            bail!("no stdout from the server");
        };
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(line)) => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let said = std::fs::read_to_string(log).unwrap_or_default();
                bail!(
                    "no `listening on` line within {START_TIMEOUT:?}: {}",
                    said.trim()
                );
            }
        };
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("unexpected first line {line:?}"))?;
        Ok(Server { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL if it outstays twice the contract's limit; how long it took.
    fn stop(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let pid = Pid::from_raw(self.child.id() as i32);
        kill(pid, Signal::SIGTERM).context("cannot signal the server")?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("server exited with {status} after SIGTERM");
                }
                return Ok(started.elapsed());
            }
            if started.elapsed() > 2 * STOP_LIMIT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("server ignored SIGTERM for {:?}, killed", 2 * STOP_LIMIT);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Pins this whole process (threads started later inherit it) to `cpus`.
pub fn pin_process(cpus: &[usize]) -> anyhow::Result<()> {
    use nix::sched::{sched_setaffinity, CpuSet};
    let mut set = CpuSet::new();
    for &cpu in cpus {
        set.set(cpu).with_context(|| format!("no CPU {cpu}"))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
        .with_context(|| format!("cannot pin to CPUs {}", loadgen::format_cpus(cpus)))
}

/// The default split of the CPUs this process may use: on 2 CPUs, server 0 and loadgen 1; on
/// more, the first half for the server and the second for loadgen.
pub fn default_cpus(available: &[usize]) -> anyhow::Result<(Vec<usize>, Vec<usize>)> {
    if available.len() < 2 {
        bail!(
            "the server and loadgen need disjoint CPUs, and only {} is available; \
             pass --server-cpus and --loadgen-cpus",
            loadgen::format_cpus(available)
        );
    }
    let half = available.len() / 2;
    Ok((available[..half].to_vec(), available[half..].to_vec()))
}
