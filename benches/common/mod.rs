//! Shared by the benches: every model's server as its own process (so that the forking models
//! never fork the bench), pinned to one CPU while the bench runs on another.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::time::Duration;

use echo_server::Transport;

/// The TCP models to bench: every registered one, so new ones join without edits. The
/// `ECHOBENCH_MODELS` variable (comma-separated) narrows the set.
pub fn models() -> Vec<&'static str> {
    models_of(Transport::Tcp)
}

/// The UDP models to bench, as [`models`] gives the TCP ones.
pub fn udp_models() -> Vec<&'static str> {
    models_of(Transport::Udp)
}

fn models_of(transport: Transport) -> Vec<&'static str> {
    // Where the kernel forbids io_uring, those models cannot serve (they say so and exit 1).
    let io_uring_off = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .is_ok_and(|v| v.trim() == "2");
    let all = echo_server::Model::of(transport)
        .map(|m| m.name())
        .filter(move |m| !m.ends_with("io-uring") || !io_uring_off);
    match std::env::var("ECHOBENCH_MODELS") {
        Ok(only) => all
            .filter(|m| only.split(',').any(|o| o.trim() == *m))
            .collect(),
        Err(_) => all.collect(),
    }
}

/// CPUs for the server and for the bench: the first and the last this process could use when
/// it started (read once: after `pin_bench` the mask holds only the bench's CPU).
fn cpus() -> (usize, Option<usize>) {
    static SPLIT: OnceLock<(usize, Option<usize>)> = OnceLock::new();
    *SPLIT.get_or_init(|| {
        let cpus = loadgen::affinity_cpus();
        match (cpus.first(), cpus.last()) {
            (Some(&first), Some(&last)) if first != last => (first, Some(last)),
            (Some(&first), _) => (first, None),
            _ => (0, None),
        }
    })
}

/// Pins the bench process away from the server's CPU (when there are two CPUs to use).
pub fn pin_bench() {
    if let (_, Some(cpu)) = cpus() {
        echobench::run::server::pin_process(&[cpu]).expect("cannot pin the bench process");
    }
}

/// A server process, stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts `model` and waits for its `listening on` line.
    pub fn start(model: &str) -> Server {
        Server::start_with(model, &[])
    }

    /// Starts `model` with more arguments (`--tls ...`) and waits for its line.
    pub fn start_with(model: &str, args: &[&str]) -> Server {
        let (server_cpu, _) = cpus();
        let server = testkit::spawn_listening(
            Command::new(env!("CARGO_BIN_EXE_echobench"))
                .args(["serve", "--cpus", &server_cpu.to_string(), "--", model])
                .args(["--addr", "127.0.0.1:0"])
                .args(args),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|e| panic!("{model}: {e}"));
        Server {
            child: server.child,
            addr: server.addr,
        }
    }

    /// A client connection with `TCP_NODELAY` and read/write timeouts.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// CPU time the server process has used so far (user + system), from `/proc`.
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // utime and stime: fields 14 and 15, counted after the parenthesised name.
        let ticks: u64 = stat
            .rsplit(')')
            .next()
            .map(|rest| {
                rest.split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|t| t.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100) as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / hz.max(1))
    }
}

/// A client connection with `TCP_NODELAY` and read/write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("cannot connect to the server");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("write timeout");
    stream
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// A message of `size` bytes that is not constant.
pub fn message(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}
