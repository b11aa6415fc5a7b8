//! A server on another host (`compare --server-host HOST --server-addr ADDR`), run there by
//! `echobench serve --report` through the agents' launcher: it starts the server as `compare`
//! does here (a session of its own, pinned, ready at its `listening on` line or a probe echo),
//! relays the `listening on` line, answers requests for `/proc` samples of the server's
//! session on stdout, one JSON line each, and stops the server when stdin ends (ssh without a
//! terminal delivers no SIGTERM) with one last line saying how it stopped.
//!
//! Its first line says which echobench it is (`{"hello":{...}}`: a server host that runs
//! another version is refused, as an agent's is); lines a launcher prints before it (a banner)
//! are read past. Its server's log is kept in a private temporary directory, removed however
//! it stops (stdin's end, `stop`, SIGTERM, SIGINT or SIGHUP).
//!
//! Requests, one line each: `sample full`, `sample peak`, `ticks`, `check`, `stop`.
//!
//! Everything the server host sends is input: lines are read as bytes and bounded, and a reply
//! that no server can have given (a negative stop time, counts beyond any machine's) fails the
//! run with one line naming the host.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitCode};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};

use loadgen::report::MAX_COUNT;

use super::procfs::{self, Sample};
use super::server::{self, Server, Stopped};
use crate::plan::Hosts;
use crate::schema::{ExternalServer, ServerSpec};

/// How long a reply to a sample request may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a remote server may take to be ready, the launch included.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The version of `serve --report`'s lines.
pub const PROTOCOL: u32 = 1;

/// The longest line read from a server host (its last line carries the server's log).
const MAX_REPLY: usize = 4 << 20;

/// The most of the server's log a server host sends back: its last bytes.
const MAX_LOG: usize = 1 << 20;

/// The longest stop a server host may report: far beyond the grace it is given.
const MAX_STOP: Duration = Duration::from_secs(3600);

/// The most notes a server host's reply may carry, and the longest kept.
const MAX_NOTES: usize = 16;
const MAX_NOTE: usize = 500;

/// One reply of `serve --report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// The first line: which echobench answers.
    Hello(ServeHello),
    /// `sample full` and `sample peak`.
    Sample(Sample),
    /// `ticks`: the session's CPU time in clock ticks.
    Ticks(u64),
    /// `check`: what went wrong with the server while it ran.
    Check(Vec<String>),
    /// The last line: how the server stopped, and what it wrote to stderr.
    Stopped(StopReport),
}

/// Which echobench a server host runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServeHello {
    /// [`PROTOCOL`].
    pub protocol: u32,
    /// echobench's version.
    pub version: String,
}

impl ServeHello {
    /// This build's.
    pub fn now() -> ServeHello {
        ServeHello {
            protocol: PROTOCOL,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// How a remote server stopped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StopReport {
    /// From SIGTERM to the last process gone, s.
    pub took_s: f64,
    /// What a reader should know.
    pub notes: Vec<String>,
    /// Why the run cannot stand.
    pub failure: Option<String>,
    /// What the server wrote to its log (stderr, and stdout after its `listening on` line).
    pub log: String,
}

/// What `serve --report` runs.
pub enum Served {
    /// A built-in model, with its arguments.
    Model(ServerSpec),
    /// A user's server (`--external JSON`: its definition as `compare` has it).
    External(ExternalServer),
}

/// `echobench serve --report`: says which echobench it is, starts `served` listening on
/// `addr`, pinned to `cpus`, then answers requests until stdin ends (or a stop signal comes).
/// Exit 0 when the server ran and stopped, 1 when it did not start (one line on stderr).
pub fn supervise(served: &Served, addr: &str, cpus: &[usize]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    if send(&mut out, &Reply::Hello(ServeHello::now())).is_err() {
        return ExitCode::from(1);
    }
    let requests = requests();
    // The server's log: in a directory of its own, made exclusively under an unpredictable
    // name (nothing planted there can be followed), removed when this function returns.
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o700);
    let made = tempfile::Builder::new()
        .prefix("echobench-serve-")
        .permissions(private)
        .tempdir();
    let dir = match made {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!(
                "echobench serve: cannot make a temporary directory for the server's log: {e}"
            );
            return ExitCode::from(1);
        }
    };
    let log = dir.path().join("server.log");
    let started = match served {
        Served::Model(spec) => std::env::current_exe()
            .context("cannot find the echobench binary")
            .and_then(|exe| Server::start_on(&exe, spec, cpus, &log, addr)),
        Served::External(ext) => addr
            .parse::<SocketAddr>()
            .map_err(|e| anyhow!("--addr {addr}: {e}"))
            .and_then(|a| Server::start_external_on(ext, a.ip(), cpus, &log)),
    };
    let mut server = match started {
        Ok(server) => server,
        Err(e) => {
            eprintln!("echobench serve: the server did not start: {e:#}");
            return ExitCode::from(1);
        }
    };
    if writeln!(out, "{}", echo_server::listen::listening_line(server.addr))
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    answer(&mut server, &requests, &mut out);
    let stopped = server.stop();
    let mut notes = std::mem::take(&mut server.notes);
    notes.extend(stopped.notes);
    let report = StopReport {
        took_s: stopped.took.as_secs_f64(),
        notes,
        failure: stopped.failure,
        log: log_tail(&log),
    };
    drop(server);
    let _ = send(&mut out, &Reply::Stopped(report));
    drop(dir);
    ExitCode::SUCCESS
}

