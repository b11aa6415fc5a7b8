//! What every model is told at start-up: [`ServerConfig`], built from the command line with
//! its defaults in one place.

use std::net::SocketAddr;

use crate::defence::Defences;
use crate::tls::Tls;
use crate::work::Work;

/// What every model is told at start-up, from the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks any free port.
    pub addr: SocketAddr,
    /// Worker threads or processes for models that have workers; others ignore it.
    pub workers: usize,
    /// Connections served at once; connections beyond the cap are closed at once.
    pub max_conns: usize,
    /// TLS (`--tls`): every connection is a TLS server connection; `None` for plain TCP.
    pub tls: Option<Tls>,
    /// `--work`: requests carry a cost, paid with this calibrated work; `None`: plain echo.
    pub work: Option<Work>,
    /// `--offload pool`: an event loop hands requests' CPU work to a pool of this many
    /// threads; `None`: it does the work inline.
    pub offload: Option<usize>,
    /// `--chat`: serve the chat room, each member's queue at most this many bytes
    /// (`--chat-queue`); `None`: echo.
    pub chat: Option<usize>,
    /// `--idle-timeout`, `--per-ip-max-conns`, `--block-after`: none by default.
    pub defences: Defences,
}

impl ServerConfig {
    /// The defaults of the command line on `addr`: [`cpus_in_affinity_mask`] workers, no cap on
    /// connections. Callers set what they were told; a field added later gets its default here,
    /// not at every call site.
    pub fn new(addr: SocketAddr) -> ServerConfig {
        ServerConfig {
            addr,
            workers: cpus_in_affinity_mask(),
            max_conns: usize::MAX,
            tls: None,
            work: None,
            offload: None,
            chat: None,
            defences: Defences::default(),
        }
    }
}

/// CPUs in this process's affinity mask: a server pinned to one core defaults to one worker.
pub fn cpus_in_affinity_mask() -> usize {
    use nix::sched::{sched_getaffinity, CpuSet};
    use nix::unistd::Pid;
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .count()
            .max(1),
        // Without an affinity mask to read, fall back to what std sees.
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}
