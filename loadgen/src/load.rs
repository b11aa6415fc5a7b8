//! A whole run: [`run`] makes the load that [`Options`] describe, with one worker thread per
//! share of the connections, and assembles their results into the [`Report`].

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;

use crate::engine::{self, Plan, Shared, WorkerResult};
use crate::machine::{affinity_cpus, cpu_seconds, pin_to, raise_fd_limit};
use crate::options::Options;
use crate::record::INTERVAL_TAGS;
use crate::report::{
    self, new_histogram, unix_ns, Arrivals, Datagrams, Errors, FindRate, Handshakes, KernelDrops,
    Latency, Mode, Report, Slo, Step, WorkClass, WorkReport, SATURATION, SCHEMA_VERSION,
};
use crate::tls::{self, TlsInfo};
use crate::work::{Mix, CLASS_TAGS};
use crate::{attack, chat, hlog, udp};

/// Runs the load, writes the files the options name, and returns the report.
///
/// Errors are only for a run that could not be made (threads, pinning, files); a run that
/// completed nothing still returns its report, and [`Report::failure`] says why.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    measure(opts, false).map(|(report, _)| outward(report))
}

/// A report as it leaves loadgen: what only the search reads (loadgen's own lateness) is
/// left out, so that it equals its own interval log read back.
fn outward(mut report: Report) -> Report {
    report.send_late_own_us = None;
    report
}

/// [`run`], returning the run's interval log too (what `--hlog` writes, in memory), for the
/// agent mode: no temporary file to plant, follow or leave behind.
pub fn run_keeping_log(opts: &Options) -> anyhow::Result<(Report, Vec<u8>)> {
    measure(opts, true).map(|(report, log)| (outward(report), log))
}

/// A whole run; its interval log when `keep_log`, or empty.
fn measure(opts: &Options, keep_log: bool) -> anyhow::Result<(Report, Vec<u8>)> {
    if let Some(slo) = &opts.find_rate {
        opts.validate().map_err(|e| anyhow!(e))?;
        return find_rate(opts, slo);
    }
    if let Some(room) = opts.chat {
        opts.validate().map_err(|e| anyhow!(e))?;
        return measure_chat(opts, room, keep_log);
    }
    let sources = opts
        .checked()
        .map_err(|e| anyhow!(e))?
        .map(std::sync::Arc::new);
    raise_fd_limit();
    let threads = opts.worker_threads();
    let tls = start_tls(opts)?;
    // `--attack`: the attackers start first, and the load a second after them.
    let attackers = match &opts.attack {
        Some(spec) => {
            if let Some(at) = opts.start_at {
                wait_until(at);
            }
            let plan = attack::Plan {
                spec: spec.clone(),
                from: opts.attack_from,
                interval: opts.attack_interval,
                target: opts.addr,
                timeout: opts.timeout,
                cpus: opts.cpus.clone(),
            };
            Some(attack::start(plan)?)
        }
        None => None,
    };
    let start = match (opts.start_at, &attackers) {
        (_, Some(_)) => wait_until(SystemTime::now() + attack::HEAD_START),
        (Some(at), None) => wait_until(at),
        (None, None) => Instant::now(),
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
        sources,
        work: opts
            .work
            .as_ref()
            .map(|spec| std::sync::Arc::new(Mix::new(spec, opts.seed, opts.size))),
    };
    let shared = Shared::default();
    let progress: Vec<AtomicU64> = (0..threads).map(|_| AtomicU64::new(0)).collect();
    let bar = progress_bar(opts);

    let server_drops =
        || udp::kernel_drops(|l| l.local_port == opts.addr.port() && l.remote_port == 0);
    let before = opts.udp.then(|| (server_drops(), udp::rcvbuf_errors()));
    let ran = run_workers(opts, &plan, &shared, &progress, bar.as_ref());
    let attack = attackers.map(attack::Attack::finish).transpose()?;
    let (results, arrivals, cpu, wall) = ran?;
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
    report.attack = attack;
    // Scaled from the window sampled to the measured time, as the messages are counted.
    report.loadgen_cpu_s =
        (wall > 0.0).then(|| (cpu * report.duration_s / wall * 1e4).round() / 1e4);
    report.handshake_arrivals = arrivals.as_ref().map(|a| arrivals_report(opts, &plan, a));
    if let Some(tls) = &tls {
        tls_report(&mut report, tls, &totals, arrivals.as_ref());
    }
    if let (Some(mut kernel), Some(d)) = (kernel, &mut report.udp_kernel_drops) {
        kernel.loadgen = d.loadgen;
        *d = kernel;
    }
    let log = write_outputs(opts, &report, &intervals, plan.measure_start, keep_log)?;
    Ok((report, log))
}

