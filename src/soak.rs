//! `echobench soak`: a long run that looks for leaks. Every model that serves any number of
//! clients at once runs at the same time for `--minutes`, each under a steady open-loop load
//! with churn and idle connections beside it. Each server's process tree is sampled once a
//! second (RSS, descriptors, threads); a server fails if any echo is lost or corrupted, or if
//! over the second half its RSS, descriptors or threads grow faster than
//! max(1 KiB/s or one per 10 minutes, 2 % of their mean per 10 minutes). Runs shorter than
//! [`VERDICT_AFTER`] check echo integrity only: their slopes say nothing.
//!
//! It stands beside the comparison's stages, not among them: it starts servers with [`run`]'s
//! machinery and draws with [`render`]'s charts, and writes its own folder.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;
use echo_server::models::ClientsAtOnce;
use echo_server::Model;
use serde::Serialize;

use crate::render::chart::{self, Series, XAxis};
use crate::render::palette::{Marker, Style};
use crate::run::{machine, procfs, server};
use crate::schema::ServerSpec;
use crate::summary::memory::slope;
use plotters::style::RGBColor;

/// Open-loop rate per server, messages/s, over [`CONNECTIONS`] connections.
pub const RATE: f64 = 1000.0;
/// Active connections per server.
pub const CONNECTIONS: usize = 8;
/// Idle connections held per server for the whole soak.
pub const IDLE: usize = 100;
/// One churn connection (connect, echo, half-close, EOF) per server this often.
pub const CHURN_EVERY: Duration = Duration::from_millis(20);
/// How often each server's process tree is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Soaks shorter than this check echo integrity only, with no verdict on growth.
pub const VERDICT_AFTER: Duration = Duration::from_secs(10 * 60);
/// Connect, read and write timeout of the churn connections.
const CHURN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a soak is told.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// The servers, all soaked at once.
    pub servers: Vec<ServerSpec>,
    /// How long.
    pub duration: Duration,
    /// Where the series, plots and summary go.
    pub out: PathBuf,
    /// CPUs every server is pinned to.
    pub server_cpus: Vec<usize>,
    /// CPUs loadgen and the churn clients run on.
    pub loadgen_cpus: Vec<usize>,
}

/// The models a soak runs by default: the TCP models that serve any number of clients at once
/// (an iterative server or a pool pinned to one core would only starve the load).
pub fn soak_models() -> Vec<ServerSpec> {
    Model::of(echo_server::Transport::Tcp)
        .filter(|m| m.info().clients_at_once == ClientsAtOnce::Any)
        .map(|m| ServerSpec::model(m.name()))
        .collect()
}

/// One sample of a server's process tree.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Point {
    /// Seconds since the server started.
    pub t_s: f64,
    /// Resident memory of the tree, KiB.
    pub rss_kib: u64,
    /// Open descriptors of the tree.
    pub fds: u64,
    /// Threads of the tree.
    pub threads: u64,
    /// Processes of the tree.
    pub processes: u64,
}

/// How one quantity moved over the second half.
#[derive(Debug, Clone, Serialize)]
pub struct Trend {
    /// `rss_kib`, `fds` or `threads`.
    pub what: &'static str,
    /// Mean over the second half.
    pub mean: f64,
    /// Least-squares slope over the second half, per second.
    pub slope_per_s: f64,
    /// The most growth allowed, per second.
    pub limit_per_s: f64,
}

/// A server's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Every echo intact and nothing grew.
    Pass,
    /// An echo was lost or corrupted, or something grew.
    Fail,
    /// Echoes intact; too short for a verdict on growth.
    NoVerdict,
}

/// What the soak found for one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSoak {
    /// Model name.
    pub server: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it failed, one reason per entry; empty when it did not.
    pub reasons: Vec<String>,
    /// Open-loop messages echoed intact.
    pub messages: u64,
    /// loadgen's errors: any is a lost or corrupted echo.
    pub errors: loadgen::Errors,
    /// Churn connections whose echo came back intact before the server's EOF.
    pub churned: u64,
    /// Churn connections that failed, and the first failure.
    pub churn_failed: u64,
    /// The first churn failure.
    pub first_churn_error: Option<String>,
    /// RSS, descriptors and threads over the second half.
    pub trends: Vec<Trend>,
    /// Samples taken.
    pub samples: usize,
}

