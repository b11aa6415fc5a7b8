//! Helpers for the integration tests: start the real `echo-server` binary on a free loopback
//! port, talk to it with timeouts on every read, and inspect its process tree in `/proc`.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use echo_server::models::{ClientsAtOnce, ModelInfo};
use echo_server::python::{self, Interpreter};
use echo_server::{Model, Transport};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Every socket read and write in the tests gives up after this long.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

pub const BIN: &str = env!("CARGO_BIN_EXE_echo-server");

/// Asserts that `echo-server ARGS` exits 2 with one line on stderr naming `names`, and
/// nothing on stdout.
pub fn assert_refused(args: &[&str], names: &str) {
    let (code, stdout, stderr) = run(args);
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    assert!(stdout.is_empty(), "{args:?} printed {stdout:?}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: not one line: {stderr:?}"
    );
    assert!(
        stderr.contains(names),
        "{args:?}: {stderr:?} does not name {names}"
    );
}

/// Runs `echo-server ARGS` to its end: its exit code, stdout and stderr.
pub fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The TCP models' names, from `echo-server --list` and the registry, then the Python models
/// this machine can run ([`python_models`]): new models join every test without edits.
pub fn models() -> Vec<String> {
    let mut all = listed(Transport::Tcp);
    all.extend(python_models(Transport::Tcp));
    all
}

/// The Rust TCP models' names (`--chat`'s, until the Python models serve it too).
pub fn rust_tcp_models() -> Vec<String> {
    listed(Transport::Tcp)
}

/// The UDP models' names, as [`models`] gives the TCP ones.
pub fn udp_models() -> Vec<String> {
    let mut all = listed(Transport::Udp);
    all.extend(python_models(Transport::Udp));
    all
}

/// The Python interpreter the tests run the Python models with: `$ECHOBENCH_PYTHON`, or
/// `python3`. Where it is missing or older than 3.9 the Python models are skipped with one
/// line, and `ECHOBENCH_REQUIRE=python` makes that a failure.
pub fn python() -> Option<&'static Interpreter> {
    static FOUND: std::sync::OnceLock<Option<Interpreter>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let program = std::env::var("ECHOBENCH_PYTHON")
                .unwrap_or_else(|_| python::DEFAULT_PROGRAM.to_owned());
            match python::interpreter(&program) {
                Ok(found) => Some(found),
                Err(why) => {
                    testkit::skip("the Python models", "python", &why);
                    None
                }
            }
        })
        .as_ref()
}

/// The Python models of `transport` that [`python`] can run: the standard-library ones, and
/// `py-twisted` and `py-gevent` where their packages are importable.
pub fn python_models(transport: Transport) -> Vec<String> {
    let Some(interpreter) = python() else {
        return Vec::new();
    };
    python::MODELS
        .iter()
        .filter(|m| m.transport == transport)
        .filter(|m| {
            m.needs
                .is_none_or(|module| python::importable(interpreter, module))
        })
        .map(|m| m.name.to_owned())
        .collect()
}

/// The program and first arguments that run `model`: `echo-server MODEL`, or for a Python
/// model the interpreter on its script in `servers/python/` (without writing bytecode there).
pub fn server_argv(model: &str) -> Vec<String> {
    match python::find(model) {
        Some(m) => vec![
            python()
                .expect("a Python model without an interpreter")
                .executable
                .clone(),
            "-B".to_owned(),
            format!("{}/python/{}", env!("CARGO_MANIFEST_DIR"), m.file),
        ],
        None => vec![BIN.to_owned(), model.to_owned()],
    }
}

/// The name a model's exit lines begin with: `echo-server`, or the Python model's own.
pub fn program(model: &str) -> &str {
    python::find(model).map_or("echo-server", |m| m.name)
}

/// The models `echo-server --list` names that serve `transport`, less those that need
/// io_uring where the kernel refuses it.
fn listed(transport: Transport) -> Vec<String> {
    let out = Command::new(BIN).arg("--list").output().unwrap();
    assert!(out.status.success(), "echo-server --list failed");
    let names: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!names.is_empty(), "echo-server --list printed no model");
    names
        .into_iter()
        .filter(|m| info(m).transport() == transport)
        .filter(|m| !m.ends_with("io-uring") || io_uring_allowed())
        .collect()
}

/// Whether the kernel allows io_uring to every process; where it does not, the io-uring
/// model's only duty is to say so and exit 1, which `io_uring_refusal_is_one_line_and_exit_1`
/// checks instead.
pub use testkit::io_uring_allowed;

/// What the registry knows of the Rust model called `name`.
pub fn info(name: &str) -> &'static ModelInfo {
    Model::from_name(name)
        .unwrap_or_else(|| panic!("{name} is not in the registry"))
        .info()
}

