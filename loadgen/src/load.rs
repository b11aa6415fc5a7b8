//! A whole run: [`Options`] (the command line, flag for flag), [`run`], and the machine's
//! limits and CPUs the run is checked against.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

use crate::engine::{self, Plan, Shared, WorkerResult};
use crate::report::{
    self, new_histogram, unix_ns, Arrivals, Datagrams, Errors, Handshakes, KernelDrops, Latency,
    Mode, Report, SATURATION, SCHEMA_VERSION,
};
use crate::tls::{self, TlsInfo, TlsOptions};
use crate::{hlog, udp};

/// `--hlog-interval` unless given.
pub const DEFAULT_HLOG_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest `--hlog-interval`: shorter intervals hold too few echoes to say anything.
pub const MIN_HLOG_INTERVAL: Duration = Duration::from_millis(10);

/// Largest `--size`.
pub const MAX_SIZE: usize = 64 << 20;

/// Everything a run needs; the command line maps onto it flag for flag.
#[derive(Debug, Clone)]
pub struct Options {
    /// The target, as given (`HOST:PORT`).
    pub target: String,
    /// The target, resolved.
    pub addr: SocketAddr,
    /// Active connections.
    pub connections: usize,
    /// Measured time after warm-up.
    pub duration: Duration,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Message size, bytes.
    pub size: usize,
    /// Open loop: total rate over all connections, messages/s.
    pub rate: Option<f64>,
    /// Closed loop: messages in flight per connection.
    pub pipeline: usize,
    /// One connection per message.
    pub churn: bool,
    /// Idle connections held open for the whole run.
    pub idle: usize,
    /// Worker threads; `None`: one per CPU of `cpus` (or of the affinity mask).
    pub threads: Option<usize>,
    /// CPUs to pin the workers to; empty: not pinned.
    pub cpus: Vec<usize>,
    /// Connect timeout and echo timeout.
    pub timeout: Duration,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
    /// Where to write the percentile distribution.
    pub hgrm: Option<PathBuf>,
    /// Where to write the interval log.
    pub hlog: Option<PathBuf>,
    /// Length of the interval log's intervals.
    pub hlog_interval: Duration,
    /// Show a progress line (only ever on a terminal).
    pub progress: bool,
    /// Echo over UDP: a connected UDP socket per connection, loss judged by `timeout`.
    pub udp: bool,
    /// `--tls`: every connection a TLS client session.
    pub tls: Option<TlsOptions>,
    /// `--handshake-rate`: new connections per second beside the load, each one echo.
    pub handshake_rate: Option<f64>,
    /// `--start-at`: when the load starts (and the open-loop schedule with it), by the wall
    /// clock; `None`: at once.
    pub start_at: Option<SystemTime>,
    /// `--conn-offset`: the number of this run's first connection in the whole plan.
    pub conn_offset: usize,
    /// `--share-cpus`: other loadgens share these CPUs; give the CPU up after every batch of
    /// events.
    pub share_cpus: bool,
    /// `--conn-total`: the connections of the whole plan; `None`: this run is the whole plan.
    /// With `rate`, the rate is the whole plan's, and this run sends its connections' share
    /// of it on the plan's own schedule.
    pub conn_total: Option<usize>,
}

impl Options {
    /// The defaults of the command line, against `addr`.
    pub fn new(addr: SocketAddr) -> Options {
        Options {
            target: addr.to_string(),
            addr,
            connections: 16,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            size: 64,
            rate: None,
            pipeline: 1,
            churn: false,
            idle: 0,
            threads: None,
            cpus: Vec::new(),
            timeout: Duration::from_secs(5),
            json: None,
            hgrm: None,
            hlog: None,
            hlog_interval: DEFAULT_HLOG_INTERVAL,
            progress: false,
            udp: false,
            tls: None,
            handshake_rate: None,
            start_at: None,
            conn_offset: 0,
            conn_total: None,
            share_cpus: false,
        }
    }

