//! One RFC 862 TCP echo protocol, served by many concurrency models.
//!
//! Every model lives in its own module under [`models`] and reads on its own; this file holds
//! the small core they share: the [`ServerConfig`], binding and the `listening on` line
//! ([`bind`], [`announce`]), the stop signal ([`SignalPipe`]), the poll-driven accept loop of
//! the blocking-style models ([`Acceptor`]), the blocking echo loop ([`echo_blocking`]) and the
//! [`Model`] registry that maps names to entry points.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Protocol, Socket, Type};

pub mod cli;
pub mod models;

/// Bytes read from a socket at once by the models that own one buffer per connection.
pub const READ_BUF: usize = 16 * 1024;

/// Upper bound on echo bytes a model may hold for one connection before it stops reading from
/// it. A client that sends but never reads is thereby back-pressured through TCP.
pub const MAX_PENDING: usize = 64 * 1024;

/// Pause after an accept error such as `EMFILE`, so that a server out of descriptors does not
/// spin on a listener that stays readable.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Listen backlog: large enough that bursts of connections (churn, 1024 clients) queue in the
/// kernel instead of being refused.
pub const BACKLOG: i32 = 1024;

/// What every model is told at start-up, from the command line.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind; port 0 picks any free port.
    pub addr: SocketAddr,
    /// Worker threads or processes for models that have workers; others ignore it.
    pub workers: usize,
    /// Connections served at once; connections beyond the cap are closed at once.
    pub max_conns: usize,
}

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
}

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
    ];

    /// The model's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Model::Blocking => "blocking",
            Model::ThreadPerClient => "thread-per-client",
            Model::ForkPerClient => "fork-per-client",
            Model::Mio => "mio",
            Model::Tokio => "tokio",
            Model::ThreadPool => "thread-pool",
            Model::Prefork => "prefork",
            Model::MioMulti => "mio-multi",
            Model::TokioCurrentThread => "tokio-current-thread",
            Model::AsyncStd => "async-std",
            Model::Smol => "smol",
            Model::IoUring => "io-uring",
        }
    }

    /// One line on how the model works, for reports.
    pub fn summary(self) -> &'static str {
        match self {
            Model::Blocking => "iterative: one client at a time, served to EOF, blocking I/O",
            Model::ThreadPerClient => "a new OS thread per connection, blocking I/O",
            Model::ForkPerClient => "a forked child process per connection, blocking I/O",
            Model::Mio => "one thread, one epoll loop (mio), non-blocking sockets",
            Model::Tokio => "tokio multi-thread runtime (--workers threads), a task per connection",
            Model::ThreadPool => {
                "a fixed pool of --workers threads (rayon); clients beyond the pool wait"
            }
            Model::Prefork => {
                "--workers processes forked up front, each accepting and serving one client at a time"
            }
            Model::MioMulti => {
                "--workers threads, each its own mio loop and SO_REUSEPORT listener (shared nothing)"
            }
            Model::TokioCurrentThread => "tokio single-thread runtime, a task per connection",
            Model::AsyncStd => {
                "async-std, a task per connection; async-std is discontinued upstream in favour of smol and kept for comparison"
            }
            Model::Smol => "smol executor on --workers threads, a task per connection",
            Model::IoUring => "one thread, one io_uring: completion-based reads and writes",
        }
    }

    /// Whether the model's listener must allow `SO_REUSEPORT` siblings.
    pub fn reuses_port(self) -> bool {
        self == Model::MioMulti
    }

    /// The model called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Model> {
        Model::ALL.iter().copied().find(|m| m.name() == name)
    }

    /// Serves on an already bound listener until `stop` fires (SIGINT or SIGTERM). The stop
    /// signals are registered by the caller before it announces the listener, so that a signal
    /// sent as soon as the `listening on` line appears is never missed.
    pub fn serve(
        self,
        listener: TcpListener,
        config: &ServerConfig,
        stop: SignalPipe,
    ) -> anyhow::Result<()> {
        match self {
            Model::Blocking => models::blocking::serve(listener, config, stop),
            Model::ThreadPerClient => models::thread_per_client::serve(listener, config, stop),
            Model::ForkPerClient => models::fork_per_client::serve(listener, config, stop),
            Model::Mio => models::mio_loop::serve(listener, config, stop),
            Model::Tokio => models::tokio_rt::serve(listener, config, stop),
            Model::ThreadPool => models::thread_pool::serve(listener, config, stop),
            Model::Prefork => models::prefork::serve(listener, config, stop),
            Model::MioMulti => models::mio_multi::serve(listener, config, stop),
            Model::TokioCurrentThread => {
                models::tokio_current_thread::serve(listener, config, stop)
            }
            Model::AsyncStd => models::async_std_rt::serve(listener, config, stop),
            Model::Smol => models::smol_rt::serve(listener, config, stop),
            Model::IoUring => models::io_uring_loop::serve(listener, config, stop),
        }
    }
}

