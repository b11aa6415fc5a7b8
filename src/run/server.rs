//! A server process started by the runner, through [`launch`](super::launch) (its own session,
//! pinned, marked): a model echobench builds, through this binary's hidden `serve` command
//! (which is `echo-server`), ready at its `listening on` line; or a user's own command
//! ([`ExternalServer`]) on a port the runner picked, ready at its `listening on` line or at
//! the first echo of a probe message, whichever comes first. Stopped with SIGTERM, then SIGKILL.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::unistd::Pid;

use super::launch::{self, Launched};
use crate::plan::external::invocation;
use crate::schema::{ExternalServer, ServerSpec};

/// How long a built-in model may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The contract: SIGTERM ends a server within this.
pub const STOP_LIMIT: Duration = Duration::from_secs(2);

/// How many ports an external server is given in turn when the one picked was taken before it
/// could bind it.
const PORT_TRIES: usize = 3;

/// The readiness probe: sent on a fresh connection, it must come back byte for byte.
const PROBE: &[u8] = b"echobench readiness probe 0123456789\n";

/// The readiness probe of a server that speaks requests with a cost: [`PROBE`] as a request
/// that costs nothing (the `--work` header: `EBW1`, the length, no CPU, no wait).
fn work_probe() -> Vec<u8> {
    let length = (echo_server::work::HEADER + PROBE.len()) as u32;
    let mut request = echo_server::work::header(length, 0, 0).to_vec();
    request.extend(PROBE);
    request
}

/// The room a chat server's readiness probe joins: one no workload uses.
const PROBE_ROOM: u32 = u32::MAX;

/// The readiness probe of a server that speaks `protocol`, and the start of the answer it
/// must bring back: echo's probe and its echo, or a join of [`PROBE_ROOM`] and the server's
/// `A` for that room (whatever the members it counts).
fn probe_for(work: bool, chat: bool) -> (Vec<u8>, Vec<u8>) {
    if chat {
        let ack = echo_server::chat::ack_frame(PROBE_ROOM, 1);
        return (
            echo_server::chat::join_frame(PROBE_ROOM),
            ack[..echo_server::chat::PREFIX + 5].to_vec(),
        );
    }
    let message = match work {
        true => work_probe(),
        false => PROBE.to_vec(),
    };
    (message.clone(), message)
}

/// How long the probe waits for its connection and for its echo.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// How often an external server that is not yet ready is probed.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// A running server, ended (its whole session) if it is dropped before [`Server::stop`].
pub struct Server {
    session: Launched,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its definition, for a server echobench does not build.
    external: Option<ExternalServer>,
    /// What was seen on the way that a reader should know (a port tried again).
    pub notes: Vec<String>,
}

/// How a server ended.
#[derive(Debug, Default)]
pub struct Stopped {
    /// From SIGTERM to the last process of its session gone.
    pub took: Duration,
    /// What a reader should know: a slow stop, an odd exit status.
    pub notes: Vec<String>,
    /// Why the run cannot stand: it ignored SIGTERM and was killed, or processes left its
    /// session.
    pub failure: Option<String>,
}

/// The arguments of `echobench` that start `server` pinned to `cpus` on a free loopback port.
pub fn serve_args(server: &ServerSpec, cpus: &[usize]) -> Vec<String> {
    serve_args_on(server, cpus, "127.0.0.1:0")
}

/// The arguments of `echobench` that start `server` pinned to `cpus`, listening on `addr`.
fn serve_args_on(server: &ServerSpec, cpus: &[usize], addr: &str) -> Vec<String> {
    let mut args = vec![
        "serve".to_owned(),
        "--cpus".to_owned(),
        loadgen::format_cpus(cpus),
        "--".to_owned(),
        server.model.clone(),
        "--addr".to_owned(),
        addr.to_owned(),
    ];
    args.extend(server.args.iter().cloned());
    args
}

impl Server {
    /// Starts the built-in `server` through `exe serve`, its stderr into `log`, and waits for
    /// its `listening on` line.
    pub fn start(
        exe: &Path,
        server: &ServerSpec,
        cpus: &[usize],
        log: &Path,
    ) -> anyhow::Result<Server> {
        Server::start_on(exe, server, cpus, log, "127.0.0.1:0")
    }

