//! `compare --agents`: a run's load split over load agents, loadgen in agent mode on each host
//! ([`loadgen::agent`]), started through a launcher template (`ssh {host} --`) or, for a local
//! host, by direct exec: one path for both.
//!
//! Per run: every host is checked first (`loadgen agent-hello`: it answers, runs this very
//! version and report schema, and its clock is read against the round trip); the start is
//! set to now plus a margin measured from the slowest launch, in each host's own clock; each
//! agent runs its slice of one plan (`--conn-offset`/`--conn-total`, so that an open-loop
//! schedule stays one evenly spaced sequence); their interval logs are merged by adding
//! histograms, interval by interval. A host that cannot be reached, lacks the binary, runs
//! another version, has a clock off by more than one interval, starts late by more than one
//! interval, or fails, costs one line naming it, and the run is failed.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context};
use loadgen::agent::{self, Hello};
use loadgen::Report;

use crate::plan::Hosts;
use crate::schema::AgentRun;
use crate::workload::INTERVAL;

/// How long a host may take to answer its check (an ssh connection included).
const HELLO_TIMEOUT: Duration = Duration::from_secs(15);

/// Clock readings per check; the one with the shortest round trip counts.
const CLOCK_READINGS: usize = 5;

/// What an agent needs between its start and its load beyond the launch itself: threads,
/// descriptors, a TLS probe.
const SETUP_MARGIN: Duration = Duration::from_millis(250);

/// How an agent's failure begins when it was stopped because another agent failed.
const STOPPED: &str = "stopped with the others";

/// How long after its planned end an agent may take to send its frames.
const END_GRACE: Duration = Duration::from_secs(30);

/// How much of the end of an agent's stderr is kept, for the line that says how it ended.
const STDERR_KEPT: usize = 64 << 10;

/// What the check of a host found.
#[derive(Debug, Clone)]
pub struct Clock {
    /// The host's clock minus this one's, ns.
    pub offset_ns: i64,
    /// The round trip of the reading that counted.
    pub rtt: Duration,
    /// From the launch to the host's first answer.
    pub launch: Duration,
    /// The machine's name, as it gives it.
    pub machine: String,
}

/// Frames and the end of one agent's stdout, and its stderr, read by threads of their own.
struct Streams {
    frames: mpsc::Receiver<Result<(String, Vec<u8>), String>>,
    stderr: thread::JoinHandle<String>,
}

impl Streams {
    fn of(child: &mut Child) -> Streams {
        let (tx, frames) = mpsc::channel();
        let stdout = child.stdout.take();
        thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut input = BufReader::new(stdout);
            loop {
                let frame = match agent::read_frame(&mut input) {
                    Ok(Some(frame)) => Ok(frame),
                    Ok(None) => return,
                    Err(e) => Err(e.to_string()),
                };
                let bad = frame.is_err();
                if tx.send(frame).is_err() || bad {
                    return;
                }
            }
        });
        // Any bytes, however many: read to the end, its last ones kept for the last line.
        let stderr = child.stderr.take();
        let stderr = thread::spawn(move || {
            stderr.map_or_else(String::new, |e| loadgen::lines::tail(e, STDERR_KEPT))
        });
        Streams { frames, stderr }
    }

    /// The next frame within `timeout`; the error says why there is none.
    fn next(&self, timeout: Duration) -> Result<(String, Vec<u8>), String> {
        match self.frames.recv_timeout(timeout) {
            Ok(frame) => frame,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "no answer within {}",
                humantime::format_duration(timeout)
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err("its output ended".to_owned()),
        }
    }
}

/// Ends `child` if it still runs and says how it ended, with the last line of its stderr.
fn ended(mut child: Child, streams: Streams, wait: Duration) -> String {
    let deadline = Instant::now() + wait;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                break child.wait().ok();
            }
        }
    };
    let said = streams.stderr.join().unwrap_or_default();
    let status = status.map_or_else(|| "no exit status".to_owned(), super::server::said);
    super::server::with_last_line(status, &said)
}

