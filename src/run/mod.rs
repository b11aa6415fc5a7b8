//! The second stage: runs every run of the plan and writes its raw records.
//!
//! Per run: start the server in a session of its own pinned to the server CPUs ([`launch`],
//! [`server`]), wait until it is ready, run loadgen in-process pinned to the loadgen CPUs,
//! sample the server's session from `/proc` meanwhile ([`procfs`]), stop the server with
//! SIGTERM, and write `raw/<id>.run.json` beside loadgen's `raw/<id>.json` and `raw/<id>.hlog`.
//! A model that fails or starves is recorded as such; it never aborts the comparison. A server
//! that failed to start, ignored SIGTERM or daemonized is not tried again: its later runs are
//! recorded as failed with the reason. An external server's runs above its caps are recorded
//! as not run. What is written is all the later stages read.

pub mod agents;
pub mod launch;
pub mod machine;
pub mod procfs;
pub mod progress;
pub mod remote;
pub mod server;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::plan::{self, external, CompareOptions};
use crate::schema::run::NOT_TRIED;
use crate::schema::{
    AgentRun, Environment, ExternalServer, RunRecord, RunSpec, ServerSpec, ServerUsage, Status,
    Timing, Workload, SCHEMA_VERSION,
};
use crate::workload::INTERVAL;
use progress::Progress;
use remote::{RemoteServer, Served};
use server::{Server, Stopped};

/// How often the server tree is sampled for peaks.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Every how many [`INTERVAL`]s of the CPU series a peak sample is taken too.
const PEAK_EVERY_INTERVALS: u32 = 2;

/// How long before the end of the measured time the last full sample is taken (at most a
/// quarter of it). loadgen's own end comes a little before the runner's reckoning of it, and
/// then its connections close: a process per connection exits, and its CPU time is not in
/// the tree again until the parent has reaped it. Seen on 16 cores: `fork-per-client`'s
/// tree dropped from 1.2 CPU seconds to 0.05 in the last sample.
const END_MARGIN: Duration = Duration::from_millis(50);

/// Runs the whole matrix of `opts`, writing `environment.json` and `raw/` under `opts.out`.
pub fn run(opts: &CompareOptions) -> anyhow::Result<()> {
    let raw = opts.out.join("raw");
    std::fs::create_dir_all(&raw)
        .with_context(|| format!("cannot create --out {}", opts.out.display()))?;
    loadgen::raise_fd_limit();
    // The runner's own threads (sampling, loadgen) stay off the server's CPUs.
    server::pin_process(&opts.loadgen_cpus)?;
    let exe = std::env::current_exe().context("cannot find the echobench binary")?;
    let env_path = opts.out.join("environment.json");
    if opts.first_repeat > 1 {
        // Passes added to a comparison: its environment stands, with the passes counted.
        let mut env = Environment::read(&env_path)?;
        env.repeats = Some(opts.first_repeat - 1 + opts.repeats());
        env.write(&env_path)?;
    } else {
        machine::capture(opts).write(&env_path)?;
    }

    let runs = opts.runs();
    let timing = opts.timing();
    let tls = match runs.iter().any(|r| r.workload.is_tls()) {
        true => Some(Tls::new(&opts.out)?),
        false => None,
    };
    let mut progress = Progress::new(&runs, timing, opts.repeats(), opts.progress);
    // Servers not to try again, with why.
    let mut unusable: HashMap<String, String> = HashMap::new();
    let memory = machine::memory_kib() * 1024;
    for spec in &runs {
        progress.start(spec);
        let label = spec.server_label();
        let record = match unusable.get(&label) {
            Some(why) => not_tried(spec, timing, why),
            None => {
                let (record, give_up) =
                    run_one(&exe, spec, timing, opts, &raw, tls.as_ref(), memory);
                if let Some(why) = give_up {
                    unusable.insert(label, format!("in {}, {why}", spec.id()));
                }
                record
            }
        };
        launch::halt_if_interrupted();
        let path = raw.join(format!("{}.run.json", spec.id()));
        let json = serde_json::to_string_pretty(&record)? + "\n";
        std::fs::write(&path, json).with_context(|| format!("cannot write {}", path.display()))?;
        progress.finish(spec, record.status);
        if let Some(tls) = &tls {
            tls.note_churn_rate(spec, &record, &raw);
        }
    }
    progress.end();
    Ok(())
}