/// How many clients a model (Rust or Python) serves at once.
pub fn clients_at_once(model: &str) -> ClientsAtOnce {
    python::find(model).map_or_else(|| info(model).clients_at_once, |m| m.clients_at_once)
}

/// Whether a model (Rust or Python) serves each client in a child process.
pub fn forks(model: &str) -> bool {
    python::find(model).map_or_else(|| info(model).forks, |m| m.forks)
}

/// Whether a model serves one client at a time, so tests must send their clients in series.
pub fn serves_one_at_a_time(model: &str) -> bool {
    clients_at_once(model) == ClientsAtOnce::One
}

/// Whether one server process holds the descriptors of all its concurrent clients (so that a
/// crowd of clients can exhaust its descriptor limit). Not so for the iterative server (one
/// client at a time), nor where each client lives in its own process.
pub fn holds_every_client_in_one_process(model: &str) -> bool {
    !serves_one_at_a_time(model) && !forks(model)
}

/// Workers the tests give every model (models without workers ignore the flag): more than one
/// client at a time for the pooled models whatever the machine's CPU count.
pub const WORKERS: &str = "4";

/// A running `echo-server`, killed (by its pid) when dropped.
pub struct Server {
    pub model: String,
    pub addr: SocketAddr,
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `echo-server MODEL --addr 127.0.0.1:0 ARGS...` (or the Python model's script
    /// with the same arguments) and waits for its `listening on` line.
    pub fn start(model: &str, args: &[&str]) -> Server {
        let argv = server_argv(model);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .args(["--addr", "127.0.0.1:0"])
            .args(args);
        if !args.contains(&"--workers") {
            cmd.args(["--workers", WORKERS]);
        }
        Server::spawn(model, cmd)
    }

    /// Like [`Server::start`], with the server's descriptor limit (`RLIMIT_NOFILE`, soft and
    /// hard) set to `nofile` by the shell before it execs the server.
    pub fn start_with_nofile(model: &str, nofile: u32) -> Server {
        Server::start_under_ulimit(model, &format!("-n {nofile}"))
    }

    /// Like [`Server::start`], with only the soft descriptor limit set to `soft`, as on
    /// machines whose shells start with a soft limit of 1,024 under a far higher hard one.
    pub fn start_with_soft_nofile(model: &str, soft: u32) -> Server {
        Server::start_under_ulimit(model, &format!("-Sn {soft}"))
    }

    fn start_under_ulimit(model: &str, limit: &str) -> Server {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit {limit} && exec \"$0\" \"$@\""))
            .args(server_argv(model))
            .args(["--addr", "127.0.0.1:0", "--workers", WORKERS]);
        Server::spawn(model, cmd)
    }

    /// Starts `cmd` (which must run an echo server on 127.0.0.1:0) and waits for its line.
    pub fn spawn(model: &str, mut cmd: Command) -> Server {
        cmd.stdin(Stdio::null()).stderr(Stdio::piped());
        let server = testkit::spawn_listening(&mut cmd, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        Server {
            model: model.to_owned(),
            addr: server.addr,
            child: server.child,
            stderr: server.stderr,
        }
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// A new client with read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)
            .unwrap_or_else(|e| panic!("{}: connect: {e}", self.model));
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream
    }

    /// A new UDP client socket on loopback, connected to the server, with read and write
    /// timeouts.
    pub fn udp_client(&self) -> std::net::UdpSocket {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(self.addr).unwrap();
        socket.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        socket.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        socket
    }

    /// Sends SIGTERM and waits up to `limit` for the exit; returns the status and the time.
    pub fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        kill(self.pid(), Signal::SIGTERM).unwrap();
        let status = wait_until(limit, || self.child.try_wait().unwrap())
            .unwrap_or_else(|| panic!("{}: still running {limit:?} after SIGTERM", self.model));
        (status, start.elapsed())
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Everything the server wrote to stderr, once it has exited: the reader thread may still
    /// be draining the pipe, so wait (bounded) for the line a clean exit ends with.
    pub fn final_stderr(&self) -> String {
        wait_until(IO_TIMEOUT, || {
            let said = self.stderr();
            (said.contains("unclean endings") || said.contains("udp: ")).then_some(said)
        })
        .unwrap_or_else(|| self.stderr())
    }

    /// Waits until a server that forks its workers up front has all of them, so that the
    /// process tree stops changing.
    pub fn wait_for_workers(&self) {
        self.wait_for_workers_of(WORKERS.parse().unwrap());
    }

    /// [`Server::wait_for_workers`], for a server started with `workers` of them.
    pub fn wait_for_workers_of(&self, workers: usize) {
        if forks(&self.model) && clients_at_once(&self.model) == ClientsAtOnce::Workers {
            let all = wait_until(IO_TIMEOUT, || {
                (children(self.pid()).len() >= workers).then_some(())
            });
            assert!(all.is_some(), "{}: never had {workers} workers", self.model);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!("--- {} stderr ---\n{}", self.model, self.stderr());
        }
    }
}