/// The last [`MAX_LOG`] bytes of the server's log, decoded lossily (read in bounded memory
/// however long the log), saying what was cut.
fn log_tail(log: &Path) -> String {
    let size = std::fs::metadata(log).map_or(0, |m| m.len());
    let tail = std::fs::File::open(log)
        .map_or_else(|_| String::new(), |f| loadgen::lines::tail(f, MAX_LOG));
    match size.saturating_sub(MAX_LOG as u64) {
        0 => tail,
        n => format!("[the log's first {n} bytes left out on the server host]\n{tail}"),
    }
}

/// The requests on stdin, line by line (lossily, bounded), on a channel that ends at stdin's
/// end or at SIGTERM, SIGINT or SIGHUP: each stops the server as stdin's end does.
fn requests() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let stdin_tx = tx.clone();
    thread::spawn(move || {
        loadgen::lines::each_line(std::io::stdin(), loadgen::lines::MAX_LINE, |line| {
            let _ = stdin_tx.send(line);
        });
        let _ = stdin_tx.send("stop".to_owned());
    });
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    if let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        thread::spawn(move || {
            if signals.forever().next().is_some() {
                let _ = tx.send("stop".to_owned());
            }
        });
    }
    rx
}

/// Answers `requests` until they end or say `stop`.
fn answer(server: &mut Server, requests: &mpsc::Receiver<String>, out: &mut impl Write) {
    let mut tree = procfs::Tree::of_session(server.pid());
    for line in requests.iter() {
        let reply = match line.trim() {
            "sample full" => Reply::Sample(procfs::sample(&mut tree, true)),
            "sample peak" => Reply::Sample(procfs::sample(&mut tree, false)),
            "ticks" => Reply::Ticks(procfs::cpu_ticks(&tree)),
            "check" => Reply::Check(server.check()),
            "stop" => break,
            other => Reply::Check(vec![format!("unknown request {other:?}")]),
        };
        if send(out, &reply).is_err() {
            break;
        }
    }
}

fn send(out: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    let line = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    writeln!(out, "{line}")?;
    out.flush()
}

/// The server of a run on another host, seen from here.
pub struct RemoteServer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Where the agents reach it.
    pub addr: SocketAddr,
    /// The host it runs on.
    pub host: String,
    /// The run's server log here.
    log: PathBuf,
    /// A reply that no server can have given: the run fails with it.
    implausible: Option<String>,
}