/// Binds a listening socket on `addr` with `SO_REUSEADDR` and [`BACKLOG`]; with `reuse_port`
/// also `SO_REUSEPORT`, so that more listeners can bind the same address and share its
/// connections.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restarting a server must not wait for TIME_WAIT connections of the previous one.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Prints the one `listening on <ip>:<port>` line that scripts wait for, and flushes it.
pub fn announce(listener: &TcpListener) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")
        .and_then(|()| out.flush())
        .context("cannot write the `listening on` line to stdout")
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

/// `true` for the error a non-blocking call returns when it would have to wait.
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// `true` for a call cut short by a signal, to be retried.
pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// `true` for an accept error that concerns only the connection being accepted (it was reset
/// or refused before we took it): the next accept may succeed at once, no back-off needed.
pub fn accept_error_is_per_connection(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ECONNABORTED | Errno::EPROTO | Errno::EPERM | Errno::EINTR)
    )
}

/// Logs an error that ended one connection. Peers that leave abruptly (reset, broken pipe)
/// are normal under load and not logged: writing a line for each would make stderr the
/// bottleneck of a churn run.
pub fn log_connection_error(peer: SocketAddr, e: &io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {}
        _ => eprintln!("echo-server: connection {peer}: {e}"),
    }
}

/// Logs an accept error; see [`accept_error_is_per_connection`] for which need a back-off.
pub fn log_accept_error(e: &io::Error) {
    eprintln!("echo-server: accept: {e}");
}

/// A self-pipe that becomes readable when one of the registered signals arrives, plus a flag
/// that stays set once it has.
///
/// The handler only writes a byte (async-signal-safe); the model's loop sees the pipe in its
/// `poll` set or checks [`SignalPipe::raised`].
pub struct SignalPipe {
    read_end: UnixStream,
    raised: Arc<AtomicBool>,
}

impl SignalPipe {
    /// Registers `signals` (e.g. `SIGINT`, `SIGTERM`) to wake this pipe.
    pub fn register(signals: &[std::ffi::c_int]) -> io::Result<SignalPipe> {
        let (read_end, write_end) = UnixStream::pair()?;
        read_end.set_nonblocking(true)?;
        let raised = Arc::new(AtomicBool::new(false));
        for &signal in signals {
            // The pipe first: a signal that arrives between the two registrations still wakes
            // whoever polls the pipe.
            signal_hook::low_level::pipe::register(signal, write_end.try_clone()?)?;
            signal_hook::flag::register(signal, Arc::clone(&raised))?;
        }
        Ok(SignalPipe { read_end, raised })
    }

    /// The stop signals: `SIGINT` and `SIGTERM`.
    pub fn stop_signals() -> io::Result<SignalPipe> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        SignalPipe::register(&[SIGINT, SIGTERM])
    }

    /// Whether a registered signal has arrived since start-up.
    pub fn raised(&self) -> bool {
        self.raised.load(Ordering::Relaxed)
    }

    /// Empties the pipe so that a level-triggered poll stops reporting it.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.read_end).read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Blocks until a registered signal arrives (or has arrived).
    pub fn wait(&self) -> io::Result<()> {
        while !self.raised() {
            match poll(
                &mut [PollFd::new(self.read_end.as_fd(), PollFlags::POLLIN)],
                PollTimeout::NONE,
            ) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The read end, for a model that registers it with its own event loop.
    pub fn into_read_end(self) -> UnixStream {
        self.read_end
    }
}

impl AsFd for SignalPipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read_end.as_fd()
    }
}

/// What [`Acceptor::wait_for_work`] woke up for.
pub enum Wake {
    /// A new connection, already set up with `TCP_NODELAY`.
    Connection(TcpStream, SocketAddr),
    /// The extra signal pipe fired (e.g. `SIGCHLD` for a forking model); it has been drained.
    Extra,
    /// SIGINT or SIGTERM: stop accepting.
    Stop,
}

/// The accept loop of the blocking-style models: `poll` on the listener and the signal pipes,
/// so that a stop signal is seen at once while no client is being served.
pub struct Acceptor {
    listener: TcpListener,
    stop: SignalPipe,
    extra: Option<SignalPipe>,
}