/// Checks `host`: it can be reached, runs this version, and how far its clock is off.
pub fn check(hosts: &Hosts, host: &str) -> Result<Clock, String> {
    let launched = Instant::now();
    let mut child = hosts.spawn(host, &["loadgen".to_owned(), "agent-hello".to_owned()])?;
    let streams = Streams::of(&mut child);
    let hello = streams
        .next(HELLO_TIMEOUT)
        .and_then(|(kind, body)| match kind.as_str() {
            "hello" => serde_json::from_slice::<Hello>(&body).map_err(|e| e.to_string()),
            other => Err(format!("a {other} frame, not hello")),
        });
    let launch = launched.elapsed();
    let hello = match hello {
        Ok(hello) => hello,
        Err(_) => {
            drop(child.stdin.take());
            return Err(format!(
                "no answer: {}",
                ended(child, streams, Duration::from_secs(2))
            ));
        }
    };
    if let Some(why) = hello.mismatch() {
        drop(child.stdin.take());
        let _ = ended(child, streams, Duration::from_secs(2));
        return Err(why);
    }
    let readings = read_clock(child.stdin.take(), &streams);
    let _ = ended(child, streams, Duration::from_secs(2));
    let (offset_ns, rtt) = readings?;
    Ok(Clock {
        offset_ns,
        rtt,
        launch,
        machine: hello.machine,
    })
}

/// Reads the host's clock [`CLOCK_READINGS`] times; the offset of the reading with the
/// shortest round trip, against its midpoint, and that round trip.
fn read_clock(stdin: Option<ChildStdin>, streams: &Streams) -> Result<(i64, Duration), String> {
    let mut stdin = stdin.ok_or("no stdin")?;
    let mut best: Option<(i64, Duration)> = None;
    for _ in 0..CLOCK_READINGS {
        let sent = SystemTime::now();
        let timer = Instant::now();
        stdin
            .write_all(b"clock\n")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot ask for its clock: {e}"))?;
        let (kind, body) = streams.next(HELLO_TIMEOUT)?;
        let rtt = timer.elapsed();
        let theirs: u64 = match (kind.as_str(), std::str::from_utf8(&body)) {
            ("clock", Ok(text)) => text.trim().parse().map_err(|_| "a bad clock frame")?,
            _ => return Err(format!("a {kind} frame, not clock")),
        };
        let mid = loadgen::unix_ns(sent) as i128 + rtt.as_nanos() as i128 / 2;
        let offset = (theirs as i128 - mid) as i64;
        if best.is_none_or(|(_, r)| rtt < r) {
            best = Some((offset, rtt));
        }
    }
    best.ok_or_else(|| "no clock reading".to_owned())
}

/// Why `clock` cannot be trusted to start a run together: the host's clock is off by more than
/// one interval (interval logs are stamped with it), or its round trip is too long to tell.
pub fn clock_refused(clock: &Clock) -> Option<String> {
    let interval = INTERVAL.as_nanos() as i64;
    let ms = |ns: i64| ns as f64 / 1e6;
    if clock.offset_ns.abs() > interval {
        return Some(format!(
            "its clock is {:+.1} ms off this host's, over one interval ({} ms): synchronise the clocks (NTP) first",
            ms(clock.offset_ns),
            ms(interval)
        ));
    }
    if clock.rtt.as_nanos() as i64 / 2 > interval {
        return Some(format!(
            "a round trip of {:.1} ms cannot place its clock within one interval ({} ms)",
            clock.rtt.as_secs_f64() * 1e3,
            ms(interval)
        ));
    }
    None
}

/// One agent's slice of a run's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// The host it runs on.
    pub host: String,
    /// Its first connection's number in the plan.
    pub offset: usize,
    /// Its active connections.
    pub connections: usize,
    /// Its idle connections.
    pub idle: usize,
}