    /// [`Server::start`] listening on `addr` (port 0: one the kernel picks); a server that
    /// says it listens on every address is reached on loopback.
    pub fn start_on(
        exe: &Path,
        server: &ServerSpec,
        cpus: &[usize],
        log: &Path,
        addr: &str,
    ) -> anyhow::Result<Server> {
        let mut argv = vec![exe.to_string_lossy().into_owned()];
        argv.extend(serve_args_on(server, cpus, addr));
        let (cmd, marker) = launch::command(&argv, &[], cpus)?;
        let mut session = spawn(cmd, marker, log).context("cannot start the server")?;
        let addr = ready(&mut session, None, START_TIMEOUT, log)?;
        Ok(Server {
            session,
            addr,
            external: None,
            notes: Vec::new(),
        })
    }

    /// Starts `server`'s command on a free loopback port, its stdout and stderr into `log`,
    /// and waits until it is ready: its `listening on` line, or an echo of a probe message.
    /// A port taken meanwhile by another program is replaced by another, twice at most.
    pub fn start_external(
        server: &ExternalServer,
        cpus: &[usize],
        log: &Path,
    ) -> anyhow::Result<Server> {
        Server::start_external_on(server, std::net::Ipv4Addr::LOCALHOST.into(), cpus, log)
    }

    /// [`Server::start_external`] on a free port of `ip`.
    pub fn start_external_on(
        server: &ExternalServer,
        ip: std::net::IpAddr,
        cpus: &[usize],
        log: &Path,
    ) -> anyhow::Result<Server> {
        let mut notes = Vec::new();
        let mut attempt = 1;
        loop {
            let addr = free_port(ip)?;
            let values = [
                ("port", addr.port().to_string()),
                ("addr", addr.to_string()),
                ("host", addr.ip().to_string()),
            ];
            let inv = invocation(&server.command, &values).map_err(anyhow::Error::msg)?;
            let (cmd, marker) = launch::command(&inv.argv, &inv.env, cpus)?;
            let mut session =
                spawn(cmd, marker, log).with_context(|| format!("cannot run '{}'", inv.argv[0]))?;
            // The probe is a TCP echo: a UDP server is ready at its `listening on` line alone.
            let (message, answer) = probe_for(server.work, server.chat);
            let probe = (server.transport == "tcp").then_some(Probe {
                addr,
                message: &message,
                answer: &answer,
            });
            match ready(&mut session, probe, server.ready_timeout, log) {
                Ok(addr) => {
                    return Ok(Server {
                        session,
                        addr,
                        external: Some(server.clone()),
                        notes,
                    })
                }
                Err(_) if attempt < PORT_TRIES && port_was_taken(log) => {
                    notes.push(format!("port {} was taken; tried another", addr.port()));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The server's session id (its leader's pid): what is sampled.
    pub fn pid(&self) -> u32 {
        self.session.sid
    }

    /// What went wrong with the server while it ran: nothing of it left running (a leader that
    /// exited while others of its session serve on, as a wrapper script's may, is no fault).
    /// Checked at the end of the measured time, before [`Server::stop`].
    pub fn check(&mut self) -> Vec<String> {
        match self.session.is_gone() {
            true => {
                let status = self.session.exited().map(said).unwrap_or_default();
                vec![format!("server exited during the run ({status})")]
            }
            false => Vec::new(),
        }
    }

    /// SIGTERM (a built-in model's leader, which ends its own children; an external server's
    /// whole process group), then SIGKILL to the session once the grace period has passed:
    /// twice the contract's limit for a built-in model, the server file's `stop_grace` for an
    /// external one.
    pub fn stop(&mut self) -> Stopped {
        let (group, grace) = match &self.external {
            Some(e) => (true, e.stop_grace),
            None => (false, 2 * STOP_LIMIT),
        };
        let ended = self.session.end(group, grace);
        let mut stopped = Stopped {
            took: ended.took,
            ..Stopped::default()
        };
        if ended.killed {
            stopped.failure = Some(format!(
                "server ignored SIGTERM for {}; killed with SIGKILL",
                humantime::format_duration(grace)
            ));
        } else if ended.took > STOP_LIMIT {
            stopped
                .notes
                .push(format!("server took {:?} to stop", ended.took));
        }
        match ended.status {
            Some(status) if !ended.killed && !stopped_well(status, group) => stopped
                .notes
                .push(format!("server exited with {} after SIGTERM", said(status))),
            _ => {}
        }
        if !ended.escaped.is_empty() {
            stopped.failure = Some(format!("server {}", daemonized(&ended.escaped)));
        }
        stopped
    }
}

/// Whether a server ended well on SIGTERM: exit 0, or (for an external server, whose
/// runtime may keep the default action) killed by that very signal or exit 128 + 15.
fn stopped_well(status: ExitStatus, external: bool) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.success()
        || (external
            && (status.signal() == Some(libc_sigterm()) || status.code() == Some(128 + 15)))
}

fn libc_sigterm() -> i32 {
    nix::sys::signal::Signal::SIGTERM as i32
}

/// `exit status 3`, `signal 9 (SIGKILL)`.
pub fn said(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(s) => format!("signal {sig} ({})", s.as_str()),
            Err(_) => format!("signal {sig}"),
        },
        _ => status.to_string(),
    }
}