/// Soaks every server of `opts` at once and writes `soak.json`, `soak.md`, and per server a
/// `<model>.csv` series and a `<model>.svg` plot into `opts.out`.
pub fn soak(opts: &SoakOptions) -> anyhow::Result<Vec<ServerSoak>> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create --out {}", opts.out.display()))?;
    loadgen::raise_fd_limit();
    server::pin_process(&opts.loadgen_cpus)?;
    let exe = std::env::current_exe().context("cannot find the echobench binary")?;
    // What ran, taken now: the checkout may move on during a long soak.
    let started = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let commit = machine::git_commit().unwrap_or_else(|| "unknown".into());
    let outcomes: Vec<anyhow::Result<(ServerSoak, Vec<Point>)>> = thread::scope(|s| {
        let handles: Vec<_> = opts
            .servers
            .iter()
            .map(|spec| s.spawn(|| soak_one(&exe, spec, opts)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("panicked")))
            })
            .collect()
    });
    let mut found = Vec::new();
    for (spec, outcome) in opts.servers.iter().zip(outcomes) {
        let (soak, points) = outcome.with_context(|| format!("{}: soak failed", spec.label()))?;
        write_series(&opts.out.join(format!("{}.csv", spec.model)), &points)?;
        write_plot(&opts.out, &spec.model, &points)?;
        found.push(soak);
    }
    let json = serde_json::to_string_pretty(&found)? + "\n";
    std::fs::write(opts.out.join("soak.json"), json).context("cannot write soak.json")?;
    std::fs::write(
        opts.out.join("soak.md"),
        markdown(opts, &started, &commit, &found),
    )
    .context("cannot write soak.md")?;
    Ok(found)
}

/// One server's soak: start it, load it, sample it, stop it, judge it.
fn soak_one(
    exe: &Path,
    spec: &ServerSpec,
    opts: &SoakOptions,
) -> anyhow::Result<(ServerSoak, Vec<Point>)> {
    let log = opts.out.join(format!("{}.server.log", spec.model));
    let mut srv = server::Server::start(exe, spec, &opts.server_cpus, &log)?;
    let mut lg = loadgen::Options::new(srv.addr);
    lg.connections = CONNECTIONS;
    lg.rate = Some(RATE);
    lg.idle = IDLE;
    lg.warmup = Duration::ZERO;
    lg.duration = opts.duration;
    lg.threads = Some(1);
    lg.cpus = opts.loadgen_cpus.clone();
    let stop = AtomicBool::new(false);
    let pid = srv.pid();
    let (report, points, churn) = thread::scope(|s| {
        let sampler = s.spawn(|| sample_until(pid, &stop, opts.duration));
        let churner = s.spawn(|| churn_until(srv.addr, &stop));
        let report = loadgen::run(&lg);
        stop.store(true, Ordering::Relaxed);
        let points = sampler.join().unwrap_or_default();
        let churn = churner
            .join()
            .unwrap_or((0, 1, Some("churn thread panicked".into())));
        (report, points, churn)
    });
    let stopped = srv.stop();
    server::remove_log_if_clean(&log);
    let report = report?;
    let mut soak = judge(spec, &report, churn, &points, opts.duration);
    // A built-in model that stops slowly, exits other than 0 or is killed breaks its contract.
    let troubles = stopped.notes.into_iter().chain(stopped.failure);
    for trouble in troubles.filter(|t| !t.starts_with("server took")) {
        soak.verdict = Verdict::Fail;
        soak.reasons.push(format!("server stop: {trouble}"));
    }
    Ok((soak, points))
}

/// Samples `pid`'s tree every [`SAMPLE_EVERY`] for `duration` (not during loadgen's closing
/// drain, which would show as a fall), or until `stop`.
fn sample_until(pid: u32, stop: &AtomicBool, duration: Duration) -> Vec<Point> {
    let start = Instant::now();
    let mut tree = procfs::Tree::of_session(pid);
    let mut points = Vec::new();
    let mut next = start;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < duration {
        let s = procfs::sample(&mut tree, true);
        points.push(Point {
            t_s: start.elapsed().as_secs_f64(),
            rss_kib: s.rss_kib,
            fds: s.fds.unwrap_or(0),
            threads: s.threads,
            processes: s.processes,
        });
        next += SAMPLE_EVERY;
        // Short naps, so that the end of the soak is seen at once.
        while !stop.load(Ordering::Relaxed) && Instant::now() < next {
            thread::sleep(Duration::from_millis(50));
        }
    }
    points
}

/// A connection per [`CHURN_EVERY`] until `stop`: (intact, failed, first failure).
fn churn_until(addr: SocketAddr, stop: &AtomicBool) -> (u64, u64, Option<String>) {
    let (mut ok, mut failed, mut first) = (0, 0, None);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match churn_once(addr, format!("churn {n}\n").as_bytes()) {
            Ok(()) => ok += 1,
            Err(e) => {
                failed += 1;
                first.get_or_insert(e);
            }
        }
        n += 1;
        thread::sleep(CHURN_EVERY);
    }
    (ok, failed, first)
}