/// The most rates a `--find-rate` search tries (a failed rate's step is made twice).
pub const MAX_STEPS: usize = 24;

/// A search ends when its lowest failed rate is within this share above its highest held one.
pub const WITHIN: f64 = 0.05;

/// How often a search whose first step fails halves the rate before it says no rate holds.
pub const HALVINGS: i32 = 4;

/// The highest rate a search offers, requests/s.
pub const MAX_SEARCH_RATE: f64 = 1e8;

/// `--find-rate`: open-loop steps at the rates [`search`] picks, each judged by [`judge`]:
/// whether it held, and whether loadgen rather than the server was its limit (a rate is then
/// "at least"). Each step is a whole run (its own connections,
/// warm-up and `--step` measured). The report is the highest step that held (the last step
/// where none did) with `find_rate` added; its interval log is that step's.
fn find_rate(opts: &Options, slo: &Slo) -> anyhow::Result<(Report, Vec<u8>)> {
    let talk = opts.progress && std::io::stderr().is_terminal();
    let mut steps: Vec<(Step, Report, Vec<u8>)> = Vec::new();
    let found = search(opts.rate_start, |rate| {
        let mut o = opts.clone();
        (o.rate, o.duration, o.find_rate) = (Some(rate), opts.step, None);
        (o.json, o.hlog, o.hgrm, o.progress) = (None, None, None, false);
        let (report, log) = measure(&o, true)?;
        let (step, loadgen_bound) = judge(&report, slo, rate);
        if talk {
            eprintln!("loadgen: find-rate: {}", report::step_text(&step));
        }
        let held = step.held;
        steps.push((step, report, log));
        Ok((held, loadgen_bound))
    })?;
    let (held, limited_by, at_least) = found;
    let best = steps
        .iter()
        .enumerate()
        .filter(|(_, (s, _, _))| s.held)
        .max_by(|a, b| a.1 .0.offered.total_cmp(&b.1 .0.offered))
        .map_or(steps.len() - 1, |(i, _)| i);
    let found = FindRate {
        slo: slo.text(),
        percentile: slo.percentile,
        target_us: slo.target_us(),
        rate: held,
        at_least,
        limited_by: limited_by.to_owned(),
        steps: steps.iter().map(|(s, _, _)| s.clone()).collect(),
    };
    let (_, mut report, log) = steps.swap_remove(best);
    report.find_rate = Some(found);
    write_json(opts, &report)?;
    write_hlog(opts, &log)?;
    Ok((report, log))
}