/// The TLS of a comparison: the certificate its servers present and its loadgen trusts, and
/// each server's `tls-churn` handshakes per second, which `tls-mixed` takes its rates from.
struct Tls {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    churn_rates: std::cell::RefCell<HashMap<String, f64>>,
}

impl Tls {
    /// Makes a self-signed certificate for 127.0.0.1 under `out/tls/`.
    fn new(out: &Path) -> anyhow::Result<Tls> {
        let (cert, key) = echo_server::tls::gen_cert(&out.join("tls"), &[])
            .context("cannot make the TLS certificate for the comparison")?;
        Ok(Tls {
            cert,
            key,
            churn_rates: Default::default(),
        })
    }

    /// The run's server with the arguments that turn TLS on (its label stays the model's).
    fn server(&self, spec: &RunSpec) -> crate::schema::ServerSpec {
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let mut server = spec.server();
        server.args.extend([
            "--tls".to_owned(),
            "--tls-cert".to_owned(),
            path(&self.cert),
            "--tls-key".to_owned(),
            path(&self.key),
        ]);
        server
    }

    /// The server's `tls-churn` handshakes per second in this pass, which a loaded
    /// `tls-mixed` run needs; the error says it is missing.
    fn churn_rate(&self, spec: &RunSpec) -> Result<Option<f64>, String> {
        let rate = self.churn_rates.borrow().get(&spec.server_label()).copied();
        match spec.workload {
            Workload::TlsMixed { share } if share > 0 && rate.is_none() => {
                Err("no tls-churn rate was measured for this server in this pass".to_owned())
            }
            _ => Ok(rate),
        }
    }

    /// Keeps the handshakes per second of a `tls-churn` run that has figures.
    fn note_churn_rate(&self, spec: &RunSpec, record: &RunRecord, raw: &Path) {
        if spec.workload != (Workload::TlsChurn { resumed: false }) || !record.status.has_figures()
        {
            return;
        }
        let report = std::fs::read_to_string(raw.join(format!("{}.json", spec.id())))
            .ok()
            .and_then(|text| serde_json::from_str::<loadgen::Report>(&text).ok());
        if let Some(report) = report {
            self.churn_rates
                .borrow_mut()
                .insert(spec.server_label(), report.throughput_msgs_per_s);
        }
    }
}

/// The record of a run that is not made: its server is not to be tried again.
fn not_tried(spec: &RunSpec, timing: Timing, why: &str) -> RunRecord {
    RunRecord {
        schema_version: SCHEMA_VERSION,
        spec: spec.clone(),
        timing: spec.workload.timing(timing),
        status: Status::Failed,
        note: Some(format!("{NOT_TRIED}{why}")),
        server: None,
        agents: None,
        server_cpus: None,
    }
}

