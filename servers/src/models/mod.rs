//! The models, one module each, and the registry that names them.
//!
//! Each model opens with what it is, where it should win and where it should break, and how to
//! run it. The registry ([`Model`]) carries what reports, tests and the command line need to
//! know of a model: its name, [`Family`], [`Transport`], whether it serves TLS, how many clients
//! it serves at once and whether it forks, so that they read it here instead of keeping lists of
//! names. No model imports the registry.

use std::net::{TcpListener, UdpSocket};

use crate::chat::Sharing;
use crate::config::ServerConfig;
use crate::signals::SignalPipe;

pub mod async_std_rt;
pub mod blocking;
pub mod fork_per_client;
pub mod io_uring_chat;
pub mod io_uring_loop;
pub mod mio_loop;
pub mod mio_multi;
pub mod prefork;
pub mod ring;
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
    /// Every family, in the tutorials' order (the order reports and legends list them).
    pub const ALL: [Family; 4] = [
        Family::IterativeAndPools,
        Family::ThreadsAndProcesses,
        Family::EventLoops,
        Family::Runtimes,
    ];

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

/// What a model serves on, bound by the caller before the `listening on` line: a model with
/// `SO_REUSEPORT` siblings has every one of them bound by then, so that no client that
/// connects as soon as the line appears finds only the first.
#[derive(Debug)]
pub enum Bound {
    /// A listening TCP socket.
    Tcp(TcpListener),
    /// A bound UDP socket.
    Udp(UdpSocket),
    /// Listening TCP sockets on one address, one per `--workers`.
    TcpGroup(Vec<TcpListener>),
    /// Bound UDP sockets on one address, one per `--workers`.
    UdpGroup(Vec<UdpSocket>),
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

/// How a model serves: its entry point, on a socket of its transport.
#[derive(Debug, Clone, Copy)]
pub enum Serve {
    /// On a listening TCP socket.
    Tcp(fn(TcpListener, &ServerConfig, SignalPipe) -> anyhow::Result<()>),
    /// On a bound UDP socket.
    Udp(fn(UdpSocket, &ServerConfig, SignalPipe) -> anyhow::Result<()>),
    /// On `SO_REUSEPORT` listening TCP sockets, one per `--workers`.
    TcpGroup(fn(Vec<TcpListener>, &ServerConfig, SignalPipe) -> anyhow::Result<()>),
    /// On `SO_REUSEPORT` bound UDP sockets, one per `--workers`.
    UdpGroup(fn(Vec<UdpSocket>, &ServerConfig, SignalPipe) -> anyhow::Result<()>),
}

/// What the registry knows of one model.
#[derive(Debug, Clone, Copy)]
pub struct ModelInfo {
    /// Name on the command line and in reports.
    pub name: &'static str,
    /// Family, for grouping in reports.
    pub family: Family,
    /// Its entry point, which also says its [`Transport`].
    pub serve: Serve,
    /// Whether it serves TLS (`--tls`).
    pub tls: bool,
    /// Clients served at the same time.
    pub clients_at_once: ClientsAtOnce,
    /// Whether clients are served in child processes (so each holds its own descriptors and
    /// memory is best read as PSS).
    pub forks: bool,
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
    /// Whether it has an event loop (or an executor) that `--offload pool` keeps free by
    /// handing requests' CPU work to a pool.
    pub offloads: bool,
}

impl ModelInfo {
    /// A model's transport, from its entry point.
    pub const fn transport(&self) -> Transport {
        match self.serve {
            Serve::Tcp(_) | Serve::TcpGroup(_) => Transport::Tcp,
            Serve::Udp(_) | Serve::UdpGroup(_) => Transport::Udp,
        }
    }

    /// Whether it serves on `SO_REUSEPORT` siblings, one per `--workers`, from its entry point
    /// ([`Serve::TcpGroup`], [`Serve::UdpGroup`]).
    pub const fn reuses_port(&self) -> bool {
        matches!(self.serve, Serve::TcpGroup(_) | Serve::UdpGroup(_))
    }