/// Splits `connections` (and `idle`, over the agents that have active ones) over `hosts` as
/// evenly as they go, the first hosts taking one more; hosts left without a connection get no
/// part.
pub fn split(hosts: &[String], connections: usize, idle: usize) -> Vec<Part> {
    let share = |total: usize, n: usize, i: usize| total / n + usize::from(i < total % n);
    let with_load = hosts.len().min(connections).max(1);
    let mut offset = 0;
    (0..with_load)
        .map(|i| {
            let part = Part {
                host: hosts[i].clone(),
                offset,
                connections: share(connections, with_load, i),
                idle: share(idle, with_load, i),
            };
            offset += part.connections;
            part
        })
        .collect()
}

/// A run's agents, checked and with their start set.
pub struct Launch {
    /// When the load starts, by this host's monotonic clock.
    pub start: Instant,
    /// When the load starts, by this host's wall clock.
    start_wall: SystemTime,
    parts: Vec<(Part, Clock)>,
}

/// Checks every host of the run's parts and sets the start; the error is one line naming the
/// first host that failed.
pub fn prepare(hosts: &Hosts, lg: &loadgen::Options) -> Result<Launch, String> {
    let parts = split(&hosts.agents, lg.connections, lg.idle);
    let clocks: Vec<Result<Clock, String>> = thread::scope(|s| {
        let checks: Vec<_> = parts
            .iter()
            .map(|p| s.spawn(|| check(hosts, &p.host)))
            .collect();
        checks
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|_| Err("its check panicked".into()))
            })
            .collect()
    });
    let mut checked = Vec::new();
    for (i, (part, clock)) in parts.into_iter().zip(clocks).enumerate() {
        let named = |why: String| format!("agent {} ({}): {why}", part.host, i + 1);
        let clock = clock.map_err(named)?;
        if let Some(why) = clock_refused(&clock) {
            return Err(named(why));
        }
        checked.push((part, clock));
    }
    let slowest = checked
        .iter()
        .map(|(_, c)| c.launch)
        .max()
        .unwrap_or_default();
    let margin = 2 * slowest + SETUP_MARGIN;
    Ok(Launch {
        start: Instant::now() + margin,
        start_wall: SystemTime::now() + margin,
        parts: checked,
    })
}

/// loadgen's arguments for `part` of the run `lg`, starting at `start_at_ns` (its host's
/// clock).
pub fn agent_args(
    lg: &loadgen::Options,
    part: &Part,
    start_at_ns: u64,
    cpus: &[usize],
    shared: bool,
) -> Vec<String> {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let mut args: Vec<String> = vec!["loadgen".into(), "--agent".into(), "--quiet".into()];
    let mut flag = |name: &str, value: String| {
        args.push(format!("--{name}"));
        args.push(value);
    };
    flag("addr", lg.target.clone());
    flag("start-at", start_at_ns.to_string());
    flag("conn-offset", part.offset.to_string());
    flag("conn-total", lg.connections.to_string());
    flag("connections", part.connections.to_string());
    flag("idle", part.idle.to_string());
    flag("duration", ms(lg.duration));
    flag("warmup", ms(lg.warmup));
    flag("size", lg.size.to_string());
    flag("pipeline", lg.pipeline.to_string());
    flag("timeout", ms(lg.timeout));
    flag("hlog-interval", ms(lg.hlog_interval));
    if let Some(rate) = lg.rate {
        flag("rate", rate.to_string());
    }
    if let Some(work) = &lg.work {
        flag("work", work.spec.clone());
        flag("seed", lg.seed.to_string());
    }
    if let Some(rate) = lg.handshake_rate {
        let share = rate * part.connections as f64 / lg.connections as f64;
        flag("handshake-rate", share.to_string());
    }
    if !cpus.is_empty() {
        flag("cpus", loadgen::format_cpus(cpus));
    }
    if let Some(tls) = &lg.tls {
        args.push("--tls".into());
        match &tls.trust {
            loadgen::Trust::Ca(ca) => args.extend(["--tls-ca".into(), ca.display().to_string()]),
            loadgen::Trust::Insecure => args.push("--tls-insecure".into()),
        }
        if tls.resume {
            args.push("--tls-resume".into());
        }
    }
    for (on, name) in [
        (lg.churn, "--churn"),
        (lg.udp, "--udp"),
        (shared, "--share-cpus"),
    ] {
        if on {
            args.push(name.into());
        }
    }
    args
}

