//! The models, one module each, and the registry that names them.
//!
//! Each model opens with what it is, where it should win and where it should break, and how to
//! run it. The registry ([`Model`]) carries what reports, tests and the command line need to
//! know of a model: its name, [`Family`], [`Transport`], whether it serves TLS, how many clients
//! it serves at once and whether it forks, so that they read it here instead of keeping lists of
//! names. No model imports the registry.

use std::net::{TcpListener, UdpSocket};

use crate::config::ServerConfig;
use crate::signals::SignalPipe;

pub mod async_std_rt;
pub mod blocking;
pub mod fork_per_client;
pub mod io_uring_loop;
pub mod mio_loop;
pub mod mio_multi;
pub mod prefork;
pub mod smol_rt;
pub mod thread_per_client;
pub mod thread_pool;
pub mod tokio_current_thread;
pub mod tokio_rt;
pub mod udp_blocking;
pub mod udp_io_uring;
pub mod udp_mio;
pub mod udp_mmsg;
pub mod udp_reuseport;
pub mod udp_tokio;

/// The concurrency models, by the names `echo-server` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// Iterative: accept one client, serve it to EOF, then the next.
    Blocking,
    /// One OS thread per connection.
    ThreadPerClient,
    /// One forked process per connection.
    ForkPerClient,
    /// One thread, one mio `Poll`, non-blocking sockets.
    Mio,
    /// tokio's multi-thread runtime, one task per connection.
    Tokio,
    /// A fixed pool of `--workers` threads (rayon) serving whole connections.
    ThreadPool,
    /// `--workers` processes forked up front, all accepting on the shared listener.
    Prefork,
    /// `--workers` threads, each its own mio loop and `SO_REUSEPORT` listener.
    MioMulti,
    /// tokio's single-thread runtime, one task per connection.
    TokioCurrentThread,
    /// async-std (discontinued upstream in favour of smol), one task per connection.
    AsyncStd,
    /// smol, an executor on `--workers` threads, one task per connection.
    Smol,
    /// Completion-based I/O on one io_uring, one thread.
    IoUring,
    /// UDP: one thread, one blocking socket, a datagram at a time.
    UdpBlocking,
    /// UDP: `--workers` threads, each a blocking socket on one `SO_REUSEPORT` address.
    UdpReuseport,
    /// UDP: one thread, one mio `Poll`, one non-blocking socket.
    UdpMio,
    /// UDP: tokio's multi-thread runtime, `--workers` tasks on one socket.
    UdpTokio,
    /// UDP: one thread, batches of datagrams by `recvmmsg`/`sendmmsg`.
    UdpMmsg,
    /// UDP: one thread, one io_uring, many receives in flight.
    UdpIoUring,
}

/// The families the report groups models by, in the tutorials' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// One client at a time, or a fixed pool of blocking workers.
    IterativeAndPools,
    /// A new thread or process for every client.
    ThreadsAndProcesses,
    /// Hand-written event loops over readiness or completion.
    EventLoops,
    /// Async runtimes: a task per client on an executor.
    Runtimes,
}

impl Family {
    /// The family's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Family::IterativeAndPools => "iterative and pools",
            Family::ThreadsAndProcesses => "threads and processes",
            Family::EventLoops => "event loops",
            Family::Runtimes => "runtimes",
        }
    }
}

/// What a model serves echo over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 862 over TCP: a byte stream per connection.
    Tcp,
    /// RFC 862 over UDP: each datagram goes back to its sender; one socket serves everyone.
    Udp,
}

impl Transport {
    /// The transport's name in reports and on command lines.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// What a model serves on, bound by the caller before the `listening on` line.
#[derive(Debug)]
pub enum Bound {
    /// A listening TCP socket.
    Tcp(TcpListener),
    /// A bound UDP socket.
    Udp(UdpSocket),
}

/// How many clients a model serves at the same time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientsAtOnce {
    /// One: the rest wait in the listen backlog.
    One,
    /// As many as it has `--workers`.
    Workers,
    /// Any number, up to `--max-conns`.
    Any,
}