fn daemonized(escaped: &[String]) -> String {
    format!(
        "daemonized: {} process(es) left its session ({}), killed; echobench measures a server that stays in the foreground",
        escaped.len(),
        escaped.join(", ")
    )
}

/// A free port of `ip`, as the kernel gives one to a listener on port 0.
fn free_port(ip: std::net::IpAddr) -> anyhow::Result<SocketAddr> {
    let listener =
        TcpListener::bind((ip, 0)).with_context(|| format!("cannot find a free port on {ip}"))?;
    Ok(listener.local_addr()?)
}

/// Starts `cmd` with stdout piped (read by [`ready`]) and stderr into `log`, emptied first.
fn spawn(mut cmd: std::process::Command, marker: String, log: &Path) -> anyhow::Result<Launched> {
    File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let stderr = append(log)?;
    cmd.stdout(Stdio::piped()).stderr(stderr);
    Launched::spawn(cmd, marker)
}

/// `log`, opened to append to (made when missing).
pub fn append(log: &Path) -> anyhow::Result<File> {
    File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot create {}", log.display()))
}

/// Waits until the server is ready, within `timeout`: its `listening on ADDR` line (the
/// address it names), or, given `probe` (an external server: its address and the message),
/// an echo of the message there.
/// Lines it prints besides go to `log`. On failure the session is ended, and the error says
/// why in one line: the leader exited (with what it said), the server daemonized, the probe
/// was answered with something else, or nothing within the time.
fn ready(
    session: &mut Launched,
    probe: Option<Probe<'_>>,
    timeout: Duration,
    log: &Path,
) -> anyhow::Result<SocketAddr> {
    let lines = read_lines(session, log)?;
    let failed = |session: &mut Launched, why: String| -> anyhow::Error {
        let ended = session.end(true, Duration::from_millis(500));
        if !ended.escaped.is_empty() {
            return anyhow::anyhow!("{}", daemonized(&ended.escaped));
        }
        let said = last_words(log);
        match said.is_empty() {
            true => anyhow::anyhow!("{why}"),
            false => anyhow::anyhow!("{why}: {said}"),
        }
    };
    let deadline = Instant::now() + timeout;
    let mut last_probe: Option<Instant> = None;
    let mut probed = "no connection".to_owned();
    loop {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(10)) {
            let named = echo_server::listen::parse_listening(&line);
            match (named, probe.map(|p| p.addr)) {
                // A server that says it listens on every address is reached on loopback.
                (Some(mut addr), _) => {
                    if addr.ip().is_unspecified() {
                        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                    }
                    return ready_now(session, addr);
                }
                (None, Some(addr)) => return ready_now(session, addr),
                (None, None) => return Err(failed(session, format!("unexpected line {line:?}"))),
            }
        }
        if session.is_gone() {
            let status = session.exited().map(said).unwrap_or_default();
            return Err(failed(
                session,
                format!("exited ({status}) before it was ready"),
            ));
        }
        if let Some(p) = probe {
            if last_probe.is_none_or(|t| t.elapsed() >= PROBE_EVERY) {
                last_probe = Some(Instant::now());
                match echo_probe(p.addr, p.message, p.answer) {
                    Ok(()) => return ready_now(session, p.addr),
                    Err(Unready::NotYet(why)) => probed = why,
                    Err(Unready::NotEcho(why)) => return Err(failed(session, why)),
                }
            }
        }
        if Instant::now() > deadline {
            let why = match probe {
                Some(Probe { addr, .. }) => format!(
                    "not ready within {}: no `listening on` line, and no echo of a probe on {addr} ({probed})",
                    humantime::format_duration(timeout)
                ),
                None => format!(
                    "no `listening on` line within {}",
                    humantime::format_duration(timeout)
                ),
            };
            return Err(failed(session, why));
        }
    }
}

