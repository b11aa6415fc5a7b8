//! A server on another host (`compare --server-host HOST --server-addr ADDR`), run there by
//! `echobench serve --report` through the agents' launcher: it starts the server as `compare`
//! does here (a session of its own, pinned, ready at its `listening on` line or a probe echo),
//! relays the `listening on` line, answers requests for `/proc` samples of the server's
//! session on stdout, one JSON line each, and stops the server when stdin ends (ssh without a
//! terminal delivers no SIGTERM) with one last line saying how it stopped.
//!
//! Requests, one line each: `sample full`, `sample peak`, `ticks`, `check`, `stop`.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitCode};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};

use super::procfs::{self, Sample};
use super::server::{self, Server, Stopped};
use crate::plan::Hosts;
use crate::schema::{ExternalServer, ServerSpec};

/// How long a reply to a sample request may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a remote server may take to be ready, the launch included.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One reply of `serve --report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// `sample full` and `sample peak`.
    Sample(Sample),
    /// `ticks`: the session's CPU time in clock ticks.
    Ticks(u64),
    /// `check`: what went wrong with the server while it ran.
    Check(Vec<String>),
    /// The last line: how the server stopped, and what it wrote to stderr.
    Stopped(StopReport),
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

/// `echobench serve --report`: starts `served` listening on `addr`, pinned to `cpus`, then
/// answers requests until stdin ends. Exit 0 when the server ran and stopped, 1 when it did
/// not start (one line on stderr).
pub fn supervise(served: &Served, addr: &str, cpus: &[usize]) -> ExitCode {
    let log = std::env::temp_dir().join(format!("echobench-serve-{}.log", std::process::id()));
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
            let _ = std::fs::remove_file(&log);
            return ExitCode::from(1);
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{}", echo_server::listen::listening_line(server.addr))
        .and_then(|()| out.flush())
        .is_err()
    {
        return ExitCode::from(1);
    }
    answer(&mut server, &mut out);
    let stopped = server.stop();
    let mut notes = std::mem::take(&mut server.notes);
    notes.extend(stopped.notes);
    let report = StopReport {
        took_s: stopped.took.as_secs_f64(),
        notes,
        failure: stopped.failure,
        log: std::fs::read_to_string(&log).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(&log);
    let _ = send(&mut out, &Reply::Stopped(report));
    ExitCode::SUCCESS
}

/// Answers requests on stdin until it ends or says `stop`.
fn answer(server: &mut Server, out: &mut impl Write) {
    let mut tree = procfs::Tree::of_session(server.pid());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
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
}

impl RemoteServer {
    /// Starts `served` on `host` through the fleet's launcher, listening on `addr`, pinned to
    /// `cpus` when given; waits for its `listening on` line. The error names the host.
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
        let stderr = child.stderr.take();
        let log_copy = log.to_path_buf();
        thread::spawn(move || {
            if let Some(mut stderr) = stderr {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
                if !text.is_empty() {
                    let _ = append(&log_copy, &text);
                }
            }
        });
        let lines = read_lines(&mut child)?;
        let mut server = RemoteServer {
            stdin: child.stdin.take(),
            child,
            lines,
            addr: "0.0.0.0:0".parse()?,
            host: host.to_owned(),
            log: log.to_path_buf(),
        };
        server.addr = server.ready(addr)?;
        Ok(server)
    }

    /// The address of its `listening on` line (an unspecified IP replaced by `--server-addr`'s).
    fn ready(&mut self, asked: &str) -> anyhow::Result<SocketAddr> {
        let line = match self.lines.recv_timeout(READY_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let how = self.end_now();
                bail!("server host {}: the server did not start: {how}", self.host);
            }
        };
        let Some(mut addr) = echo_server::listen::parse_listening(&line) else {
            self.end_now();
            bail!("server host {}: unexpected line {line:?}", self.host);
        };
        if addr.ip().is_unspecified() {
            if let Ok(asked) = asked.parse::<SocketAddr>() {
                addr.set_ip(asked.ip());
            }
        }
        Ok(addr)
    }

    /// Kills the launcher at once; how it ended, with what the log says last.
    fn end_now(&mut self) -> String {
        drop(self.stdin.take());
        thread::sleep(Duration::from_millis(200));
        let _ = self.child.kill();
        let status = self.child.wait().map(server::said).unwrap_or_default();
        let said = std::fs::read_to_string(&self.log).unwrap_or_default();
        server::with_last_line(status, &said)
    }

    /// One request and its reply.
    fn ask(&mut self, request: &str) -> anyhow::Result<Reply> {
        let stdin = self
            .stdin
            .as_mut()
            .context("the server host's stdin is closed")?;
        writeln!(stdin, "{request}")?;
        stdin.flush()?;
        let line = self
            .lines
            .recv_timeout(REPLY_TIMEOUT)
            .map_err(|_| anyhow!("server host {}: no reply to {request:?}", self.host))?;
        serde_json::from_str(&line).with_context(|| format!("a bad reply {line:?}"))
    }

    /// A sample of the server's session there (an empty one when the host did not answer).
    pub fn sample(&mut self, full: bool) -> Sample {
        let request = if full { "sample full" } else { "sample peak" };
        match self.ask(request) {
            Ok(Reply::Sample(sample)) => sample,
            _ => Sample::default(),
        }
    }

    /// The session's CPU time there, in clock ticks (0 when the host did not answer).
    pub fn cpu_ticks(&mut self) -> u64 {
        match self.ask("ticks") {
            Ok(Reply::Ticks(ticks)) => ticks,
            _ => 0,
        }
    }

    /// What went wrong with the server while it ran.
    pub fn check(&mut self) -> Vec<String> {
        match self.ask("check") {
            Ok(Reply::Check(notes)) => notes,
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("{e:#}")],
        }
    }

    /// Ends its stdin, so that it stops the server, and reads how it did; its log is appended
    /// to the run's.
    pub fn stop(&mut self) -> Stopped {
        drop(self.stdin.take());
        let grace = 2 * server::STOP_LIMIT + Duration::from_secs(20);
        let reply = self.lines.recv_timeout(grace);
        if reply.is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        match reply
            .ok()
            .and_then(|l| serde_json::from_str::<Reply>(&l).ok())
        {
            Some(Reply::Stopped(report)) => {
                let _ = append(&self.log, &report.log);
                Stopped {
                    took: Duration::from_secs_f64(report.took_s),
                    notes: report.notes,
                    failure: report.failure,
                }
            }
            _ => Stopped {
                failure: Some(format!(
                    "server host {}: no word of how the server stopped",
                    self.host
                )),
                ..Stopped::default()
            },
        }
    }
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

/// The launcher's stdout, line by line, on a channel.
fn read_lines(child: &mut Child) -> anyhow::Result<mpsc::Receiver<String>> {
    let stdout = child
        .stdout
        .take()
        .context("no stdout from the server host")?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(rx)
}

fn append(log: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)?;
    file.write_all(text.as_bytes())
}