/// Connect, send, half-close, read the echo to the server's EOF, compare.
fn churn_once(addr: SocketAddr, msg: &[u8]) -> Result<(), String> {
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let mut stream =
        TcpStream::connect_timeout(&addr, CHURN_TIMEOUT).map_err(|e| io("connect", e))?;
    stream
        .set_read_timeout(Some(CHURN_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(CHURN_TIMEOUT)))
        .map_err(|e| io("timeouts", e))?;
    stream.write_all(msg).map_err(|e| io("write", e))?;
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| io("half-close", e))?;
    let mut echo = Vec::new();
    stream.read_to_end(&mut echo).map_err(|e| io("read", e))?;
    if echo != msg {
        return Err(format!(
            "echo of {} bytes came back as {}",
            msg.len(),
            echo.len()
        ));
    }
    Ok(())
}

/// The verdict on one server from its load report, churn and samples.
fn judge(
    spec: &ServerSpec,
    report: &loadgen::Report,
    churn: (u64, u64, Option<String>),
    points: &[Point],
    duration: Duration,
) -> ServerSoak {
    let mut reasons = Vec::new();
    if report.errors.total() > 0 {
        reasons.push(format!("loadgen errors: {:?}", report.errors));
    }
    if churn.1 > 0 {
        reasons.push(format!(
            "{} churn connections failed (first: {})",
            churn.1,
            churn.2.as_deref().unwrap_or("?")
        ));
    }
    let trends = trends(points, duration.as_secs_f64());
    let judged = duration >= VERDICT_AFTER;
    if judged {
        for t in trends.iter().filter(|t| t.slope_per_s > t.limit_per_s) {
            reasons.push(format!(
                "{} grows {}/min over the second half (limit {}/min)",
                t.what,
                chart::short(t.slope_per_s * 60.0),
                chart::short(t.limit_per_s * 60.0)
            ));
        }
    }
    let verdict = match (reasons.is_empty(), judged) {
        (false, _) => Verdict::Fail,
        (true, true) => Verdict::Pass,
        (true, false) => Verdict::NoVerdict,
    };
    ServerSoak {
        server: spec.label(),
        verdict,
        reasons,
        messages: report.messages,
        errors: report.errors.clone(),
        churned: churn.0,
        churn_failed: churn.1,
        first_churn_error: churn.2,
        trends,
        samples: points.len(),
    }
}