/// Ready, unless it has already daemonized.
fn ready_now(session: &mut Launched, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let escaped = session.escaped();
    if escaped.is_empty() {
        return Ok(addr);
    }
    let ended = session.end(true, Duration::from_millis(500));
    // Those found now, if they were gone (or no longer found) when it ended.
    let named = match ended.escaped.is_empty() {
        true => escaped.iter().map(|&p| p.to_string()).collect(),
        false => ended.escaped,
    };
    bail!("{}", daemonized(&named))
}

/// The first line the server prints that says `listening on`, sent on the channel; every
/// other line goes to `log`. Stdout is read as bytes (decoded lossily, lines bounded) to its
/// end, so that the server never blocks on a full pipe, whatever it prints.
fn read_lines(session: &mut Launched, log: &Path) -> anyhow::Result<mpsc::Receiver<String>> {
    let Some(stdout) = session.take_stdout() else {
        bail!("no stdout from the server");
    };
    let mut log = append(log)?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut sent = false;
        loadgen::lines::each_line(stdout, loadgen::lines::MAX_LINE, |line| {
            if !sent && echo_server::listen::claims_listening(&line) {
                sent = tx.send(line).is_ok();
            } else {
                let _ = writeln!(log, "{line}");
            }
        });
    });
    Ok(rx)
}

/// A readiness probe: where, what it sends, and the start of the answer it must get back.
#[derive(Clone, Copy)]
struct Probe<'a> {
    addr: SocketAddr,
    message: &'a [u8],
    answer: &'a [u8],
}

/// Why a probe did not come back.
enum Unready {
    /// Not listening yet, or no answer yet: try again.
    NotYet(String),
    /// Answered with something other than the echo: not an echo server.
    NotEcho(String),
}