    /// The connections of the whole plan this run is a part of.
    pub fn plan_connections(&self) -> usize {
        self.conn_total.unwrap_or(self.connections)
    }

    /// This run's share of the plan's `--rate`.
    pub fn own_rate(&self) -> Option<f64> {
        self.rate
            .map(|rate| rate * self.connections as f64 / self.plan_connections() as f64)
    }

    /// How load is offered.
    pub fn mode(&self) -> Mode {
        match (self.churn, self.rate) {
            (true, _) => Mode::Churn,
            (false, Some(_)) => Mode::Open,
            (false, None) => Mode::Closed,
        }
    }

    /// Checks the rules between flags, and that the machine can hold the connections asked
    /// for (descriptors, ephemeral ports); the error names the flag and the limit.
    pub fn validate(&self) -> Result<(), String> {
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.size == 0 || self.size > MAX_SIZE {
            return Err(format!("--size must be from 1 to {MAX_SIZE} bytes"));
        }
        if self.duration.is_zero() {
            return Err("--duration must be longer than 0".into());
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be longer than 0".into());
        }
        if self.hlog_interval < MIN_HLOG_INTERVAL {
            return Err(format!(
                "--hlog-interval must be at least {}",
                humantime::format_duration(MIN_HLOG_INTERVAL)
            ));
        }
        if self.pipeline == 0 {
            return Err("--pipeline must be at least 1".into());
        }
        if self.churn && self.rate.is_some() {
            return Err("--churn and --rate cannot be combined: churn is a closed loop".into());
        }
        if self.pipeline > 1 && (self.churn || self.rate.is_some()) {
            return Err(
                "--pipeline applies to the closed loop only, not with --rate or --churn".into(),
            );
        }
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err("--rate must be a positive number of messages per second".into());
            }
        }
        if self.udp {
            self.validate_udp()?;
        }
        if let Some(tls) = &self.tls {
            // The CA file and the name to check are arguments: a bad one is refused up front.
            tls::Client::new(&self.target, tls)?;
        }
        if let Some(rate) = self.handshake_rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(
                    "--handshake-rate must be a positive number of connections per second".into(),
                );
            }
        }
        self.validate_split()?;
        if self.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        let allowed = affinity_cpus();
        if let Some(cpu) = self.cpus.iter().find(|c| !allowed.contains(c)) {
            return Err(format!(
                "--cpus: CPU {cpu} is not available to this process (it may use {})",
                format_cpus(&allowed)
            ));
        }
        check_capacity(self)
    }

    /// The rules of `--conn-offset` and `--conn-total`: this run's connections lie inside the
    /// plan.
    fn validate_split(&self) -> Result<(), String> {
        match self.conn_total {
            None if self.conn_offset > 0 => Err("--conn-offset needs --conn-total".into()),
            Some(total) if self.conn_offset.saturating_add(self.connections) > total => {
                Err(format!(
                    "--conn-offset {} with --connections {} reaches past --conn-total {total}",
                    self.conn_offset, self.connections
                ))
            }
            _ => Ok(()),
        }
    }

    /// The rules `--udp` adds: datagrams carry an 8-byte sequence number and fit in one
    /// IPv4 datagram; there is no connection to churn or to hold idle.
    fn validate_udp(&self) -> Result<(), String> {
        if self.churn {
            return Err("--churn cannot be combined with --udp: UDP has no connections".into());
        }
        if self.tls.is_some() || self.handshake_rate.is_some() {
            return Err(
                "--tls and --handshake-rate cannot be combined with --udp: they need TCP".into(),
            );
        }
        if self.idle > 0 {
            return Err("--idle cannot be combined with --udp: UDP has no connections".into());
        }
        if self.size < udp::HEADER || self.size > udp::MAX_DATAGRAM {
            return Err(format!(
                "--size with --udp must be from {} bytes (the sequence number) to {} (the \
                 largest IPv4 datagram)",
                udp::HEADER,
                udp::MAX_DATAGRAM
            ));
        }
        Ok(())
    }

    /// Worker threads this run uses: never more than there are connections.
    pub fn worker_threads(&self) -> usize {
        let cores = if self.cpus.is_empty() {
            affinity_cpus().len()
        } else {
            self.cpus.len()
        };
        self.threads
            .unwrap_or(cores)
            .clamp(1, (self.connections + self.idle).max(1))
    }
}