impl Acceptor {
    /// Watches `listener` and the stop signals, plus `extra` when given.
    pub fn new(
        listener: TcpListener,
        stop: SignalPipe,
        extra: Option<SignalPipe>,
    ) -> io::Result<Acceptor> {
        // Non-blocking, so that a connection reset between poll and accept cannot block us.
        listener.set_nonblocking(true)?;
        Ok(Acceptor {
            listener,
            stop,
            extra,
        })
    }

    /// The stop signals, for a model that checks them while serving a client.
    pub fn stop(&self) -> &SignalPipe {
        &self.stop
    }

    /// The extra signal pipe, for a model that waits on it after the accept loop.
    pub fn extra(&self) -> Option<&SignalPipe> {
        self.extra.as_ref()
    }

    /// Blocks until there is a connection, a stop signal, or the extra signal.
    pub fn wait_for_work(&mut self) -> io::Result<Wake> {
        loop {
            if self.stop.raised() {
                return Ok(Wake::Stop);
            }
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    // On Linux an accepted socket does not inherit O_NONBLOCK: it blocks.
                    if let Err(e) = stream.set_nodelay(true) {
                        log_connection_error(peer, &e);
                        continue;
                    }
                    return Ok(Wake::Connection(stream, peer));
                }
                // Nothing to accept: wait below.
                Err(e) if would_block(&e) => {}
                // The client gave up before we took it; try the next one.
                Err(e) if accept_error_is_per_connection(&e) => continue,
                // Out of descriptors or memory: survive, and retry after a pause.
                Err(e) => {
                    log_accept_error(&e);
                    std::thread::sleep(ACCEPT_BACKOFF);
                    continue;
                }
            }
            if let Some(wake) = self.poll_once()? {
                return Ok(wake);
            }
        }
    }

    /// Polls until something is ready; `Some` for a signal, `None` when the listener is.
    fn poll_once(&self) -> io::Result<Option<Wake>> {
        let mut fds = vec![
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.stop.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(extra) = &self.extra {
            fds.push(PollFd::new(extra.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            // A signal interrupted poll: its pipe says which.
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready = |fd: &PollFd| fd.any().unwrap_or(false);
        if ready(&fds[1]) || self.stop.raised() {
            return Ok(Some(Wake::Stop));
        }
        if let Some(extra) = self
            .extra
            .as_ref()
            .filter(|_| fds.get(2).is_some_and(ready))
        {
            extra.drain();
            return Ok(Some(Wake::Extra));
        }
        Ok(None)
    }
}

/// A count of live connections with a cap, shared by the threads or tasks that serve them.
#[derive(Clone)]
pub struct ConnLimit {
    live: Arc<AtomicUsize>,
    max: usize,
}

/// Holds one slot of a [`ConnLimit`]; the slot is freed when this is dropped.
pub struct ConnSlot(Arc<AtomicUsize>);

impl ConnLimit {
    /// A limit of `max` connections at once.
    pub fn new(max: usize) -> ConnLimit {
        ConnLimit {
            live: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Takes a slot, or `None` when `max` connections are already being served.
    pub fn try_acquire(&self) -> Option<ConnSlot> {
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnSlot(Arc::clone(&self.live)))
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Echoes everything the peer sends, in order, until it half-closes; then closes our side.
///
/// Blocking I/O with one buffer: a chunk is written back whole before the next read, so a
/// client that never reads fills the socket buffers and is back-pressured by TCP. `stop` is
/// asked between chunks and whenever a read or write times out (a model may set
/// `SO_RCVTIMEO`/`SO_SNDTIMEO` as a tick to notice a stop signal while a client is idle).
pub fn echo_blocking(stream: &mut TcpStream, stop: &dyn Fn() -> bool) -> io::Result<()> {
    let mut buf = [0u8; READ_BUF];
    while !stop() {
        let n = match stream.read(&mut buf) {
            // Half-close: every byte read so far has been written back.
            Ok(0) => return stream.shutdown(Shutdown::Write),
            Ok(n) => n,
            // A signal, or the tick of a read timeout: ask `stop` again.
            Err(e) if interrupted(&e) || timed_out(&e) => continue,
            Err(e) => return Err(e),
        };
        write_all_until(stream, &buf[..n], stop)?;
    }
    Ok(())
}

/// `write_all`, except that a write timeout asks `stop` instead of failing (a plain
/// `write_all` would lose count of what a partial write already sent).
fn write_all_until(
    stream: &mut TcpStream,
    mut buf: &[u8],
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    while !buf.is_empty() {
        match stream.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if interrupted(&e) => {}
            // The peer is not reading; the caller sees `stop` on its next turn.
            Err(e) if timed_out(&e) && stop() => return Ok(()),
            Err(e) if timed_out(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A socket timeout shows as `WouldBlock` (EAGAIN) on Linux, `TimedOut` elsewhere.
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