/// What the registry knows of one model.
#[derive(Debug, Clone, Copy)]
pub struct ModelInfo {
    /// The model.
    pub model: Model,
    /// Name on the command line and in reports.
    pub name: &'static str,
    /// Family, for grouping in reports.
    pub family: Family,
    /// Transport.
    pub transport: Transport,
    /// Whether it serves TLS (`--tls`).
    pub tls: bool,
    /// Clients served at the same time.
    pub clients_at_once: ClientsAtOnce,
    /// Whether clients are served in child processes (so each holds its own descriptors and
    /// memory is best read as PSS).
    pub forks: bool,
    /// Whether its listener must allow `SO_REUSEPORT` siblings.
    pub reuses_port: bool,
    /// One line on how it works, for reports.
    pub summary: &'static str,
    /// For a pool of blocking workers: the `--workers` a comparison runs it with. A blocking
    /// worker serves one client at a time, so a pool is sized for the clients it must serve at
    /// once, not for cores (Apache prefork allows 256 workers, Tomcat 200 threads, gunicorn's
    /// sync workers 2 × cores + 1 for short requests): `echo-server`'s own default, the CPUs
    /// of its affinity mask, is one worker on a pinned core, a pool as starved as an iterative
    /// server. `None` for models that are not such pools.
    pub pool_workers: Option<usize>,
    /// Whether it runs `--workers` threads whatever the clients (by default one per CPU of
    /// its affinity mask), so that a comparison states the count it runs it with.
    pub cpu_workers: bool,
}

/// A TCP model without TLS.
const fn tcp(
    model: Model,
    name: &'static str,
    family: Family,
    clients_at_once: ClientsAtOnce,
    summary: &'static str,
) -> ModelInfo {
    ModelInfo {
        model,
        name,
        family,
        transport: Transport::Tcp,
        tls: false,
        clients_at_once,
        forks: false,
        reuses_port: false,
        summary,
        pool_workers: None,
        cpu_workers: false,
    }
}

/// A model that also serves TLS (`--tls`).
const fn with_tls(info: ModelInfo) -> ModelInfo {
    ModelInfo { tls: true, ..info }
}

/// A UDP model: every client is served by the same socket(s), whatever their number.
const fn udp(model: Model, name: &'static str, family: Family, summary: &'static str) -> ModelInfo {
    ModelInfo {
        transport: Transport::Udp,
        ..tcp(model, name, family, ClientsAtOnce::Any, summary)
    }
}

/// The registry, in the order reports list the models (the order of [`Model`]'s variants).
const REGISTRY: [ModelInfo; 18] = {
    use ClientsAtOnce::{Any, One, Workers};
    use Family::{EventLoops, IterativeAndPools, Runtimes, ThreadsAndProcesses};
    [
        with_tls(
            tcp(Model::Blocking, "blocking", IterativeAndPools, One,
                "iterative: one client at a time, served to EOF, blocking I/O"),
        ),
        with_tls(
            tcp(Model::ThreadPerClient, "thread-per-client", ThreadsAndProcesses, Any,
                "a new OS thread per connection, blocking I/O"),
        ),
        with_tls(
            ModelInfo {
                forks: true,
                ..tcp(Model::ForkPerClient, "fork-per-client", ThreadsAndProcesses, Any,
                    "a forked child process per connection, blocking I/O")
            },
        ),
        with_tls(
            tcp(Model::Mio, "mio", EventLoops, Any,
                "one thread, one epoll loop (mio), non-blocking sockets"),
        ),
        with_tls(
            tcp(Model::Tokio, "tokio", Runtimes, Any,
                "tokio multi-thread runtime (--workers threads), a task per connection"),
        ),
        // 64 threads: every 16-client workload is served four times over, while 128 and
        // 1024 clients show where a pool runs out; a thread costs a stack's touched pages.
        with_tls(
            ModelInfo {
                pool_workers: Some(64),
                ..tcp(Model::ThreadPool, "thread-pool", IterativeAndPools, Workers,
                    "a fixed pool of --workers threads (rayon); clients beyond the pool wait")
            },
        ),
        // 16 processes: one per client of the 16-client workloads; a process costs its own
        // page tables and private pages, so process pools are kept smaller than thread pools.
        with_tls(
            ModelInfo {
                forks: true,
                pool_workers: Some(16),
                ..tcp(Model::Prefork, "prefork", IterativeAndPools, Workers,
                    "--workers processes forked up front, each accepting and serving one client at a time")
            },
        ),
        with_tls(
            ModelInfo {
                reuses_port: true,
                ..tcp(Model::MioMulti, "mio-multi", EventLoops, Any,
                    "--workers threads, each its own mio loop and SO_REUSEPORT listener (shared nothing)")
            },
        ),
        with_tls(
            tcp(Model::TokioCurrentThread, "tokio-current-thread", Runtimes, Any,
                "tokio single-thread runtime, a task per connection"),
        ),
        tcp(Model::AsyncStd, "async-std", Runtimes, Any,
            "async-std, a task per connection; async-std is discontinued upstream in favour of smol and kept for comparison"),
        with_tls(
            tcp(Model::Smol, "smol", Runtimes, Any,
                "smol executor on --workers threads, a task per connection"),
        ),
        tcp(Model::IoUring, "io-uring", EventLoops, Any,
            "one thread, one io_uring: completion-based reads and writes"),
        udp(Model::UdpBlocking, "udp-blocking", IterativeAndPools,
            "UDP, iterative: one blocking socket, receive a datagram, send it back"),
        ModelInfo {
            reuses_port: true,
            cpu_workers: true,
            ..udp(Model::UdpReuseport, "udp-reuseport", IterativeAndPools,
                "UDP: --workers threads, each a blocking socket on one SO_REUSEPORT address")
        },
        udp(Model::UdpMio, "udp-mio", EventLoops,
            "UDP: one thread, one epoll loop (mio), one non-blocking socket"),
        ModelInfo {
            cpu_workers: true,
            ..udp(Model::UdpTokio, "udp-tokio", Runtimes,
                "UDP: tokio multi-thread runtime, --workers tasks receiving on one socket")
        },
        udp(Model::UdpMmsg, "udp-mmsg", EventLoops,
            "UDP: one thread, batches of up to 32 datagrams per recvmmsg and sendmmsg"),
        udp(Model::UdpIoUring, "udp-io-uring", EventLoops,
            "UDP: one thread, one io_uring with 64 receives in flight"),
    ]
};