/// Runs the load, writes the files the options name, and returns the report.
///
/// Errors are only for a run that could not be made (threads, pinning, files); a run that
/// completed nothing still returns its report, and [`Report::failure`] says why.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    opts.validate().map_err(|e| anyhow!(e))?;
    raise_fd_limit();
    let threads = opts.worker_threads();
    let tls = start_tls(opts)?;
    let start = match opts.start_at {
        Some(at) => wait_until(at),
        None => Instant::now(),
    };
    let started_at = SystemTime::now();
    let plan = Plan {
        addr: opts.addr,
        mode: opts.mode(),
        size: opts.size,
        pipeline: opts.pipeline,
        connections: opts.plan_connections(),
        rate: opts.rate,
        start,
        measure_start: start + opts.warmup,
        end: start + opts.warmup + opts.duration,
        timeout: opts.timeout,
        interval: opts.hlog_interval,
        tls: tls.as_ref().map(|t| t.client.clone()),
        share_cpus: opts.share_cpus,
    };
    let shared = Shared::default();
    let progress: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
    let bar = progress_bar(opts);

    let server_drops =
        || udp::kernel_drops(|l| l.local_port == opts.addr.port() && l.remote_port == 0);
    let before = opts.udp.then(|| (server_drops(), udp::rcvbuf_errors()));
    let (results, arrivals, cpu, wall) =
        run_workers(opts, &plan, &shared, &progress, bar.as_ref())?;
    let kernel = before.map(|(server, rcvbuf)| KernelDrops {
        loadgen: 0,
        server: server.zip(server_drops()).map(|(b, a)| a.saturating_sub(b)),
        rcvbuf_errors: udp::rcvbuf_errors().saturating_sub(rcvbuf),
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let cores = if opts.cpus.is_empty() {
        threads.min(affinity_cpus().len())
    } else {
        threads.min(opts.cpus.len())
    };
    // Four decimals: finer would only be noise in the CPU accounting.
    let cpu_ratio = if wall > 0.0 {
        (cpu / (wall * cores as f64) * 1e4).round() / 1e4
    } else {
        0.0
    };
    let (totals, intervals) = Totals::add_up(results, opts.hlog_interval)?;
    let mut report = assemble(opts, &plan, &totals, cpu_ratio);
    report.started_at_ns = Some(unix_ns(started_at));
    report.handshake_arrivals = arrivals.as_ref().map(|a| arrivals_report(opts, &plan, a));
    if let Some(tls) = &tls {
        tls_report(&mut report, tls, &totals, arrivals.as_ref());
    }
    if let (Some(mut kernel), Some(d)) = (kernel, &mut report.udp_kernel_drops) {
        kernel.loadgen = d.loadgen;
        *d = kernel;
    }
    write_outputs(opts, &report, &intervals, &plan)?;
    Ok(report)
}

/// A run's TLS, made ready before the load: the client, what the server chose, and the full
/// handshakes made before the load (the probe, and the priming for `--tls-resume`).
struct StartedTls {
    client: tls::Client,
    info: TlsInfo,
    /// Handshakes made before the load: (full, resumed).
    priming: (u64, u64),
}

/// `--tls`: makes the client, checks the server's certificate with one probe connection (its
/// refusal is the run's one error line), and with `--tls-resume` collects a ticket for every
/// connection.
fn start_tls(opts: &Options) -> anyhow::Result<Option<StartedTls>> {
    let Some(options) = &opts.tls else {
        return Ok(None);
    };
    let client = tls::Client::new(&opts.target, options).map_err(|e| anyhow!(e))?;
    let info = tls::probe(&client, opts.addr, opts.timeout).map_err(|e| anyhow!(e))?;
    if options.resume {
        tls::prime(
            &client,
            opts.addr,
            opts.timeout,
            opts.connections + opts.idle,
        );
    }
    let priming = (
        client.counts.full.load(Ordering::Relaxed),
        client.counts.resumed.load(Ordering::Relaxed),
    );
    Ok(Some(StartedTls {
        client,
        info,
        priming,
    }))
}

/// The arrivals of `--handshake-rate`, once they are over.
struct ArrivalsRun {
    result: WorkerResult,
    sched_idle: bool,
}

/// The workers' results, the arrivals', loadgen's CPU seconds and the wall seconds they were
/// measured over.
type Ran = (Vec<WorkerResult>, Option<ArrivalsRun>, f64, f64);

/// Starts one worker thread per share of the connections, and with `--handshake-rate` the
/// arrivals' thread, waits out the run on this thread ([`watch`]) and collects the results.
fn run_workers(
    opts: &Options,
    plan: &Plan,
    shared: &Shared,
    progress: &[AtomicU64],
    bar: Option<&indicatif::ProgressBar>,
) -> anyhow::Result<Ran> {
    let threads = progress.len();
    let arrivals_progress = AtomicU64::new(0);
    thread::scope(|s| -> anyhow::Result<_> {
        let mut handles = Vec::new();
        for w in 0..threads {
            // Connection numbers are the plan's: they fix the payload and the open-loop phase.
            let first = opts.conn_offset;
            let active: Vec<usize> = (first + w..first + opts.connections)
                .step_by(threads)
                .collect();
            let idle: Vec<usize> = (w..opts.idle)
                .step_by(threads)
                .map(|i| opts.plan_connections() + first + i)
                .collect();
            let cpu = (!opts.cpus.is_empty()).then(|| opts.cpus[w % opts.cpus.len()]);
            let progress = &progress[w];
            let handle = thread::Builder::new()
                .name(format!("loadgen-{w}"))
                .spawn_scoped(s, move || -> anyhow::Result<WorkerResult> {
                    if let Some(cpu) = cpu {
                        pin_to(&[cpu])?;
                    }
                    // Precise wake-ups for the open-loop schedule.
                    let _ = nix::sys::prctl::set_timerslack(1);
                    let worked = if opts.udp {
                        udp::run_worker(plan, shared, progress, active)
                    } else {
                        engine::run_worker(plan, shared, progress, active, idle)
                    };
                    worked.context("load worker failed")
                })
                .context("cannot start a worker thread")?;
            handles.push(handle);
        }
        let arrivals = opts
            .handshake_rate
            .map(|rate| spawn_arrivals(s, opts, plan, shared, &arrivals_progress, rate))
            .transpose()?;
        let (cpu, wall) = watch(opts, plan, shared, progress, bar);
        let mut results = Vec::new();
        for handle in handles {
            let result = handle
                .join()
                .map_err(|_| anyhow!("a worker thread panicked"))?;
            results.push(result?);
        }
        let arrivals = match arrivals {
            Some(handle) => Some(
                handle
                    .join()
                    .map_err(|_| anyhow!("the arrivals' thread panicked"))??,
            ),
            None => None,
        };
        Ok((results, arrivals, cpu, wall))
    })
}

/// Starts the arrivals' thread of `--handshake-rate`: pinned to loadgen's CPUs, at
/// `SCHED_IDLE`.
fn spawn_arrivals<'scope, 'env>(
    s: &'scope thread::Scope<'scope, 'env>,
    opts: &'env Options,
    plan: &'env Plan,
    shared: &'env Shared,
    progress: &'env AtomicU64,
    rate: f64,
) -> anyhow::Result<thread::ScopedJoinHandle<'scope, anyhow::Result<ArrivalsRun>>> {
    thread::Builder::new()
        .name("loadgen-arrivals".to_owned())
        .spawn_scoped(s, move || -> anyhow::Result<ArrivalsRun> {
            if !opts.cpus.is_empty() {
                pin_to(&opts.cpus)?;
            }
            let _ = nix::sys::prctl::set_timerslack(1);
            let sched_idle = sched_idle();
            let result = engine::run_arrivals(plan, shared, progress, rate)
                .context("the arrivals' thread failed")?;
            Ok(ArrivalsRun { result, sched_idle })
        })
        .context("cannot start the arrivals' thread")
}