    /// The same model, also serving TLS (`--tls`).
    const fn tls(self) -> ModelInfo {
        ModelInfo { tls: true, ..self }
    }

    /// The same model, serving its clients in child processes.
    const fn forks(self) -> ModelInfo {
        ModelInfo {
            forks: true,
            ..self
        }
    }

    /// The same model as a pool of blocking workers that a comparison runs with `--workers n`.
    const fn pool(self, n: usize) -> ModelInfo {
        ModelInfo {
            pool_workers: Some(n),
            ..self
        }
    }

    /// The same model, able to hand `--work`'s CPU work to a pool (`--offload pool`).
    const fn offloads(self) -> ModelInfo {
        ModelInfo {
            offloads: true,
            ..self
        }
    }

    /// The same model, running `--workers` threads whatever its clients.
    const fn cpu_workers(self) -> ModelInfo {
        ModelInfo {
            cpu_workers: true,
            ..self
        }
    }
}

/// A model with none of the options of [`ModelInfo`]'s builders.
const fn plain(
    name: &'static str,
    family: Family,
    clients_at_once: ClientsAtOnce,
    serve: Serve,
    summary: &'static str,
) -> ModelInfo {
    ModelInfo {
        name,
        family,
        serve,
        tls: false,
        clients_at_once,
        forks: false,
        summary,
        pool_workers: None,
        cpu_workers: false,
        offloads: false,
    }
}

/// A TCP model without TLS, serving `clients_at_once` by `serve`.
const fn tcp(
    name: &'static str,
    family: Family,
    clients_at_once: ClientsAtOnce,
    serve: fn(TcpListener, &ServerConfig, SignalPipe) -> anyhow::Result<()>,
    summary: &'static str,
) -> ModelInfo {
    plain(name, family, clients_at_once, Serve::Tcp(serve), summary)
}

/// A TCP model on `SO_REUSEPORT` listeners, one per `--workers`, all bound before the
/// `listening on` line.
const fn tcp_group(
    name: &'static str,
    family: Family,
    clients_at_once: ClientsAtOnce,
    serve: fn(Vec<TcpListener>, &ServerConfig, SignalPipe) -> anyhow::Result<()>,
    summary: &'static str,
) -> ModelInfo {
    plain(
        name,
        family,
        clients_at_once,
        Serve::TcpGroup(serve),
        summary,
    )
}

/// A UDP model on `SO_REUSEPORT` sockets, one per `--workers`, all bound before the
/// `listening on` line.
const fn udp_group(
    name: &'static str,
    family: Family,
    serve: fn(Vec<UdpSocket>, &ServerConfig, SignalPipe) -> anyhow::Result<()>,
    summary: &'static str,
) -> ModelInfo {
    plain(
        name,
        family,
        ClientsAtOnce::Any,
        Serve::UdpGroup(serve),
        summary,
    )
}

/// A UDP model: every client is served by the same socket(s), whatever their number.
const fn udp(
    name: &'static str,
    family: Family,
    serve: fn(UdpSocket, &ServerConfig, SignalPipe) -> anyhow::Result<()>,
    summary: &'static str,
) -> ModelInfo {
    plain(name, family, ClientsAtOnce::Any, Serve::Udp(serve), summary)
}

/// Declares [`Model`], its registry and [`Model::ALL`] from one list of entries, so that a
/// model is its module plus one entry here: `Variant => ModelInfo`, in the order reports list
/// the models.
macro_rules! models {
    ($($(#[doc = $doc:literal])* $variant:ident => $info:expr,)*) => {
        /// The concurrency models, by the names `echo-server` accepts.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Model {
            $($(#[doc = $doc])* $variant,)*
        }

        /// The registry, in the order of [`Model`]'s variants.
        const REGISTRY: &[ModelInfo] = &[$($info,)*];

        impl Model {
            /// Every model, in the order reports list them.
            pub const ALL: &'static [Model] = &[$(Model::$variant,)*];
        }
    };
}

// The registry's vocabulary, so that each entry reads as one line.
use ClientsAtOnce::{Any, One, Workers};
use Family::{EventLoops, IterativeAndPools, Runtimes, ThreadsAndProcesses};

models! {
    /// Iterative: accept one client, serve it to EOF, then the next.
    Blocking => tcp("blocking", IterativeAndPools, One, blocking::serve,
        "iterative: one client at a time, served to EOF, blocking I/O").tls(),
    /// One OS thread per connection.
    ThreadPerClient => tcp("thread-per-client", ThreadsAndProcesses, Any, thread_per_client::serve,
        "a new OS thread per connection, blocking I/O").tls(),
    /// One forked process per connection.
    ForkPerClient => tcp("fork-per-client", ThreadsAndProcesses, Any, fork_per_client::serve,
        "a forked child process per connection, blocking I/O").forks().tls(),
    /// One thread, one mio `Poll`, non-blocking sockets.
    Mio => tcp("mio", EventLoops, Any, mio_loop::serve,
        "one thread, one epoll loop (mio), non-blocking sockets").tls().offloads(),
    /// tokio's multi-thread runtime, one task per connection.
    Tokio => tcp("tokio", Runtimes, Any, tokio_rt::serve,
        "tokio multi-thread runtime (--workers threads), a task per connection").tls().offloads(),
    /// A fixed pool of `--workers` threads (rayon) serving whole connections. Compared with 64
    /// threads: every 16-client workload is served four times over, while 128 and 1024
    /// clients show where a pool runs out; a thread costs a stack's touched pages.
    ThreadPool => tcp("thread-pool", IterativeAndPools, Workers, thread_pool::serve,
        "a fixed pool of --workers threads (rayon); clients beyond the pool wait").pool(64).tls(),
    /// `--workers` processes forked up front, all accepting on the shared listener. Compared
    /// with 16: one per client of the 16-client workloads; a process costs its own page
    /// tables and private pages, so process pools are kept smaller than thread pools.
    Prefork => tcp("prefork", IterativeAndPools, Workers, prefork::serve,
        "--workers processes forked up front, each accepting and serving one client at a time")
        .forks().pool(16).tls(),
    /// `--workers` threads, each its own mio loop and `SO_REUSEPORT` listener.
    MioMulti => tcp_group("mio-multi", EventLoops, Any, mio_multi::serve,
        "--workers threads, each its own mio loop and SO_REUSEPORT listener (shared nothing)")
        .tls().offloads(),
    /// tokio's single-thread runtime, one task per connection.
    TokioCurrentThread => tcp("tokio-current-thread", Runtimes, Any, tokio_current_thread::serve,
        "tokio single-thread runtime, a task per connection").tls().offloads(),
    /// async-std (discontinued upstream in favour of smol), one task per connection.
    AsyncStd => tcp("async-std", Runtimes, Any, async_std_rt::serve,
        "async-std, a task per connection; async-std is discontinued upstream in favour of smol and kept for comparison")
        .offloads(),
    /// smol, an executor on `--workers` threads, one task per connection.
    Smol => tcp("smol", Runtimes, Any, smol_rt::serve,
        "smol executor on --workers threads, a task per connection").tls().offloads(),
    /// Completion-based I/O on one io_uring, one thread.
    IoUring => tcp("io-uring", EventLoops, Any, io_uring_loop::serve,
        "one thread, one io_uring: completion-based reads and writes").offloads(),
    /// UDP: one thread, one blocking socket, a datagram at a time.
    UdpBlocking => udp("udp-blocking", IterativeAndPools, udp_blocking::serve,
        "UDP, iterative: one blocking socket, receive a datagram, send it back"),
    /// UDP: `--workers` threads, each a blocking socket on one `SO_REUSEPORT` address.
    UdpReuseport => udp_group("udp-reuseport", IterativeAndPools, udp_reuseport::serve,
        "UDP: --workers threads, each a blocking socket on one SO_REUSEPORT address")
        .cpu_workers(),
    /// UDP: one thread, one mio `Poll`, one non-blocking socket.
    UdpMio => udp("udp-mio", EventLoops, udp_mio::serve,
        "UDP: one thread, one epoll loop (mio), one non-blocking socket"),
    /// UDP: tokio's multi-thread runtime, `--workers` tasks on one socket.
    UdpTokio => udp("udp-tokio", Runtimes, udp_tokio::serve,
        "UDP: tokio multi-thread runtime, --workers tasks receiving on one socket").cpu_workers(),
    /// UDP: one thread, batches of datagrams by `recvmmsg`/`sendmmsg`.
    UdpMmsg => udp("udp-mmsg", EventLoops, udp_mmsg::serve,
        "UDP: one thread, batches of up to 32 datagrams per recvmmsg and sendmmsg"),
    /// UDP: one thread, one io_uring, one multishot receive into a pool of provided buffers.
    UdpIoUring => udp("udp-io-uring", EventLoops, udp_io_uring::serve,
        "UDP: one thread, one io_uring, one multishot receive into a pool of 64 provided buffers"),
}

/// What a model's name is followed by where it runs with `--offload pool`.
pub const POOLED: &str = "+pool";

/// Models whose way of working changed, earliest change first: the model, when the change
/// landed (RFC 3339, UTC), and its summary before.
const SUMMARIES_BEFORE: [(Model, &str, &str); 1] = [(
    Model::UdpIoUring,
    "2026-12-06T03:28:08Z",
    "UDP: one thread, one io_uring with 64 receives in flight",
)];

impl Model {
    /// What the registry knows of this model.
    pub fn info(self) -> &'static ModelInfo {
        // `models!` lists the registry in the order of the variants.
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

    /// One line on how the model worked in a comparison started at `started_utc` (RFC 3339,
    /// UTC): a report describes the server that ran, and re-rendering an older comparison
    /// says what it said then. [`SUMMARIES_BEFORE`] holds the lines that changed.
    pub fn summary_as_of(self, started_utc: &str) -> &'static str {
        SUMMARIES_BEFORE
            .iter()
            .filter(|&&(model, until, _)| model == self && started_utc < until)
            .map(|&(_, _, summary)| summary)
            .next()
            .unwrap_or(self.summary())
    }

    /// The model's family.
    pub fn family(self) -> Family {
        self.info().family
    }

    /// What the model serves echo over.
    pub fn transport(self) -> Transport {
        self.info().transport()
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
        self.info().reuses_port()
    }

    /// Whether the model can hand `--work`'s CPU work to a pool; see [`ModelInfo::offloads`].
    pub fn offloads(self) -> bool {
        self.info().offloads
    }

    /// How the model shares its chat rooms (`--chat`), and one line on the way it does; `None`
    /// for the UDP models, which serve no chat room.
    pub fn chat_sharing(self) -> Option<(Sharing, &'static str)> {
        Some(match self {
            Model::Blocking => (Sharing::Alone, "one member at a time, alone in its room"),
            Model::ThreadPerClient | Model::ThreadPool => (
                Sharing::Lock,
                "a Mutex per room, held by the sender's thread while it fills each member's mailbox",
            ),
            Model::ForkPerClient | Model::Prefork => (
                Sharing::Ipc,
                "a hub process owns the rooms; members' processes reach it over Unix sockets",
            ),
            Model::Mio | Model::IoUring => (Sharing::Owner, "the loop's one thread owns every room"),
            Model::MioMulti => (
                Sharing::Owner,
                "each loop owns the rooms numbered for it; a member moves to its room's loop",
            ),
            Model::Tokio | Model::TokioCurrentThread => (
                Sharing::Owner,
                "a task per room owns it; members' tasks send it their messages over a channel",
            ),
            Model::Smol | Model::AsyncStd => (
                Sharing::Lock,
                "a Mutex per room, held by the sender's task while it fills each member's channel",
            ),
            Model::UdpBlocking
            | Model::UdpReuseport
            | Model::UdpMio
            | Model::UdpTokio
            | Model::UdpMmsg
            | Model::UdpIoUring => return None,
        })
    }

    /// The model's name in reports and raw file names as it runs: `mio`, or `mio+pool` with
    /// `--offload pool`.
    pub fn label(self, pooled: bool) -> String {
        match pooled {
            true => format!("{}{POOLED}", self.name()),
            false => self.name().to_owned(),
        }
    }

    /// The model called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// The models that serve `transport`, in registry order.
    pub fn of(transport: Transport) -> impl Iterator<Item = Model> {
        Model::ALL
            .iter()
            .copied()
            .filter(move |m| m.transport() == transport)
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
        match (self.info().serve, bound) {
            (Serve::Tcp(serve), Bound::Tcp(listener)) => serve(listener, config, stop),
            (Serve::Udp(serve), Bound::Udp(socket)) => serve(socket, config, stop),
            (Serve::TcpGroup(serve), Bound::TcpGroup(listeners)) => serve(listeners, config, stop),
            (Serve::UdpGroup(serve), Bound::UdpGroup(sockets)) => serve(sockets, config, stop),
            (_, bound) => anyhow::bail!(
                "{} serves {}{}, not on {bound:?}",
                self.name(),
                self.transport().name(),
                if self.reuses_port() {
                    " on SO_REUSEPORT siblings"
                } else {
                    ""
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_comparison_is_described_as_its_server_worked_then() {
        let model = Model::UdpIoUring;
        assert_eq!(model.summary_as_of("2026-12-06T03:57:47Z"), model.summary());
        let then = model.summary_as_of("2026-11-23T10:00:00Z");
        assert!(then.contains("64 receives in flight"), "{then}");
        assert_eq!(
            Model::Mio.summary_as_of("2020-01-01T00:00:00Z"),
            Model::Mio.summary()
        );
        for (model, until, before) in SUMMARIES_BEFORE {
            assert_ne!(model.summary(), before, "{until}");
            assert!(humantime::parse_rfc3339(until).is_ok(), "{until}");
        }
    }

    #[test]
    fn the_registry_lists_every_model_once_in_variant_order() {
        assert_eq!(REGISTRY.len(), Model::ALL.len());
        for (i, model) in Model::ALL.iter().enumerate() {
            assert_eq!(
                Model::from_name(REGISTRY[i].name),
                Some(*model),
                "entry {i}"
            );
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
        assert!(model("mio-multi").reuses_port() && !model("mio").reuses_port());
        for m in Model::ALL {
            let pool = m.info().clients_at_once == ClientsAtOnce::Workers;
            assert_eq!(m.pool_workers().is_some(), pool, "{}", m.name());
        }
        let udp: Vec<&str> = Model::of(Transport::Udp).map(Model::name).collect();
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
        assert!(model("udp-reuseport").reuses_port() && model("udp-reuseport").cpu_workers);
        assert!(model("udp-tokio").cpu_workers && !model("udp-mio").cpu_workers);
        assert_eq!(model("io-uring").family, Family::EventLoops);
        let offloading: Vec<&str> = Model::ALL
            .iter()
            .filter(|m| m.offloads())
            .map(|m| m.name())
            .collect();
        assert_eq!(
            offloading,
            [
                "mio",
                "tokio",
                "mio-multi",
                "tokio-current-thread",
                "async-std",
                "smol",
                "io-uring"
            ]
        );
        assert_eq!(Model::Mio.label(true), "mio+pool");
        assert_eq!(Model::Mio.label(false), "mio");
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