pub use testkit::wait_until;

/// The one seeded generator (loadgen's), so failures reproduce.
pub use testkit::Rng;

/// Sends one message and reads exactly its echo back.
pub fn ping(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).unwrap();
    let mut echo = vec![0u8; msg.len()];
    stream.read_exact(&mut echo).unwrap();
    assert_eq!(echo, msg, "echo differs from what was sent");
}

/// Writes `data` in random chunk sizes up to `max_chunk` while reading the echo in random
/// sizes on another thread, half-closes after the last byte, and returns everything read up to
/// the server's EOF.
pub fn exchange(stream: TcpStream, data: Arc<Vec<u8>>, max_chunk: usize, seed: u64) -> Vec<u8> {
    let mut writer = stream.try_clone().unwrap();
    let sender = thread::spawn(move || {
        let mut rng = Rng::new(seed);
        let mut sent = 0;
        while sent < data.len() {
            let n = rng.range(1, max_chunk).min(data.len() - sent);
            writer.write_all(&data[sent..sent + n]).unwrap();
            sent += n;
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut rng = Rng::new(seed ^ 0x9e37_79b9);
    let mut reader = stream;
    let mut received = Vec::new();
    let mut buf = vec![0u8; max_chunk];
    loop {
        let want = rng.range(1, max_chunk);
        match reader.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) => panic!("reading the echo after {} bytes: {e}", received.len()),
        }
    }
    sender.join().unwrap();
    received
}

/// Reads `key:` from `/proc/<pid>/status` (e.g. `Threads`, `VmRSS` in kB).
pub fn proc_status(pid: Pid, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Direct children of `pid`, from every thread's `children` file.
pub fn children(pid: Pid) -> Vec<Pid> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .map(Pid::from_raw)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `pid` and all its descendants, parents before their children.
pub fn tree(pid: Pid) -> Vec<Pid> {
    let mut all = vec![pid];
    let mut next = 0;
    while next < all.len() {
        all.extend(children(all[next]));
        next += 1;
    }
    all
}

/// Sockets open in `pid` and all its descendants.
pub fn tree_sockets(pid: Pid) -> usize {
    let sockets = |pid: Pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |fds| {
            fds.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter(|target| target.to_string_lossy().starts_with("socket:"))
                .count()
        })
    };
    tree(pid).into_iter().map(sockets).sum()
}

/// The soft and hard descriptor limits of a running process, from `/proc/<pid>/limits`.
pub fn nofile_limits(pid: Pid) -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..]
        .split_whitespace()
        .map(|v| v.parse().ok());
    Some((values.next()??, values.next()??))
}

/// Resident memory of `pid` and all its descendants, in KiB.
pub fn tree_rss_kib(pid: Pid) -> u64 {
    tree(pid)
        .into_iter()
        .map(|p| proc_status(p, "VmRSS").unwrap_or(0))
        .sum()
}

/// Anonymous resident memory of `pid` and its descendants, KiB (`RssAnon`): buffers and
/// heaps, without the program's own pages, which each forked worker faults into its RSS as it
/// first runs a piece of code.
pub fn tree_anon_kib(pid: Pid) -> u64 {
    tree(pid)
        .into_iter()
        .map(|p| proc_status(p, "RssAnon").unwrap_or(0))
        .sum()
}

/// After a client that never reads has written until the server stopped taking bytes
/// (`stopped`: before a ceiling far above any socket buffer): the server's anonymous memory
/// (`before` it began, KiB) grew less than 4 MiB.
pub fn assert_back_pressured(server: &Server, stopped: bool, before: u64) {
    let model = &server.model;
    assert!(stopped, "{model}: took 64 MiB without back-pressure");
    let grown = tree_anon_kib(server.pid()).saturating_sub(before);
    assert!(
        grown < 4096,
        "{model}: anonymous memory grew {grown} KiB for a client that never reads"
    );
}

/// Whether a process with this pid exists and is not a zombie.
pub fn is_alive(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            // The state letter follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            state != Some("Z")
        })
        .unwrap_or(false)
}

/// The state letter of every child of `pid` (e.g. `S`, `R`, `Z`).
pub fn child_states(pid: Pid) -> Vec<(Pid, String)> {
    children(pid)
        .into_iter()
        .filter_map(|child| {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
            let state = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .next()?
                .to_owned();
            Some((child, state))
        })
        .collect()
}