/// Puts the calling thread at `SCHED_IDLE`: it runs only when the load's own threads leave
/// its CPU idle, so that client crypto never delays them. `false` when the kernel refused.
fn sched_idle() -> bool {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadSchedulePolicy,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle).is_ok()
}

/// Waits out the run on the main thread: progress, the CPU sample over the measured time, and
/// the early stop when no connection can be made. Returns loadgen's CPU seconds and the wall
/// seconds they were measured over.
fn watch(
    opts: &Options,
    plan: &Plan,
    shared: &Shared,
    progress: &[AtomicU64],
    bar: Option<&indicatif::ProgressBar>,
) -> (f64, f64) {
    let mut measured_from: Option<(Instant, f64)> = None;
    let give_up_at = plan.start + opts.timeout;
    loop {
        let now = Instant::now();
        if measured_from.is_none() && now >= plan.measure_start {
            measured_from = Some((now, cpu_seconds()));
        }
        if now >= plan.end {
            break;
        }
        if now >= give_up_at && !shared.connected_once.load(Ordering::Relaxed) {
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
        if let Some(bar) = bar {
            let done: u64 = progress.iter().map(|p| p.load(Ordering::Relaxed)).sum();
            bar.set_position((now - plan.start).as_millis() as u64);
            bar.set_message(format!("{done} messages measured"));
        }
        let mut next = (now + Duration::from_millis(100)).min(plan.end);
        if measured_from.is_none() {
            next = next.min(plan.measure_start);
        }
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    match measured_from {
        Some((at, cpu)) => (cpu_seconds() - cpu, at.elapsed().as_secs_f64()),
        None => (0.0, 0.0),
    }
}

fn progress_bar(opts: &Options) -> Option<indicatif::ProgressBar> {
    if !opts.progress || !std::io::stderr().is_terminal() {
        return None;
    }
    let total = (opts.warmup + opts.duration).as_millis() as u64;
    let bar = indicatif::ProgressBar::new(total);
    let style =
        indicatif::ProgressStyle::with_template("{spinner} {bar:30} {elapsed}/{duration} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

/// The workers' results added up.
struct Totals {
    latency: Histogram<u64>,
    uncorrected: Histogram<u64>,
    connect: Histogram<u64>,
    handshake: Histogram<u64>,
    send_late: Histogram<u64>,
    cpu_s: f64,
    errors: Errors,
    starved: usize,
    first_error: Option<String>,
    datagrams: Datagrams,
    loadgen_drops: u64,
}

impl Totals {
    /// The totals, and the per-interval histograms in the order the log writes them.
    fn add_up(
        results: Vec<WorkerResult>,
        interval: Duration,
    ) -> anyhow::Result<(Totals, Vec<hlog::Interval>)> {
        let mut t = Totals {
            latency: new_histogram(),
            uncorrected: new_histogram(),
            connect: new_histogram(),
            handshake: new_histogram(),
            send_late: new_histogram(),
            cpu_s: 0.0,
            errors: Errors::default(),
            starved: 0,
            first_error: None,
            datagrams: Datagrams::default(),
            loadgen_drops: 0,
        };
        // By (interval, tag order): latency, uncorrected, connect.
        let mut intervals: BTreeMap<(u32, usize), hlog::Interval> = BTreeMap::new();
        let mut deserializer = Deserializer::new();
        for r in results {
            add(&mut t.latency, &r.latency)?;
            add(&mut t.uncorrected, &r.uncorrected)?;
            add(&mut t.connect, &r.connect)?;
            add(&mut t.handshake, &r.handshake)?;
            add(&mut t.send_late, &r.send_late)?;
            t.cpu_s += r.cpu_s;
            t.errors.add(&r.errors);
            t.starved += r.starved;
            t.first_error = t.first_error.or(r.first_connect_error);
            t.datagrams.add(&r.datagrams);
            t.loadgen_drops += r.kernel_drops.unwrap_or(0);
            for encoded in r.intervals {
                let h: Histogram<u64> = deserializer
                    .deserialize(&mut &encoded.bytes[..])
                    .map_err(|e| anyhow!("cannot decode an interval histogram: {e:?}"))?;
                let slot = intervals
                    .entry((encoded.index, tag_order(encoded.tag)))
                    .or_insert_with(|| hlog::Interval {
                        start: interval * encoded.index,
                        length: encoded.length,
                        tag: encoded.tag.to_owned(),
                        histogram: new_histogram(),
                    });
                add(&mut slot.histogram, &h)?;
            }
        }
        Ok((t, intervals.into_values().collect()))
    }
}

/// Intervals of one index are written latency first, then uncorrected, then connect.
fn tag_order(tag: &str) -> usize {
    ["latency", "uncorrected", "connect"]
        .iter()
        .position(|t| *t == tag)
        .unwrap_or(3)
}

/// The report of a run from its totals.
fn assemble(opts: &Options, plan: &Plan, totals: &Totals, cpu_ratio: f64) -> Report {
    let duration_s = measured_seconds(opts, plan);
    let messages = totals.latency.len();
    let throughput = messages as f64 / duration_s;
    let mode = opts.mode();
    let (udp, d) = (opts.udp, totals.datagrams);
    Report {
        schema_version: SCHEMA_VERSION,
        target: opts.target.clone(),
        mode,
        connections: opts.connections,
        idle: opts.idle,
        size: opts.size,
        pipeline: opts.pipeline,
        rate: opts.own_rate(),
        duration_s,
        warmup_s: opts.warmup.as_secs_f64(),
        messages,
        bytes: messages * opts.size as u64,
        throughput_msgs_per_s: throughput,
        achieved_rate_ratio: opts.own_rate().map(|rate| throughput / rate),
        errors: totals.errors.clone(),
        connections_starved: totals.starved,
        latency_us: Latency::from_histogram(&totals.latency),
        latency_uncorrected_us: (mode == Mode::Open)
            .then(|| Latency::from_histogram(&totals.uncorrected)),
        connect_us: (mode == Mode::Churn).then(|| Latency::from_histogram(&totals.connect)),
        loadgen_cpu_ratio: cpu_ratio,
        loadgen_saturated: cpu_ratio > SATURATION,
        first_error: totals.first_error.clone(),
        datagrams_sent: udp.then_some(d.sent),
        datagrams_lost: udp.then_some(d.lost),
        datagrams_late: udp.then_some(d.late),
        datagrams_reordered: udp.then_some(d.reordered),
        datagrams_duplicated: udp.then_some(d.duplicated),
        loss_ratio: udp.then(|| d.loss_ratio()),
        udp_kernel_drops: udp.then_some(KernelDrops {
            loadgen: totals.loadgen_drops,
            ..KernelDrops::default()
        }),
        tls: None,
        handshakes: None,
        handshake_us: None,
        send_late_us: (mode == Mode::Open).then(|| Latency::from_histogram(&totals.send_late)),
        handshake_arrivals: None,
        started_at_ns: None,
        start_at_ns: opts.start_at.map(unix_ns),
        conn_offset: opts.conn_total.map(|_| opts.conn_offset),
        conn_total: opts.conn_total,
    }
}

/// Sleeps until the wall clock reaches `at` and returns the monotonic instant that stands for
/// it: the plan starts there even when this process got there late (the open-loop schedule
/// stays the one all agents share, and a late agent's sends count late), and a clock stepped
/// meanwhile does not move it.
fn wait_until(at: SystemTime) -> Instant {
    loop {
        let now = SystemTime::now();
        match at.duration_since(now) {
            // The last stretch sleeps exactly; longer ones wake early to read the clock again.
            Ok(left) if left > Duration::from_millis(50) => {
                thread::sleep(left - Duration::from_millis(20))
            }
            Ok(left) => {
                thread::sleep(left);
                return Instant::now();
            }
            Err(late) => {
                let late = late.duration();
                return Instant::now()
                    .checked_sub(late)
                    .unwrap_or_else(Instant::now);
            }
        }
    }
}

/// The measured time of a run, as [`assemble`] reckons it.
fn measured_seconds(opts: &Options, plan: &Plan) -> f64 {
    let measured = Instant::now()
        .min(plan.end)
        .saturating_duration_since(plan.measure_start);
    if measured.is_zero() {
        opts.duration.as_secs_f64()
    } else {
        measured.as_secs_f64()
    }
}

/// The `handshake_arrivals` key from the arrivals' thread.
fn arrivals_report(opts: &Options, plan: &Plan, run: &ArrivalsRun) -> Arrivals {
    let r = &run.result;
    let rate = opts.handshake_rate.unwrap_or(0.0);
    let completed = r.latency.len();
    let expected = rate * measured_seconds(opts, plan);
    Arrivals {
        rate,
        scheduled: r.send_late.len(),
        completed,
        achieved_rate_ratio: if expected > 0.0 {
            completed as f64 / expected
        } else {
            0.0
        },
        latency_us: Latency::from_histogram(&r.latency),
        send_late_us: Latency::from_histogram(&r.send_late),
        handshake_us: opts
            .tls
            .is_some()
            .then(|| Latency::from_histogram(&r.handshake)),
        errors: r.errors.clone(),
        sched_idle: run.sched_idle,
    }
}

/// The TLS keys of the report: what the server chose, the handshakes by kind beside the
/// priming ones, their time, and loadgen's CPU per handshake.
fn tls_report(
    report: &mut Report,
    tls: &StartedTls,
    totals: &Totals,
    arrivals: Option<&ArrivalsRun>,
) {
    let full = tls.client.counts.full.load(Ordering::Relaxed);
    let resumed = tls.client.counts.resumed.load(Ordering::Relaxed);
    let (primed_full, primed_resumed) = tls.priming;
    let of_load = (full + resumed).saturating_sub(primed_full + primed_resumed);
    let resumed_of_load = resumed.saturating_sub(primed_resumed);
    let mut handshake = totals.handshake.clone();
    if let Some(a) = arrivals {
        let _ = handshake.add(&a.result.handshake);
    }
    // CPU per handshake where handshakes are what the threads do: churn's steady connections,
    // else the arrivals.
    let per = |cpu_s: f64, n: u64| (n > 0).then(|| cpu_s * 1e6 / n as f64);
    let cpu = match (report.mode, arrivals) {
        (Mode::Churn, _) => per(totals.cpu_s, totals.handshake.len()),
        (_, Some(a)) => per(a.result.cpu_s, a.result.handshake.len()),
        _ => None,
    };
    report.tls = Some(tls.info.clone());
    report.handshakes = Some(Handshakes {
        full,
        resumed,
        priming: primed_full + primed_resumed,
        resumed_ratio: (of_load > 0).then(|| resumed_of_load as f64 / of_load as f64),
        measured: totals.handshake.len(),
        loadgen_cpu_us_per_handshake: cpu.map(|c| (c * 10.0).round() / 10.0),
    });
    report.handshake_us = Some(Latency::from_histogram(&handshake));
}

fn add(into: &mut Histogram<u64>, from: &Histogram<u64>) -> anyhow::Result<()> {
    into.add(from)
        .map_err(|e| anyhow!("cannot add histograms: {e:?}"))
}

fn write_outputs(
    opts: &Options,
    report: &Report,
    intervals: &[hlog::Interval],
    plan: &Plan,
) -> anyhow::Result<()> {
    if let Some(path) = &opts.json {
        let mut json = serde_json::to_string_pretty(report).context("cannot encode the report")?;
        json.push('\n');
        std::fs::write(path, json)
            .with_context(|| format!("cannot write --json {}", path.display()))?;
    }
    if let Some(path) = &opts.hgrm {
        let mut latency = new_histogram();
        for i in intervals.iter().filter(|i| i.tag == "latency") {
            add(&mut latency, &i.histogram)?;
        }
        std::fs::write(path, report::hgrm(&latency))
            .with_context(|| format!("cannot write --hgrm {}", path.display()))?;
    }
    if let Some(path) = &opts.hlog {
        let since_measure = Instant::now().saturating_duration_since(plan.measure_start);
        let measure_start = SystemTime::now() - since_measure;
        hlog::write(path, measure_start, intervals, report)?;
    }
    Ok(())
}

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

/// Descriptors a run needs beyond its connections: standard streams, output files, and each
/// worker's poll and timer.
const SPARE_FDS_PER_RUN: usize = 16;

/// Refuses a run this machine cannot hold: more connections than the hard descriptor limit
/// allows, or than there are ephemeral ports to reach one address from. The error names the
/// limit and the flags.
fn check_capacity(opts: &Options) -> Result<(), String> {
    let sockets = opts.connections.saturating_add(opts.idle);
    let asked = if opts.idle > 0 {
        format!(
            "--connections {} + --idle {} need {sockets}",
            opts.connections, opts.idle
        )
    } else {
        format!("--connections {} needs {sockets}", opts.connections)
    };
    let fds = sockets
        .saturating_add(SPARE_FDS_PER_RUN)
        .saturating_add(2 * opts.worker_threads());
    if let Some((_, hard)) = original_fd_limit() {
        if fds as u64 > hard {
            return Err(format!(
                "{asked} sockets, {fds} descriptors in all, but the hard descriptor limit \
                 (ulimit -Hn) is {hard}"
            ));
        }
    }
    // Only churn closes and reopens; every other mode holds all its sockets at once.
    if let Some((first, last)) = local_port_range() {
        let ports = usize::from(last.saturating_sub(first)) + 1;
        if sockets > ports {
            return Err(format!(
                "{asked} ephemeral ports to one address, but net.ipv4.ip_local_port_range \
                 ({first}-{last}) has {ports}"
            ));
        }
    }
    Ok(())
}

/// loadgen's CPU time so far, user + system over all its threads, in seconds.
fn cpu_seconds() -> f64 {
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
fn pin_to(cpus: &[usize]) -> anyhow::Result<()> {
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

/// Parses a count with an optional `k` (thousand) or `M` (million) suffix: `10k`, `1.5M`.
pub fn parse_count(text: &str) -> Result<u64, String> {
    let value = parse_scaled(text)?;
    if value.fract() != 0.0 || value < 0.0 {
        return Err(format!("'{text}' is not a whole number"));
    }
    Ok(value as u64)
}

/// Parses a positive number with an optional `k` or `M` suffix.
pub fn parse_scaled(text: &str) -> Result<f64, String> {
    let (digits, scale) = match text.strip_suffix(['k', 'K']) {
        Some(d) => (d, 1e3),
        None => match text.strip_suffix(['m', 'M']) {
            Some(d) => (d, 1e6),
            None => (text, 1.0),
        },
    };
    let value: f64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a number (10, 10k, 1.5M)"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("'{text}' is not a non-negative number"));
    }
    Ok(value * scale)
}
