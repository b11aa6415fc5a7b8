//! A server process started by the runner: this binary's hidden `serve` command (which is
//! `echo-server`) pinned to the server CPUs, ready at its `listening on` line, stopped with
//! SIGTERM.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::schema::ServerSpec;

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The contract: SIGTERM ends a server within this.
pub const STOP_LIMIT: Duration = Duration::from_secs(2);

/// A running server, killed if it is dropped before [`Server::stop`].
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// The arguments of `echobench` that start `server` pinned to `cpus` on a free loopback port.
pub fn serve_args(server: &ServerSpec, cpus: &[usize]) -> Vec<String> {
    let mut args = vec![
        "serve".to_owned(),
        "--cpus".to_owned(),
        loadgen::format_cpus(cpus),
        "--".to_owned(),
        server.model.clone(),
        "--addr".to_owned(),
        "127.0.0.1:0".to_owned(),
    ];
    args.extend(server.args.iter().cloned());
    args
}

impl Server {
    /// Starts `server` through `exe serve`, its stderr into `log`, and waits for its
    /// `listening on` line.
    pub fn start(
        exe: &Path,
        server: &ServerSpec,
        cpus: &[usize],
        log: &Path,
    ) -> anyhow::Result<Server> {
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let mut child = Command::new(exe)
            .args(serve_args(server, cpus))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("cannot start the server")?;
        let line = match first_line(&mut child) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let said = std::fs::read_to_string(log).unwrap_or_default();
                bail!("{e}: {}", said.trim());
            }
        };
        let addr = line
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("unexpected first line {line:?}"))?;
        Ok(Server { child, addr })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL if it outstays twice the contract's limit; how long it took.
    pub fn stop(&mut self) -> anyhow::Result<Duration> {
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

/// The first line the child prints, within [`START_TIMEOUT`]; the rest of its stdout is drained
/// so that it never blocks on a full pipe.
fn first_line(child: &mut Child) -> anyhow::Result<String> {
    let Some(stdout) = child.stdout.take() else {
        bail!("no stdout from the server");
    };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next().and_then(Result::ok));
        for _ in lines {}
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(Some(line)) => Ok(line),
        _ => bail!("no `listening on` line within {START_TIMEOUT:?}"),
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

/// Removes a server's stderr log when it holds nothing, or only the line that says every
/// connection ended cleanly: noise. Logs that say anything else are kept.
pub fn remove_log_if_clean(log: &Path) {
    let clean = echo_server::endings::summary_of([0; 4]) + "\n";
    if std::fs::read_to_string(log).is_ok_and(|said| said.is_empty() || said == clean) {
        let _ = std::fs::remove_file(log);
    }
}

/// A command line run by `sh`, for a server echobench does not build (a user's own, the
/// tutorials' Python ones): it gets back the soft descriptor limit echobench started with.
/// echobench raised its own for loadgen, and a child inherits it; a `select()`-based server
/// breaks on a descriptor numbered above 1,023.
pub fn foreign_server_command(line: &str) -> Command {
    let restore = loadgen::original_fd_limit()
        .map(|(soft, _)| format!("ulimit -Sn {soft} && "))
        .unwrap_or_default();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("{restore}exec {line}"));
    cmd
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
}