/// What one agent sent back.
struct Returned {
    report: Report,
    hlog: Vec<u8>,
}

/// Runs the agents of `launch` and merges what they return into `lg.json` and `lg.hlog`
/// (each agent's own beside them, `.agent-N.json` and `.agent-N.hlog`); returns the merged
/// report, or why the run failed, and each agent's record.
pub fn run(
    hosts: &Hosts,
    launch: &Launch,
    lg: &loadgen::Options,
) -> (anyhow::Result<Report>, Vec<AgentRun>) {
    let cpus: Vec<Vec<usize>> = launch
        .parts
        .iter()
        .map(
            |(part, _)| match (&hosts.agent_cpus, hosts.is_local(&part.host)) {
                (Some(cpus), _) => cpus.clone(),
                (None, true) => lg.cpus.clone(),
                (None, false) => Vec::new(),
            },
        )
        .collect();
    let shared = sharing(launch, &cpus);
    let stop_all = AtomicBool::new(false);
    let results: Vec<Result<Returned, String>> = thread::scope(|s| {
        let (failed_tx, failed_rx) = mpsc::channel::<()>();
        let agents: Vec<_> = launch
            .parts
            .iter()
            .zip(&cpus)
            .zip(&shared)
            .map(|(((part, clock), cpus), &shared)| {
                let start_at = (loadgen::unix_ns(launch.start_wall) as i128
                    + clock.offset_ns as i128)
                    .max(0) as u64;
                let args = agent_args(lg, part, start_at, cpus, shared);
                let failed_tx = failed_tx.clone();
                let stop_all = &stop_all;
                s.spawn(move || {
                    let result = run_agent(hosts, &part.host, &args, lg, stop_all);
                    if result.is_err() {
                        let _ = failed_tx.send(());
                    }
                    result
                })
            })
            .collect();
        drop(failed_tx);
        // The first failure stops the rest: their stdin is closed, and they exit at once.
        if failed_rx.recv().is_ok() {
            stop_all.store(true, Ordering::SeqCst);
        }
        agents
            .into_iter()
            .map(|a| {
                a.join()
                    .unwrap_or_else(|_| Err("its thread panicked".into()))
            })
            .collect()
    });
    finish(launch, lg, &cpus, &shared, results)
}

/// Whether each agent shares its CPUs with another: same machine, same CPUs (or unpinned).
fn sharing(launch: &Launch, cpus: &[Vec<usize>]) -> Vec<bool> {
    let key = |i: usize| (&launch.parts[i].1.machine, &cpus[i]);
    (0..cpus.len())
        .map(|i| (0..cpus.len()).any(|j| j != i && key(j) == key(i)))
        .collect()
}