impl Model {
    /// Every model, in the order reports list them.
    pub const ALL: &'static [Model] = &[
        Model::Blocking,
        Model::ThreadPerClient,
        Model::ForkPerClient,
        Model::Mio,
        Model::Tokio,
        Model::ThreadPool,
        Model::Prefork,
        Model::MioMulti,
        Model::TokioCurrentThread,
        Model::AsyncStd,
        Model::Smol,
        Model::IoUring,
        Model::UdpBlocking,
        Model::UdpReuseport,
        Model::UdpMio,
        Model::UdpTokio,
        Model::UdpMmsg,
        Model::UdpIoUring,
    ];

    /// What the registry knows of this model.
    pub fn info(self) -> &'static ModelInfo {
        // The registry lists the models in the order of the variants (a unit test checks).
        &REGISTRY[self as usize]
    }

    /// The model's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// One line on how the model works, for reports.
    pub fn summary(self) -> &'static str {
        self.info().summary
    }

    /// The model's family.
    pub fn family(self) -> Family {
        self.info().family
    }

    /// What the model serves echo over.
    pub fn transport(self) -> Transport {
        self.info().transport
    }

    /// Whether the model serves TLS.
    pub fn supports_tls(self) -> bool {
        self.info().tls
    }

    /// The `--workers` a comparison runs a pool of blocking workers with; see
    /// [`ModelInfo::pool_workers`].
    pub fn pool_workers(self) -> Option<usize> {
        self.info().pool_workers
    }

    /// Whether the model runs `--workers` threads whatever the clients; see
    /// [`ModelInfo::cpu_workers`].
    pub fn cpu_workers(self) -> bool {
        self.info().cpu_workers
    }

    /// Whether the model's listener must allow `SO_REUSEPORT` siblings.
    pub fn reuses_port(self) -> bool {
        self.info().reuses_port
    }

    /// The model called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// Serves on an already bound socket of its [`Transport`] until `stop` fires (SIGINT or
    /// SIGTERM). The stop signals are registered by the caller before it announces the
    /// socket, so that a signal sent as soon as the `listening on` line appears is never
    /// missed.
    pub fn serve(
        self,
        bound: Bound,
        config: &ServerConfig,
        stop: SignalPipe,
    ) -> anyhow::Result<()> {
        match bound {
            Bound::Tcp(listener) => self.serve_tcp(listener, config, stop),
            Bound::Udp(socket) => self.serve_udp(socket, config, stop),
        }
    }

    fn serve_tcp(
        self,
        listener: TcpListener,
        config: &ServerConfig,
        stop: SignalPipe,
    ) -> anyhow::Result<()> {
        match self {
            Model::Blocking => blocking::serve(listener, config, stop),
            Model::ThreadPerClient => thread_per_client::serve(listener, config, stop),
            Model::ForkPerClient => fork_per_client::serve(listener, config, stop),
            Model::Mio => mio_loop::serve(listener, config, stop),
            Model::Tokio => tokio_rt::serve(listener, config, stop),
            Model::ThreadPool => thread_pool::serve(listener, config, stop),
            Model::Prefork => prefork::serve(listener, config, stop),
            Model::MioMulti => mio_multi::serve(listener, config, stop),
            Model::TokioCurrentThread => tokio_current_thread::serve(listener, config, stop),
            Model::AsyncStd => async_std_rt::serve(listener, config, stop),
            Model::Smol => smol_rt::serve(listener, config, stop),
            Model::IoUring => io_uring_loop::serve(listener, config, stop),
            _ => anyhow::bail!(
                "{} serves {}, not TCP",
                self.name(),
                self.transport().name()
            ),
        }
    }

    fn serve_udp(
        self,
        socket: UdpSocket,
        config: &ServerConfig,
        stop: SignalPipe,
    ) -> anyhow::Result<()> {
        match self {
            Model::UdpBlocking => udp_blocking::serve(socket, config, stop),
            Model::UdpReuseport => udp_reuseport::serve(socket, config, stop),
            Model::UdpMio => udp_mio::serve(socket, config, stop),
            Model::UdpTokio => udp_tokio::serve(socket, config, stop),
            Model::UdpMmsg => udp_mmsg::serve(socket, config, stop),
            Model::UdpIoUring => udp_io_uring::serve(socket, config, stop),
            _ => anyhow::bail!(
                "{} serves {}, not UDP",
                self.name(),
                self.transport().name()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_lists_every_model_once_in_variant_order() {
        assert_eq!(REGISTRY.len(), Model::ALL.len());
        for (i, model) in Model::ALL.iter().enumerate() {
            assert_eq!(REGISTRY[i].model, *model, "entry {i}");
            assert_eq!(Model::from_name(model.name()), Some(*model));
        }
        let mut names: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Model::ALL.len(), "a name is used twice");
    }

    #[test]
    fn the_registry_knows_how_each_model_serves() {
        let model = |name| Model::from_name(name).unwrap().info();
        assert_eq!(model("blocking").clients_at_once, ClientsAtOnce::One);
        assert_eq!(model("thread-pool").clients_at_once, ClientsAtOnce::Workers);
        assert!(model("fork-per-client").forks && model("prefork").forks);
        assert!(!model("thread-per-client").forks);
        assert!(model("mio-multi").reuses_port && !model("mio").reuses_port);
        for m in Model::ALL {
            let pool = m.info().clients_at_once == ClientsAtOnce::Workers;
            assert_eq!(m.pool_workers().is_some(), pool, "{}", m.name());
        }
        let udp: Vec<&str> = Model::ALL
            .iter()
            .filter(|m| m.transport() == Transport::Udp)
            .map(|m| m.name())
            .collect();
        assert_eq!(
            udp,
            [
                "udp-blocking",
                "udp-reuseport",
                "udp-mio",
                "udp-tokio",
                "udp-mmsg",
                "udp-io-uring"
            ]
        );
        assert!(udp.iter().all(|n| n.starts_with("udp-")));
        assert!(model("udp-reuseport").reuses_port && model("udp-reuseport").cpu_workers);
        assert!(model("udp-tokio").cpu_workers && !model("udp-mio").cpu_workers);
        assert_eq!(model("io-uring").family, Family::EventLoops);
        assert_eq!(model("smol").family, Family::Runtimes);
        assert!(Model::ALL
            .iter()
            .all(|m| m.name().starts_with("udp-") == (m.transport() == Transport::Udp)));
        let tls: Vec<&str> = Model::ALL
            .iter()
            .filter(|m| m.supports_tls())
            .map(|m| m.name())
            .collect();
        assert_eq!(
            tls,
            [
                "blocking",
                "thread-per-client",
                "fork-per-client",
                "mio",
                "tokio",
                "thread-pool",
                "prefork",
                "mio-multi",
                "tokio-current-thread",
                "smol"
            ]
        );
    }
}