/// Sends `probe` on a new connection to `addr` and checks that `answer` (its echo, or a chat
/// server's `A`) comes back whole.
fn echo_probe(addr: SocketAddr, probe: &[u8], answer: &[u8]) -> Result<(), Unready> {
    let not_yet = |e: std::io::Error| Unready::NotYet(e.to_string());
    let mut s = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(not_yet)?;
    s.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(not_yet)?;
    s.set_write_timeout(Some(PROBE_TIMEOUT)).map_err(not_yet)?;
    let _ = s.set_nodelay(true);
    s.write_all(probe).map_err(not_yet)?;
    let mut echo = vec![0; answer.len()];
    let mut got = 0;
    while got < echo.len() {
        match s.read(&mut echo[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if got == 0 => {
                return Err(Unready::NotYet(format!(
                    "a connection, but no echo of the probe: {e}"
                )))
            }
            Err(_) => break,
        }
    }
    if echo[..got] != answer[..got] || got == 0 {
        return Err(Unready::NotEcho(format!(
            "answered a probe with {:?}, not its echo: is it an echo server?",
            String::from_utf8_lossy(&echo[..got])
        )));
    }
    if got < answer.len() {
        return Err(Unready::NotYet("a part of the probe's echo".to_owned()));
    }
    // A clean end, so that the server sees a client leave as loadgen's will.
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.read(&mut [0; 16]);
    Ok(())
}

/// Whether the server's log says its port was taken (the port was free when picked).
fn port_was_taken(log: &Path) -> bool {
    let said = loadgen::lines::read_lossy(log).to_lowercase();
    said.contains("address already in use") || said.contains("eaddrinuse")
}

/// The last line the server wrote to its log, for an error.
fn last_words(log: &Path) -> String {
    let said = loadgen::lines::read_lossy(log);
    last_line(&said)
        .map(|l| l.chars().take(200).collect())
        .unwrap_or_default()
}

/// The last line of `text` that says anything, trimmed.
pub fn last_line(text: &str) -> Option<&str> {
    text.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

/// `what`, then after a colon the last line of `said`, when it said anything: how a process
/// ended, with its last words.
pub fn with_last_line(what: String, said: &str) -> String {
    match last_line(said) {
        Some(line) => format!("{what}: {line}"),
        None => what,
    }
}

/// Removes a server's log when it holds nothing, or only the line that says every connection
/// ended cleanly: noise. Logs that say anything else are kept.
pub fn remove_log_if_clean(log: &Path) {
    let clean = echo_server::endings::summary_of([0; 4]);
    // A TLS server's counts of handshakes come first; clean when nothing failed.
    let clean_tls = |line: &str| {
        line.starts_with("echo-server: tls: ")
            && line.ends_with(
                ", 0 handshake timeouts, 0 handshake failures, 0 eof without close_notify",
            )
    };
    let is_clean = |said: String| said.lines().all(|l| l == clean || clean_tls(l));
    if std::fs::read_to_string(log).is_ok_and(is_clean) {
        let _ = std::fs::remove_file(log);
    }
}

/// Pins this whole process (threads started later inherit it) to `cpus`.
pub fn pin_process(cpus: &[usize]) -> anyhow::Result<()> {
    let set = launch::cpu_set(cpus)?;
    nix::sched::sched_setaffinity(Pid::from_raw(0), &set)
        .with_context(|| format!("cannot pin to CPUs {}", loadgen::format_cpus(cpus)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_started_with_its_arguments_after_the_model() {
        let pool = ServerSpec {
            model: "thread-pool".to_owned(),
            args: vec!["--workers".to_owned(), "64".to_owned()],
        };
        assert_eq!(
            serve_args(&pool, &[0]).join(" "),
            "serve --cpus 0 -- thread-pool --addr 127.0.0.1:0 --workers 64"
        );
        assert_eq!(
            serve_args(&ServerSpec::model("mio"), &[0, 1]).join(" "),
            "serve --cpus 0-1 -- mio --addr 127.0.0.1:0"
        );
    }

    /// A listener on a free port whose one connection `answer` handles.
    fn one_shot(answer: fn(TcpStream)) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a port");
        let addr = listener.local_addr().expect("an address");
        thread::spawn(move || {
            if let Ok((s, _)) = listener.accept() {
                answer(s);
            }
        });
        addr
    }

    #[test]
    fn the_probe_tells_an_echo_from_a_closed_port_and_from_another_protocol() {
        let echo = one_shot(|mut s| {
            let mut buf = [0; 64];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        assert!(echo_probe(echo, PROBE, PROBE).is_ok());
        let other = one_shot(|mut s| {
            let _ = s.write_all(b"220 smtp.example ESMTP\r\n");
            thread::sleep(Duration::from_millis(200));
        });
        match echo_probe(other, PROBE, PROBE) {
            Err(Unready::NotEcho(why)) => assert!(why.contains("220 smtp"), "{why}"),
            _ => panic!("another protocol is not an echo"),
        }
        let closed = free_port(std::net::Ipv4Addr::LOCALHOST.into()).expect("a port");
        assert!(matches!(
            echo_probe(closed, &work_probe(), &work_probe()),
            Err(Unready::NotYet(_))
        ));
    }
}