/// One run; never fails: what went wrong is in the record. Also returns why its server should
/// not be tried again, if it should not: it did not start, ignored SIGTERM or daemonized.
/// `memory` is the machine's, bytes, for the caps of a server with a process per client.
fn run_one(
    exe: &Path,
    spec: &RunSpec,
    timing: Timing,
    opts: &CompareOptions,
    raw: &Path,
    tls: Option<&Tls>,
    memory: u64,
) -> (RunRecord, Option<String>) {
    let timing = spec.workload.timing(timing);
    let cpus = server_cpus(spec, opts);
    let shared = (cpus != opts.server_cpus).then(|| loadgen::format_cpus(&cpus));
    let record = |status, note: Option<String>, server, agents| RunRecord {
        schema_version: SCHEMA_VERSION,
        spec: spec.clone(),
        timing,
        status,
        note,
        server,
        agents,
        server_cpus: shared.clone(),
    };
    let ext = opts.external(&spec.model);
    if let Some(why) = ext.and_then(|e| external::not_run(e, &spec.workload, memory)) {
        return (record(Status::NotRun, Some(why), None, None), None);
    }
    let tls = tls.filter(|_| spec.workload.is_tls());
    let churn_rate = match tls.map(|t| t.churn_rate(spec)).transpose() {
        Ok(rate) => rate.flatten(),
        Err(why) => return (record(Status::Failed, Some(why), None, None), None),
    };
    let log = raw.join(format!("{}.server.log", spec.id()));
    let mut server_spec = tls.map_or_else(|| spec.server(), |t| t.server(spec));
    let mut ext = ext.cloned();
    if let Some(flag) = protocol_flag(&spec.workload) {
        server_spec.args.push(flag.to_owned());
        ext = ext.map(|e| with_protocol(&e, flag, &spec.server_args));
    }
    // `--attack`'s defended runs: the defences (built-in models only run them).
    let defences = spec.workload.server_args().iter().map(|a| (*a).to_owned());
    server_spec.args.extend(defences);
    let mut server = match Running::start(exe, &server_spec, ext.as_ref(), opts, &cpus, &log) {
        Ok(server) => server,
        Err(e) => {
            let why = format!("server did not start: {e:#}");
            return (
                record(Status::Failed, Some(why.clone()), None, None),
                Some(why),
            );
        }
    };
    let mut lg = spec.workload.loadgen_options(server.addr(), timing);
    if spec.workload.is_slo() {
        lg.find_rate = opts.slo.clone().or(lg.find_rate);
    }
    if spec.workload.is_chat() {
        lg.load_started = Some(Arc::new(OnceLock::new()));
    }
    if let Some(tls) = tls {
        spec.workload.tls_options(&mut lg, &tls.cert, churn_rate);
    }
    lg.cpus = opts.loadgen_cpus.clone();
    lg.json = Some(raw.join(format!("{}.json", spec.id())));
    lg.hlog = Some(raw.join(format!("{}.hlog", spec.id())));

    let (result, usage, agents) = drive(&opts.hosts, &mut server, lg, timing);
    let mut notes = server.take_notes();
    notes.extend(server.check());
    let stopped = server.stop();
    notes.extend(stopped.notes);
    server::remove_log_if_clean(&log);
    let (mut status, why) = outcome(result);
    notes.extend(why);
    if let Some(failure) = &stopped.failure {
        status = Status::Failed;
        notes.push(failure.clone());
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    (record(status, note, usage, agents), stopped.failure)
}

/// The flag that makes a server speak the workload's protocol, where it is not echo:
/// `--work` (requests with a cost, and the hostile clients' workloads, whose requests are
/// `--work`'s at no cost) or `--chat` (the chat room).
fn protocol_flag(workload: &Workload) -> Option<&'static str> {
    match (
        workload.is_work() || workload.is_attack(),
        workload.is_chat(),
    ) {
        (true, _) => Some("--work"),
        (_, true) => Some("--chat"),
        _ => None,
    }
}

/// The CPUs a run's server is pinned to: the comparison's server CPUs, and the loadgen CPUs
/// too for a workload that shares them ([`Workload::shares_cpus`]) when the server runs here.
fn server_cpus(spec: &RunSpec, opts: &CompareOptions) -> Vec<usize> {
    let here = opts.hosts.server_host.is_none();
    let mut cpus = opts.server_cpus.clone();
    if here && spec.workload.shares_cpus() {
        cpus.extend(&opts.loadgen_cpus);
        cpus.sort_unstable();
        cpus.dedup();
    }
    cpus
}

/// An external server (a Python model) speaking a workload's protocol: its command with `flag`
/// (`--work` or `--chat`) and the run's server arguments (`--offload pool`) added.
fn with_protocol(e: &ExternalServer, flag: &str, args: &[String]) -> ExternalServer {
    let words = std::iter::once(flag.to_owned()).chain(args.iter().cloned());
    let quoted: Vec<String> = words
        .map(|w| shlex::try_quote(&w).map_or_else(|_| w.clone(), |q| q.into_owned()))
        .collect();
    ExternalServer {
        command: format!("{} {}", e.command, quoted.join(" ")),
        work: flag == "--work",
        chat: flag == "--chat",
        ..e.clone()
    }
}

/// Runs the load against `server` while sampling it: inside echobench, or over the agents
/// (checked and started together first). The server's usage is `None` when the agents did
/// not start.
fn drive(
    hosts: &plan::Hosts,
    server: &mut Running,
    lg: loadgen::Options,
    timing: Timing,
) -> (
    thread::Result<anyhow::Result<loadgen::Report>>,
    Option<ServerUsage>,
    Option<Vec<AgentRun>>,
) {
    if !hosts.has_agents() {
        let started = Instant::now();
        let begins = lg.load_started.clone();
        let load = thread::spawn(move || loadgen::run(&lg));
        let usage = watch(
            &mut server.sampler(),
            started,
            begins.as_deref(),
            timing,
            &load,
        );
        return (load.join(), Some(usage), None);
    }
    let launch = match agents::prepare(hosts, &lg) {
        Ok(launch) => launch,
        Err(why) => return (Ok(Err(anyhow::anyhow!(why))), None, Some(Vec::new())),
    };
    let started = launch.start;
    let load = {
        let hosts = hosts.clone();
        thread::spawn(move || agents::run(&hosts, &launch, &lg))
    };
    let usage = watch(&mut server.sampler(), started, None, timing, &load);
    match load.join() {
        Ok((report, records)) => (Ok(report), Some(usage), Some(records)),
        Err(panic) => (Err(panic), Some(usage), None),
    }
}