impl RemoteServer {
    /// Starts `served` on `host` through the fleet's launcher, listening on `addr`, pinned to
    /// `cpus` when given; waits for its hello (this very version) and its `listening on` line.
    /// The error names the host.
    pub fn start(
        hosts: &Hosts,
        host: &str,
        served: &Served,
        addr: &str,
        cpus: Option<&[usize]>,
        log: &Path,
    ) -> anyhow::Result<RemoteServer> {
        let mut args = vec!["serve".to_owned(), "--report".to_owned()];
        args.extend(["--addr".to_owned(), addr.to_owned()]);
        if let Some(cpus) = cpus {
            args.extend(["--cpus".to_owned(), loadgen::format_cpus(cpus)]);
        }
        match served {
            Served::Model(spec) => {
                args.push("--".to_owned());
                args.push(spec.model.clone());
                args.extend(spec.args.iter().cloned());
            }
            Served::External(ext) => {
                args.extend(["--external".to_owned(), serde_json::to_string(ext)?]);
            }
        }
        let mut child = hosts
            .spawn(host, &args)
            .map_err(|e| anyhow!("server host {host}: {e}"))?;
        // Its stderr goes to the run's log as it comes: any bytes, never held in memory, and
        // always drained.
        if let Some(mut stderr) = child.stderr.take() {
            let log = log.to_path_buf();
            thread::spawn(move || match server::append(&log) {
                Ok(mut file) => {
                    let _ = std::io::copy(&mut stderr, &mut file);
                }
                Err(_) => {
                    let _ = std::io::copy(&mut stderr, &mut std::io::sink());
                }
            });
        }
        let lines = read_lines(&mut child)?;
        let mut server = RemoteServer {
            stdin: child.stdin.take(),
            child,
            lines,
            addr: "0.0.0.0:0".parse()?,
            host: host.to_owned(),
            log: log.to_path_buf(),
            implausible: None,
        };
        server.addr = server.ready(addr)?;
        Ok(server)
    }

    /// Reads past a launcher's banner to the hello, checks its version, then returns the
    /// address of the `listening on` line (an unspecified IP replaced by `--server-addr`'s).
    fn ready(&mut self, asked: &str) -> anyhow::Result<SocketAddr> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut hello: Option<ServeHello> = None;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = match self.lines.recv_timeout(wait) {
                Ok(line) => line,
                Err(_) => {
                    let how = self.end_now();
                    bail!("server host {}: the server did not start: {how}", self.host);
                }
            };
            if let Ok(Reply::Hello(said)) = serde_json::from_str::<Reply>(&line) {
                if said != ServeHello::now() {
                    self.end_now();
                    bail!(
                        "server host {}: it runs echobench {} (serve protocol {}), this is {} ({})",
                        self.host,
                        said.version,
                        said.protocol,
                        env!("CARGO_PKG_VERSION"),
                        PROTOCOL
                    );
                }
                hello = Some(said);
                continue;
            }
            let Some(mut addr) = echo_server::listen::parse_listening(&line) else {
                // A launcher's banner, before the hello.
                continue;
            };
            if hello.is_none() {
                self.end_now();
                bail!(
                    "server host {}: its echobench did not say its version (one older than {}?); install this one there",
                    self.host,
                    env!("CARGO_PKG_VERSION")
                );
            }
            if addr.ip().is_unspecified() {
                if let Ok(asked) = asked.parse::<SocketAddr>() {
                    addr.set_ip(asked.ip());
                }
            }
            return Ok(addr);
        }
    }

    /// Kills the launcher at once; how it ended, with what the log says last.
    fn end_now(&mut self) -> String {
        drop(self.stdin.take());
        thread::sleep(Duration::from_millis(200));
        let _ = self.child.kill();
        let status = self.child.wait().map(server::said).unwrap_or_default();
        let said = loadgen::lines::read_lossy(&self.log);
        server::with_last_line(status, &said)
    }

    /// One request and its reply (lines that are no reply are read past).
    fn ask(&mut self, request: &str) -> anyhow::Result<Reply> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the server host's stdin is closed")?;
        writeln!(stdin, "{request}")?;
        stdin.flush()?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(wait)
                .map_err(|_| anyhow!("server host {}: no reply to {request:?}", self.host))?;
            if let Ok(reply) = serde_json::from_str::<Reply>(&line) {
                return Ok(reply);
            }
        }
    }

    /// Keeps the first reply no server can have given, to fail the run with.
    fn refuse(&mut self, why: String) {
        let named = format!("server host {}: {why}", self.host);
        self.implausible.get_or_insert(named);
    }

    /// A sample of the server's session there (an empty one when the host did not answer, or
    /// answered what no server's session can be).
    pub fn sample(&mut self, full: bool) -> Sample {
        let request = if full { "sample full" } else { "sample peak" };
        match self.ask(request) {
            Ok(Reply::Sample(sample)) => match implausible_sample(&sample) {
                None => sample,
                Some(why) => {
                    self.refuse(why);
                    Sample::default()
                }
            },
            _ => Sample::default(),
        }
    }

    /// The session's CPU time there, in clock ticks (0 when the host did not answer).
    pub fn cpu_ticks(&mut self) -> u64 {
        match self.ask("ticks") {
            Ok(Reply::Ticks(ticks)) if ticks > MAX_COUNT => {
                self.refuse(format!("a sample of {ticks} CPU ticks"));
                0
            }
            Ok(Reply::Ticks(ticks)) => ticks,
            _ => 0,
        }
    }

    /// What went wrong with the server while it ran.
    pub fn check(&mut self) -> Vec<String> {
        match self.ask("check") {
            Ok(Reply::Check(notes)) => bounded(notes),
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("{e:#}")],
        }
    }

    /// Ends its stdin, so that it stops the server, and reads how it did; its log is appended
    /// to the run's. A stop report that cannot be true, or an implausible reply earlier, fails
    /// the run naming the host.
    pub fn stop(&mut self) -> Stopped {
        drop(self.stdin.take());
        let grace = 2 * server::STOP_LIMIT + Duration::from_secs(20);
        let deadline = Instant::now() + grace;
        let mut report = None;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Ok(Reply::Stopped(r)) = serde_json::from_str::<Reply>(&line) {
                report = Some(r);
                break;
            }
        }
        if report.is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let Some(report) = report else {
            return Stopped {
                failure: Some(format!(
                    "server host {}: no word of how the server stopped",
                    self.host
                )),
                ..Stopped::default()
            };
        };
        let _ = append(&self.log, &report.log);
        let took = Duration::try_from_secs_f64(report.took_s)
            .ok()
            .filter(|&t| t <= MAX_STOP);
        if took.is_none() {
            self.refuse(format!(
                "a stop that took {} s, which no stop can",
                report.took_s
            ));
        }
        let failure = match self.implausible.take() {
            Some(why) => Some(why),
            None => report.failure.map(|f| bounded(vec![f]).remove(0)),
        };
        Stopped {
            took: took.unwrap_or_default(),
            notes: bounded(report.notes),
            failure,
        }
    }
}