/// The search over `try_rate`, which makes a step at a rate and says whether it held and
/// whether loadgen limited it: the highest rate that held, what ended the search, and whether
/// the rate is "at least" (loadgen's limit, not the server's). From `rate_start`, doubling
/// while steps hold, then bisecting between the highest that held and the lowest that failed
/// until they are within [`WITHIN`]; a first step that fails halves the rate, [`HALVINGS`]
/// times at most. A rate fails only when its step fails twice in a row (the second try is a
/// step of its own). A step that held at loadgen's limit ends the search.
pub fn search(
    rate_start: f64,
    mut try_rate: impl FnMut(f64) -> anyhow::Result<(bool, bool)>,
) -> anyhow::Result<(Option<f64>, &'static str, bool)> {
    // The highest rate that held; the lowest that failed, and whether loadgen failed it.
    let (mut held, mut failed): (Option<f64>, Option<(f64, bool)>) = (None, None);
    let floor = rate_start / 2f64.powi(HALVINGS);
    let mut rate = rate_start;
    for _ in 0..MAX_STEPS {
        if rate > MAX_SEARCH_RATE {
            break;
        }
        let mut step = try_rate(rate)?;
        if !step.0 {
            // A failed step is made once more: one p99 spike on a busy machine (a page
            // fault, another process's turn) must not decide the knee.
            step = try_rate(rate)?;
        }
        match step {
            // Held, but loadgen was at its limit: the server holds at least this much.
            (true, true) => return Ok((Some(rate), "loadgen", true)),
            (true, false) => held = Some(rate),
            (false, by_loadgen) => failed = Some((rate, by_loadgen)),
        }
        rate = match (held, failed) {
            (Some(h), Some((f, by_loadgen))) if f <= h * (1.0 + WITHIN) => {
                return Ok(match by_loadgen {
                    true => (held, "loadgen", true),
                    false => (held, "server", false),
                });
            }
            (Some(h), Some((f, _))) => (h + f) / 2.0,
            (Some(h), None) => h * 2.0,
            (None, Some((f, by_loadgen))) if f / 2.0 < floor => {
                return Ok(match by_loadgen {
                    true => (None, "loadgen", true),
                    false => (None, "no rate", false),
                });
            }
            (None, _) => rate / 2.0,
        };
    }
    Ok((held, "steps", false))
}

/// A step's figures, whether it held, and whether loadgen rather than the server limited
/// it: its CPU over 90 %, or its own lateness (sends whose timers fired late, not those late
/// because their connection's last echo came late) over a tenth of the target at p90 (nine
/// sends in ten), or, where the step failed on latency, over a tenth of the target and half
/// the latency measured at the target's percentile (the tail was loadgen's). A timer's own
/// jitter is about 100 µs at p99 on the 2-core machine at any rate, hence p90 and the half.
fn judge(r: &Report, slo: &Slo, offered: f64) -> (Step, bool) {
    let achieved_ratio = r.achieved_rate_ratio.unwrap_or(0.0);
    let value = slo.of(&r.latency_us);
    let mut why = Vec::new();
    let over = r.messages > 0 && value > slo.target_us();
    if r.messages == 0 {
        why.push("no request completed".to_owned());
    } else {
        if achieved_ratio < 0.99 {
            why.push(format!(
                "achieved {:.1} % of the rate",
                achieved_ratio * 100.0
            ));
        }
        if over {
            why.push(format!("{} {value:.0} µs over the target", slo.name()));
        }
    }
    if r.errors.total() > 0 {
        why.push(format!("{} errors", r.errors.total()));
    }
    if r.connections_starved > 0 {
        why.push(format!("{} connections starved", r.connections_starved));
    }
    let held = why.is_empty();
    let mut loadgen = Vec::new();
    let own = r.send_late_own_us.clone().unwrap_or_default();
    let tenth = slo.target_us() / 10.0;
    if own.p90 > tenth {
        loadgen.push(format!(
            "loadgen sent late on its own: p90 {:.0} µs, over a tenth of the target",
            own.p90
        ));
    }
    let own_at = slo.of(&own);
    if over && own_at > tenth && own_at >= value / 2.0 {
        loadgen.push(format!(
            "loadgen sent late on its own: {own_at:.0} µs at {}",
            slo.name()
        ));
    }
    if r.loadgen_saturated {
        loadgen.push(format!(
            "loadgen's CPU at {:.0} %",
            r.loadgen_cpu_ratio * 100.0
        ));
    }
    let bound = !loadgen.is_empty();
    why.extend(loadgen);
    let step = Step {
        offered,
        achieved: r.throughput_msgs_per_s,
        p50_us: r.latency_us.p50,
        p99_us: r.latency_us.p99,
        p99_9_us: r.latency_us.p99_9,
        send_late_p99_us: r.send_late_us.as_ref().map_or(0.0, |l| l.p99),
        loadgen_cpu_ratio: r.loadgen_cpu_ratio,
        held,
        why: (!why.is_empty()).then(|| why.join("; ")),
    };
    (step, bound)
}