/// A run's server: here, or on the server host.
enum Running {
    Here(Box<Server>),
    There(RemoteServer),
}

impl Running {
    /// Starts the run's server where `opts.hosts` says.
    fn start(
        exe: &Path,
        spec: &ServerSpec,
        ext: Option<&ExternalServer>,
        opts: &CompareOptions,
        cpus: &[usize],
        log: &Path,
    ) -> anyhow::Result<Running> {
        let hosts = &opts.hosts;
        if let Some(host) = &hosts.server_host {
            let served = match ext {
                Some(e) => Served::External(e.clone()),
                None => Served::Model(spec.clone()),
            };
            let addr = hosts.server_addr.as_deref().unwrap_or("127.0.0.1:0");
            let cpus = hosts.server_cpus.as_deref();
            return RemoteServer::start(hosts, host, &served, addr, cpus, log).map(Running::There);
        }
        let server = match (ext, &hosts.server_addr) {
            (Some(e), Some(addr)) => {
                let ip = addr.parse::<std::net::SocketAddr>()?.ip();
                Server::start_external_on(e, ip, cpus, log)
            }
            (Some(e), None) => Server::start_external(e, cpus, log),
            (None, Some(addr)) => Server::start_on(exe, spec, cpus, log, addr),
            (None, None) => Server::start(exe, spec, cpus, log),
        };
        server.map(|s| Running::Here(Box::new(s)))
    }

    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Running::Here(s) => s.addr,
            Running::There(s) => s.addr,
        }
    }

    fn take_notes(&mut self) -> Vec<String> {
        match self {
            Running::Here(s) => std::mem::take(&mut s.notes),
            Running::There(_) => Vec::new(),
        }
    }

    fn check(&mut self) -> Vec<String> {
        match self {
            Running::Here(s) => s.check(),
            Running::There(s) => s.check(),
        }
    }

    fn stop(&mut self) -> Stopped {
        match self {
            Running::Here(s) => s.stop(),
            Running::There(s) => s.stop(),
        }
    }

    /// What samples the server's session: `/proc` here, or the server host's answers.
    fn sampler(&mut self) -> Sampler<'_> {
        match self {
            Running::Here(s) => Sampler::Here(procfs::Tree::of_session(s.pid())),
            Running::There(s) => Sampler::There(s),
        }
    }
}

/// Samples of a server's session.
enum Sampler<'a> {
    Here(procfs::Tree),
    There(&'a mut RemoteServer),
}

impl Sampler<'_> {
    fn sample(&mut self, full: bool) -> procfs::Sample {
        match self {
            Sampler::Here(tree) => procfs::sample(tree, full),
            Sampler::There(remote) => remote.sample(full),
        }
    }

    fn cpu_ticks(&mut self) -> u64 {
        match self {
            Sampler::Here(tree) => procfs::cpu_ticks(tree),
            Sampler::There(remote) => remote.cpu_ticks(),
        }
    }
}

/// How loadgen's run ended, and why when it was not clean.
fn outcome(result: thread::Result<anyhow::Result<loadgen::Report>>) -> (Status, Option<String>) {
    match result {
        // Beside an attack, legitimate clients that completed nothing are what the attack did
        // (service denied), not a run that failed; an echo that differed still fails it.
        Ok(Ok(report)) if report.attack.is_some() && report.messages == 0 && report.errors.mismatch == 0 => (
            Status::Starved,
            Some(format!(
                "beside {}, none of the {} legitimate connections completed a request: service denied",
                report.attack.as_ref().map_or("the attack", |a| a.spec.as_str()),
                report.connections
            )),
        ),
        Ok(Ok(report)) => match report.failure() {
            Some(why) => (Status::Failed, Some(why)),
            None if report.connections_starved > 0 => (
                Status::Starved,
                Some(match report.chat.is_some() {
                    true => format!(
                        "{} of {} members were never let into their room",
                        report.connections_starved, report.connections
                    ),
                    false => format!(
                        "{} of {} connections completed no message",
                        report.connections_starved, report.connections
                    ),
                }),
            ),
            None => (Status::Ok, None),
        },
        Ok(Err(e)) => (Status::Failed, Some(format!("loadgen: {e:#}"))),
        Err(_) => (Status::Failed, Some("loadgen panicked".to_owned())),
    }
}