/// Why a sample from a server host cannot be true: a count beyond any machine's.
fn implausible_sample(sample: &Sample) -> Option<String> {
    let counts = [
        ("CPU ticks", sample.cpu_ticks),
        ("RSS KiB", sample.rss_kib),
        ("PSS KiB", sample.pss_kib.unwrap_or(0)),
        ("threads", sample.threads),
        ("processes", sample.processes),
        ("descriptors", sample.fds.unwrap_or(0)),
    ];
    let switches = sample.switches.values().flat_map(|&(v, i)| [v, i]);
    if let Some((what, n)) = counts.into_iter().find(|&(_, n)| n > MAX_COUNT) {
        return Some(format!("a sample of {n} {what}"));
    }
    if sample.switches.len() as u64 > MAX_COUNT >> 20 || switches.clone().any(|n| n > MAX_COUNT) {
        return Some("a sample of more context switches than a machine makes".to_owned());
    }
    None
}

/// At most [`MAX_NOTES`] notes of at most [`MAX_NOTE`] characters each.
fn bounded(notes: Vec<String>) -> Vec<String> {
    notes
        .into_iter()
        .take(MAX_NOTES)
        .map(|n| match n.chars().count() > MAX_NOTE {
            true => n.chars().take(MAX_NOTE).collect::<String>() + "…",
            false => n,
        })
        .collect()
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            thread::sleep(Duration::from_millis(500));
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The launcher's stdout, line by line (bytes, decoded lossily, bounded), on a channel; read
/// to its end whether or not anyone still listens.
fn read_lines(child: &mut Child) -> anyhow::Result<mpsc::Receiver<String>> {
    let stdout = child
        .stdout
        .take()
        .context("no stdout from the server host")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        loadgen::lines::each_line(stdout, MAX_REPLY, |line| {
            let _ = tx.send(line);
        });
    });
    Ok(rx)
}

fn append(log: &Path, text: &str) -> anyhow::Result<()> {
    Ok(server::append(log)?.write_all(text.as_bytes())?)
}