/// One agent's run: starts it, reads its two frames, and checks how it ended. Its stdin is
/// kept open until then, or closed early once `stop` is set.
fn run_agent(
    hosts: &Hosts,
    host: &str,
    args: &[String],
    lg: &loadgen::Options,
    stop: &AtomicBool,
) -> Result<Returned, String> {
    let mut child = hosts.spawn(host, args)?;
    let streams = Streams::of(&mut child);
    let stdin = child.stdin.take();
    let deadline =
        Instant::now() + lg.warmup + lg.duration + 2 * lg.timeout + END_GRACE + SETUP_MARGIN;
    let mut frames: Vec<(String, Vec<u8>)> = Vec::new();
    while frames.len() < 2 {
        if stop.load(Ordering::SeqCst) {
            drop(stdin);
            return Err(format!(
                "{STOPPED}: {}",
                ended(child, streams, Duration::from_secs(2))
            ));
        }
        match streams.frames.recv_timeout(Duration::from_millis(50)) {
            Ok(Ok(frame)) => frames.push(frame),
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Ok(Err(e)) => return Err(format!("unreadable output: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                drop(stdin);
                let how = ended(child, streams, Duration::from_secs(2));
                return Err(format!("no report by the end of the run; stopped: {how}"));
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                drop(stdin);
                let how = ended(child, streams, Duration::from_secs(5));
                return Err(format!("exited before its report ({how})"));
            }
        }
    }
    drop(stdin);
    let how = ended(child, streams, Duration::from_secs(5));
    let mut report = None;
    let mut hlog = None;
    for (kind, body) in frames {
        match kind.as_str() {
            "report" => report = serde_json::from_slice::<Report>(&body).ok(),
            "hlog" => hlog = Some(body),
            _ => {}
        }
    }
    match (report, hlog) {
        (Some(report), Some(hlog)) => match (report.implausible(), report.failure()) {
            (Some(why), _) => Err(format!("{why}, which no run can have ({how})")),
            (None, Some(why)) => Err(format!("{why} ({how})")),
            (None, None) => Ok(Returned { report, hlog }),
        },
        _ => Err(format!("no readable report and interval log ({how})")),
    }
}

/// Writes each agent's files, judges their starts and merges them; the error names the first
/// agent that failed or started late.
fn finish(
    launch: &Launch,
    lg: &loadgen::Options,
    cpus: &[Vec<usize>],
    shared: &[bool],
    results: Vec<Result<Returned, String>>,
) -> (anyhow::Result<Report>, Vec<AgentRun>) {
    let mut records = Vec::new();
    let mut failure: Option<String> = None;
    let mut stopped: Option<String> = None;
    let mut logs: Vec<(PathBuf, loadgen::hlog::Log)> = Vec::new();
    let start_ns = loadgen::unix_ns(launch.start_wall) as i128;
    for (i, ((part, clock), result)) in launch.parts.iter().zip(results).enumerate() {
        let mut record = AgentRun::new(&part.host, part.offset, part.connections, part.idle);
        record.clock_offset_ms = Some(clock.offset_ns as f64 / 1e6);
        record.machine = Some(clock.machine.clone());
        record.cpus = (!cpus[i].is_empty()).then(|| loadgen::format_cpus(&cpus[i]));
        record.shares_cpus = shared[i];
        let named = |why: &str| format!("agent {} ({}): {why}", part.host, i + 1);
        match result {
            Ok(returned) => {
                let r = &returned.report;
                let late_ns = r
                    .started_at_ns
                    .map(|s| s as i128 - clock.offset_ns as i128 - start_ns);
                record.start_late_ms = late_ns.map(|ns| ns as f64 / 1e6);
                record.messages = Some(r.messages);
                record.throughput_msgs_per_s = Some(r.throughput_msgs_per_s);
                record.loadgen_cpu_ratio = Some(r.loadgen_cpu_ratio);
                record.loadgen_saturated = Some(r.loadgen_saturated);
                if let Some(ns) = late_ns.filter(|&ns| ns > INTERVAL.as_nanos() as i128) {
                    let why = format!(
                        "started {:.1} ms after the common start, over one interval ({} ms): its intervals do not line up with the others'",
                        ns as f64 / 1e6,
                        INTERVAL.as_millis()
                    );
                    record.failure = Some(why.clone());
                    failure.get_or_insert(named(&why));
                }
                match keep(lg, i + 1, &returned) {
                    Ok(kept) => logs.push(kept),
                    Err(e) => {
                        failure.get_or_insert(named(&format!("{e:#}")));
                    }
                }
            }
            Err(why) => {
                record.failure = Some(why.clone());
                // An agent stopped because another failed is not why the run failed.
                if !why.starts_with(STOPPED) {
                    failure.get_or_insert(named(&why));
                } else {
                    stopped.get_or_insert(named(&why));
                }
            }
        }
        records.push(record);
    }
    let failure = failure.or(stopped);
    if let Some(why) = failure {
        return (Err(anyhow!(why)), records);
    }
    (merge(lg, logs, &records), records)
}

/// loadgen's CPU use over the agents: on each machine, the agents pinned to the same CPUs add
/// up (they share those cores); the busiest such group counts, as one loadgen's ratio does.
pub fn shared_cpu_ratio(records: &[AgentRun]) -> f64 {
    let mut groups: std::collections::BTreeMap<(Option<&str>, Option<&str>), f64> =
        Default::default();
    for r in records {
        let key = (r.machine.as_deref(), r.cpus.as_deref());
        *groups.entry(key).or_default() += r.loadgen_cpu_ratio.unwrap_or(0.0);
    }
    groups.into_values().fold(0.0, f64::max)
}

/// Writes an agent's report and interval log beside the run's own files; the log's path, and
/// the log read back.
fn keep(
    lg: &loadgen::Options,
    n: usize,
    returned: &Returned,
) -> anyhow::Result<(PathBuf, loadgen::hlog::Log)> {
    let beside = |path: &Option<PathBuf>, ext: &str| -> anyhow::Result<PathBuf> {
        let path = path.as_ref().context("no file for the run")?;
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        Ok(path.with_file_name(format!("{stem}.agent-{n}.{ext}")))
    };
    let json = beside(&lg.json, "json")?;
    let text = serde_json::to_string_pretty(&returned.report)? + "\n";
    std::fs::write(&json, text).with_context(|| format!("cannot write {}", json.display()))?;
    let hlog = beside(&lg.hlog, "hlog")?;
    std::fs::write(&hlog, &returned.hlog)
        .with_context(|| format!("cannot write {}", hlog.display()))?;
    // Read back once, here, for the merge: a log that cannot be (a histogram that claims more
    // than it holds, a report no run can have) fails the run naming its agent.
    let log = loadgen::hlog::read(&hlog).context("its interval log")?;
    Ok((hlog, log))
}

/// The agents' logs (their paths, and each read back) merged into the run's report and
/// interval log.
fn merge(
    lg: &loadgen::Options,
    logs: Vec<(PathBuf, loadgen::hlog::Log)>,
    records: &[AgentRun],
) -> anyhow::Result<Report> {
    let (Some(json), Some(hlog)) = (&lg.json, &lg.hlog) else {
        bail!("no files for the run");
    };
    let (paths, logs): (Vec<PathBuf>, Vec<loadgen::hlog::Log>) = logs.into_iter().unzip();
    let mut report = loadgen::hlog::merge_logs(&logs)?;
    // Four decimals, as loadgen's own.
    report.loadgen_cpu_ratio = (shared_cpu_ratio(records) * 1e4).round() / 1e4;
    report.loadgen_saturated = report.loadgen_cpu_ratio > loadgen::report::SATURATION;
    loadgen::hlog::write_merged(&paths, hlog, &report)?;
    let text = serde_json::to_string_pretty(&report)? + "\n";
    std::fs::write(json, text).with_context(|| format!("cannot write {}", json.display()))?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn connections_are_split_evenly_and_idle_ones_go_with_active_ones() {
        let parts = split(&hosts(&["a", "b", "c"]), 16, 1000);
        let got: Vec<_> = parts
            .iter()
            .map(|p| (p.offset, p.connections, p.idle))
            .collect();
        assert_eq!(got, [(0, 6, 334), (6, 5, 333), (11, 5, 333)]);
        let one = split(&hosts(&["a", "b"]), 1, 5000);
        assert_eq!(one.len(), 1, "a second agent would have no connection");
        assert_eq!((one[0].connections, one[0].idle), (1, 5000));
    }

    #[test]
    fn a_clock_off_by_more_than_one_interval_is_refused() {
        let clock = |offset_ms: i64, rtt_ms: u64| Clock {
            offset_ns: offset_ms * 1_000_000,
            rtt: Duration::from_millis(rtt_ms),
            launch: Duration::ZERO,
            machine: String::new(),
        };
        assert_eq!(clock_refused(&clock(3, 1)), None);
        assert_eq!(clock_refused(&clock(-99, 1)), None);
        let why = clock_refused(&clock(-250, 1)).expect("refused");
        assert!(why.contains("-250.0 ms") && why.contains("NTP"), "{why}");
        assert!(clock_refused(&clock(0, 300)).is_some());
    }
}