/// A `--chat` run ([`chat`]): its report, and its interval log when `keep_log`.
fn measure_chat(opts: &Options, room: usize, keep_log: bool) -> anyhow::Result<(Report, Vec<u8>)> {
    raise_fd_limit();
    let started_at = SystemTime::now();
    let run = chat::run(opts, room, opts.chat_slow)?;
    let t = &run.totals;
    let cores = match opts.cpus.is_empty() {
        true => run.threads.min(affinity_cpus().len()),
        false => run.threads.min(opts.cpus.len()),
    };
    let cpu_ratio = match run.wall_s > 0.0 {
        true => (run.cpu_s / (run.wall_s * cores.max(1) as f64) * 1e4).round() / 1e4,
        false => 0.0,
    };
    let duration_s = opts.duration.as_secs_f64();
    let throughput = t.messages as f64 / duration_s;
    let mode = opts.mode();
    let mut chat = t.report.clone();
    chat.deliveries_per_s = chat.deliveries_received as f64 / duration_s;
    chat.delivery_latency_us = Latency::from_histogram(&t.delivery);
    chat.fanout_latency_us = Latency::from_histogram(&t.fanout);
    let report = Report {
        schema_version: SCHEMA_VERSION,
        target: opts.target.clone(),
        mode,
        connections: opts.connections,
        idle: 0,
        size: opts.size,
        pipeline: opts.pipeline,
        rate: opts.rate,
        duration_s,
        warmup_s: opts.warmup.as_secs_f64(),
        messages: t.messages,
        bytes: t.messages * opts.size as u64,
        throughput_msgs_per_s: throughput,
        achieved_rate_ratio: opts.rate.map(|rate| throughput / rate),
        errors: Errors {
            connect: t.connect,
            reset: t.reset,
            timeout: 0,
            mismatch: t.mismatch,
            other: 0,
        },
        connections_starved: chat.members_starved as usize,
        latency_us: chat.delivery_latency_us.clone(),
        latency_uncorrected_us: None,
        connect_us: None,
        loadgen_cpu_ratio: cpu_ratio,
        loadgen_saturated: cpu_ratio > SATURATION,
        first_error: t.first_error.clone(),
        datagrams_sent: None,
        datagrams_lost: None,
        datagrams_late: None,
        datagrams_reordered: None,
        datagrams_duplicated: None,
        loss_ratio: None,
        udp_kernel_drops: None,
        tls: None,
        handshakes: None,
        handshake_us: None,
        send_late_us: (mode == Mode::Open).then(|| Latency::from_histogram(&t.send_late)),
        send_late_own_us: None,
        handshake_arrivals: None,
        started_at_ns: Some(unix_ns(started_at)),
        start_at_ns: None,
        conn_offset: None,
        conn_total: None,
        source_addrs: None,
        loadgen_cpu_s: Some((run.cpu_s * 1e4).round() / 1e4),
        work: None,
        chat: Some(chat),
        attack: None,
        find_rate: None,
    };
    let intervals = chat::intervals(t, opts.hlog_interval);
    let log = write_outputs(opts, &report, &intervals, run.measure_start, keep_log)?;
    Ok((report, log))
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
    own_late: Histogram<u64>,
    /// `--work`: each class's latency.
    classes: Vec<Histogram<u64>>,
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
            own_late: new_histogram(),
            classes: Vec::new(),
            cpu_s: 0.0,
            errors: Errors::default(),
            starved: 0,
            first_error: None,
            datagrams: Datagrams::default(),
            loadgen_drops: 0,
        };
        // By (interval, tag order).
        let mut intervals: BTreeMap<(u32, usize), hlog::Interval> = BTreeMap::new();
        let mut deserializer = Deserializer::new();
        for r in results {
            add(&mut t.latency, &r.latency)?;
            add(&mut t.uncorrected, &r.uncorrected)?;
            add(&mut t.connect, &r.connect)?;
            add(&mut t.handshake, &r.handshake)?;
            add(&mut t.send_late, &r.send_late)?;
            add(&mut t.own_late, &r.own_late)?;
            for (i, h) in r.classes.iter().enumerate() {
                if t.classes.len() <= i {
                    t.classes.push(new_histogram());
                }
                add(&mut t.classes[i], h)?;
            }
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

/// Intervals of one index are written in the order of [`INTERVAL_TAGS`], then the `--work`
/// classes'.
fn tag_order(tag: &str) -> usize {
    INTERVAL_TAGS
        .iter()
        .chain(&CLASS_TAGS)
        .position(|t| *t == tag)
        .unwrap_or(INTERVAL_TAGS.len() + CLASS_TAGS.len())
}

/// The `work` key: each class with its latency.
fn work_report(opts: &Options, classes: &[Histogram<u64>]) -> Option<WorkReport> {
    let spec = opts.work.as_ref()?;
    Some(WorkReport {
        spec: spec.spec.clone(),
        seed: opts.seed,
        classes: spec
            .classes
            .iter()
            .enumerate()
            .map(|(i, class)| {
                let latency = classes.get(i);
                WorkClass {
                    spec: class.spec.clone(),
                    share: f64::from(class.share_ppm) / 1e6,
                    cpu_us: f64::from(class.cpu_ns) / 1e3,
                    wait_us: f64::from(class.wait_us),
                    messages: latency.map_or(0, Histogram::len),
                    latency_us: latency.map(Latency::from_histogram).unwrap_or_default(),
                }
            })
            .collect(),
    })
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
        send_late_own_us: (mode == Mode::Open).then(|| Latency::from_histogram(&totals.own_late)),
        handshake_arrivals: None,
        started_at_ns: None,
        start_at_ns: opts.start_at.map(unix_ns),
        conn_offset: opts.conn_total.map(|_| opts.conn_offset),
        conn_total: opts.conn_total,
        source_addrs: plan.sources.as_ref().map(|s| s.report()),
        loadgen_cpu_s: None,
        work: work_report(opts, &totals.classes),
        chat: None,
        attack: None,
        find_rate: None,
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

/// Writes the files the options name; returns the interval log when `keep_log` (else empty).
fn write_outputs(
    opts: &Options,
    report: &Report,
    intervals: &[hlog::Interval],
    measure_start: Instant,
    keep_log: bool,
) -> anyhow::Result<Vec<u8>> {
    write_json(opts, report)?;
    if let Some(path) = &opts.hgrm {
        let mut latency = new_histogram();
        for i in intervals.iter().filter(|i| i.tag == "latency") {
            add(&mut latency, &i.histogram)?;
        }
        std::fs::write(path, report::hgrm(&latency))
            .with_context(|| format!("cannot write --hgrm {}", path.display()))?;
    }
    if opts.hlog.is_none() && !keep_log {
        return Ok(Vec::new());
    }
    let since_measure = Instant::now().saturating_duration_since(measure_start);
    let measure_start = SystemTime::now() - since_measure;
    let log = hlog::encode(measure_start, intervals, report)?;
    write_hlog(opts, &log)?;
    Ok(if keep_log { log } else { Vec::new() })
}

/// Writes the report where `--json` says, if it says.
fn write_json(opts: &Options, report: &Report) -> anyhow::Result<()> {
    let Some(path) = &opts.json else {
        return Ok(());
    };
    let mut json = serde_json::to_string_pretty(report).context("cannot encode the report")?;
    json.push('\n');
    std::fs::write(path, json).with_context(|| format!("cannot write --json {}", path.display()))
}

/// Writes the interval log where `--hlog` says, if it says.
fn write_hlog(opts: &Options, log: &[u8]) -> anyhow::Result<()> {
    match &opts.hlog {
        Some(path) => std::fs::write(path, log)
            .with_context(|| format!("cannot write --hlog {}", path.display())),
        None => Ok(()),
    }
}