/// Samples the server tree while loadgen runs: cheap samples for peaks through the whole run,
/// full ones at the start and (just before, [`END_MARGIN`]) the end of the measured time for
/// the deltas, and the tree's CPU time at every interval boundary between them (the CPU
/// series). The CPU delta is scaled from the window actually sampled to the measured time, so
/// a late sample (a busy machine) does not skew CPU per message. The load begins at `started`,
/// or where loadgen says it began (`begins`: a chat run's, once its members have joined).
fn watch<T>(
    sampler: &mut Sampler,
    started: Instant,
    begins: Option<&OnceLock<Instant>>,
    timing: Timing,
    load: &thread::JoinHandle<T>,
) -> ServerUsage {
    let mut peaks = Vec::new();
    let begun = || begins.map_or(Some(started), |b| b.get().copied());
    while begun().is_none() && !load.is_finished() {
        peaks.push(sampler.sample(false));
        thread::sleep(SAMPLE_EVERY);
    }
    let measure_start = begun().unwrap_or_else(Instant::now) + timing.warmup;
    let end = measure_start + timing.duration - END_MARGIN.min(timing.duration / 4);
    let sleep_until = |t: Instant| thread::sleep(t.saturating_duration_since(Instant::now()));
    while Instant::now() < measure_start && !load.is_finished() {
        peaks.push(sampler.sample(false));
        sleep_until((Instant::now() + SAMPLE_EVERY).min(measure_start));
    }
    let first_at = Instant::now();
    let first = sampler.sample(true);
    let mut series = CpuSeries::new(measure_start, first.cpu_ticks);
    series.push(first_at, first.cpu_ticks);
    let mut boundary = 1;
    let mut next = measure_start + INTERVAL;
    while next < end && !load.is_finished() {
        sleep_until(next);
        let ticks = if boundary % PEAK_EVERY_INTERVALS == 0 {
            let sample = sampler.sample(false);
            let ticks = sample.cpu_ticks;
            peaks.push(sample);
            ticks
        } else {
            sampler.cpu_ticks()
        };
        series.push(Instant::now(), ticks);
        // A sample that came late skips the boundaries it missed.
        while next <= Instant::now() {
            boundary += 1;
            next = measure_start + INTERVAL * boundary;
        }
    }
    sleep_until(end);
    let last = sampler.sample(true);
    series.push(Instant::now(), last.cpu_ticks);
    let sampled = first_at.elapsed();
    let mut usage = procfs::usage(&first, &last, &peaks);
    // The series' last point is the delta, less any dip of an exiting child at the end.
    if let Some(&[_, cpu]) = series.points.last() {
        usage.cpu_s = usage.cpu_s.max(cpu);
    }
    if !sampled.is_zero() {
        usage.cpu_s *= timing.duration.as_secs_f64() / sampled.as_secs_f64();
    }
    usage.cpu_series = series.points;
    usage
}

/// The server tree's CPU time through the measured time: `[seconds since the end of warm-up,
/// CPU seconds since the first point]`, never falling: a child that has exited and is not
/// yet reaped is out of the tree for a moment, and its time comes back with the reaping.
struct CpuSeries {
    measure_start: Instant,
    first_ticks: u64,
    per_second: f64,
    points: Vec<[f64; 2]>,
}

impl CpuSeries {
    fn new(measure_start: Instant, first_ticks: u64) -> CpuSeries {
        CpuSeries {
            measure_start,
            first_ticks,
            per_second: procfs::ticks_per_second() as f64,
            points: Vec::new(),
        }
    }

    fn push(&mut self, at: Instant, ticks: u64) {
        // Tenths of a millisecond: finer is below the sampler's own jitter.
        let seconds = (at
            .saturating_duration_since(self.measure_start)
            .as_secs_f64()
            * 1e4)
            .round()
            / 1e4;
        let cpu = ticks.saturating_sub(self.first_ticks) as f64 / self.per_second;
        let before = self.points.last().map_or(0.0, |p| p[1]);
        self.points.push([seconds, cpu.max(before)]);
    }
}