/// RSS, descriptors and threads over the second half of a soak of `seconds`: mean, slope and
/// the growth allowed.
pub fn trends(points: &[Point], seconds: f64) -> Vec<Trend> {
    let second_half: Vec<&Point> = points.iter().filter(|p| p.t_s >= seconds / 2.0).collect();
    // Name, value, and the least growth per second that counts as growth.
    type Quantity = (&'static str, fn(&Point) -> u64, f64);
    let quantities: [Quantity; 3] = [
        // At least 1 KiB/s for memory, one per 10 minutes for counts.
        ("rss_kib", |p| p.rss_kib, 1.0),
        ("fds", |p| p.fds, 1.0 / 600.0),
        ("threads", |p| p.threads, 1.0 / 600.0),
    ];
    quantities
        .into_iter()
        .map(|(what, value, floor)| {
            let xy: Vec<(f64, f64)> = second_half
                .iter()
                .map(|p| (p.t_s, value(p) as f64))
                .collect();
            let mean = xy.iter().map(|p| p.1).sum::<f64>() / xy.len().max(1) as f64;
            Trend {
                what,
                mean,
                slope_per_s: slope(&xy).unwrap_or(0.0),
                limit_per_s: floor.max(0.02 * mean / 600.0),
            }
        })
        .collect()
}

fn write_series(path: &Path, points: &[Point]) -> anyhow::Result<()> {
    let mut csv = String::from("t_s,rss_kib,fds,threads,processes\n");
    for p in points {
        let _ = writeln!(
            csv,
            "{:.1},{},{},{},{}",
            p.t_s, p.rss_kib, p.fds, p.threads, p.processes
        );
    }
    std::fs::write(path, csv).with_context(|| format!("cannot write {}", path.display()))
}

/// `<model>.svg`: the server's RSS (MiB), descriptors and threads (hundreds) against minutes.
fn write_plot(out: &Path, model: &str, points: &[Point]) -> anyhow::Result<()> {
    let line = |name: &str, (r, g, b): (u8, u8, u8), value: fn(&Point) -> f64| {
        let style = Style {
            colour: RGBColor(r, g, b),
            marker: Marker::Circle,
            dashed: false,
            family: None,
        };
        Series::new(
            name,
            style,
            points.iter().map(|p| (p.t_s / 60.0, value(p))).collect(),
        )
    };
    let series = [
        line("RSS, MiB", (0, 114, 178), |p| p.rss_kib as f64 / 1024.0),
        line("descriptors, hundreds", (230, 159, 0), |p| {
            p.fds as f64 / 100.0
        }),
        line("threads, hundreds", (0, 158, 115), |p| {
            p.threads as f64 / 100.0
        }),
    ];
    let svg = chart::lines(
        &format!("{model}: soak"),
        "minutes",
        "MiB / hundreds",
        &series,
        XAxis::Linear,
    )
    .map_err(|e| anyhow::anyhow!("cannot draw {model}.svg: {e}"))?;
    let path = out.join(format!("{model}.svg"));
    std::fs::write(&path, svg).with_context(|| format!("cannot write {}", path.display()))
}

/// `soak.md`: what ran, on what, and the verdict per server.
pub fn markdown(opts: &SoakOptions, started: &str, commit: &str, found: &[ServerSoak]) -> String {
    let mut md = String::from("# echobench soak\n\n");
    let _ = writeln!(
        md,
        "{} minutes from {started} on `{}`, commit `{commit}`. All servers at once, pinned to CPUs {}; \
         loadgen and the churn clients on CPUs {}. Per server: open loop at {RATE} msgs/s over \
         {CONNECTIONS} connections (64 B), {IDLE} idle connections, a churn connection every \
         {} ms; the process tree sampled every second. A server fails on any lost or corrupted \
         echo, or when RSS, descriptors or threads grow over the second half by more than \
         max(1 KiB/s or one per 10 min, 2 % of their mean per 10 min){}.\n",
        opts.duration.as_secs() / 60,
        machine::hostname(),
        loadgen::format_cpus(&opts.server_cpus),
        loadgen::format_cpus(&opts.loadgen_cpus),
        CHURN_EVERY.as_millis(),
        if opts.duration < VERDICT_AFTER {
            "; this run was too short for that verdict and checks echo integrity only"
        } else {
            ""
        },
    );
    md.push_str(
        "| server | verdict | messages | churned | errors | RSS mean, growth/min | descriptors mean, growth/min | threads mean, growth/min |\n",
    );
    md.push_str("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for s in found {
        let trend = |i: usize| {
            s.trends.get(i).map_or("—".to_owned(), |t| {
                format!(
                    "{} / {}",
                    chart::short(t.mean),
                    chart::short(t.slope_per_s * 60.0)
                )
            })
        };
        let verdict = match s.verdict {
            Verdict::Pass => "pass".to_owned(),
            Verdict::NoVerdict => "no verdict (short)".to_owned(),
            Verdict::Fail => format!("**fail**: {}", s.reasons.join("; ")),
        };
        let _ = writeln!(
            md,
            "| {} | {verdict} | {} | {} | {} | {} KiB | {} | {} |",
            s.server,
            s.messages,
            s.churned,
            s.errors.total() + s.churn_failed,
            trend(0),
            trend(1),
            trend(2),
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(f: impl Fn(f64) -> u64) -> Vec<Point> {
        (0..600)
            .map(|t| Point {
                t_s: t as f64,
                rss_kib: f(t as f64),
                fds: 120,
                threads: 3,
                processes: 1,
            })
            .collect()
    }

    #[test]
    fn a_flat_series_is_within_its_limits_and_a_leak_is_not() {
        let flat = trends(&points(|t| 10_000 + (t as u64 % 7)), 600.0);
        assert!(
            flat.iter().all(|t| t.slope_per_s <= t.limit_per_s),
            "{flat:?}"
        );
        // 2 KiB/s: over the 1 KiB/s floor and over 2 % of ~11 MiB per 10 minutes.
        let leak = trends(&points(|t| 10_000 + 2 * t as u64), 600.0);
        assert!(leak[0].slope_per_s > leak[0].limit_per_s, "{leak:?}");
        assert!((leak[0].slope_per_s - 2.0).abs() < 1e-6);
    }

    #[test]
    fn the_default_soak_leaves_out_servers_that_serve_a_few_clients_at_a_time() {
        let names: Vec<String> = soak_models().into_iter().map(|s| s.model).collect();
        assert!(names.contains(&"mio".to_owned()));
        assert!(!names.contains(&"blocking".to_owned()));
        assert!(!names.contains(&"thread-pool".to_owned()));
    }
}
