//! `mio`: one thread, one `mio::Poll` (epoll, edge-triggered), every socket non-blocking. The
//! loop reads whatever is ready into one shared scratch buffer and writes it straight back;
//! only what the socket does not take at once is kept, in that connection's pending buffer.
//!
//! Should win: many connections on one core. A connection costs a slab entry and its socket,
//! not a stack; there are no context switches between clients and no locks.
//! Should break: on a multi-core machine it uses one core only (see `tokio`), and any slow work
//! in the loop would stall every client at once.
//!
//! Back-pressure: a connection's pending echo is capped at [`MAX_PENDING`]; when it is full the
//! loop stops reading that client (drops READABLE interest) until it drains. WRITABLE interest
//! is held only while output is pending.
//!
//! With `--tls`, each connection is a rustls connection driven by the same loop: handshakes run
//! inline, so a burst of them delays every other client's echo by their CPU time (the
//! cooperative cost to compare with the threads' preemption). A handshake not complete by its
//! deadline is ended by the loop, which keeps the deadlines in accept order.
//!
//! With `--work`, a request's CPU work runs inline on the loop's one thread, so every other
//! client waits for it (the classic way to block an event loop); a wait is a timer on the
//! loop's own list, so waiting clients cost nothing. A connection is not read while its
//! request waits, and a turn ends after a request that cost CPU, so that the others get theirs.
//! With `--offload pool` the CPU work goes to a rayon pool instead and the loop stays free: the
//! pool's job puts its connection on a list and writes an eventfd the loop watches, and the
//! connection is not read until its work is back (bounded memory, requests in order). A client
//! that resets meanwhile ends its job within about 2 ms of work. With `--idle-timeout`, each
//! connection keeps a clock that restarts with every request, and the loop sweeps its
//! connections every 50 ms for those overdue (a sweep, not a timer per request); a slowloris
//! client costs it a few hundred bytes until then.
//!
//! With `--chat`, the loop is the single owner of every room (`chat::owner`): no lock, since
//! no other thread touches them; a message is queued for each member of its room within the
//! turn that read it, and each member's queue is written as its socket takes it.
//!
//! Run: `echo-server mio --addr 127.0.0.1:7007 [--max-conns N] [--tls ... | --work [--offload
//! pool]]`

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::accept::{accept_error_is_per_connection, log_accept_error, ACCEPT_BACKOFF};
use crate::chat::{self, owner::Owner};
use crate::config::ServerConfig;
use crate::conn_limit::{ConnLimit, ConnSlot};
use crate::defence::{self, IdleClock};
use crate::echo::{HalfClose, MAX_PENDING};
use crate::endings::{self, Ending};
use crate::errors::{interrupted, would_block};
use crate::signals::SignalPipe;
use crate::tls::{self, MaybeTls, Tls};
use crate::work::{parse_front, FrontCpu, Offload, Work};

const LISTENER: Token = Token(usize::MAX - 1);
/// The token of the stop source: the signal pipe here, a `Waker` in `mio-multi`.
pub(crate) const STOP: Token = Token(usize::MAX - 2);
// `--chat` runs `chat::owner::run` on the poll the stop source is registered with here.
const _: () = assert!(STOP.0 == chat::owner::STOP.0);
/// The token of the timerfd that ends `--work` waits.
const TIMER: Token = Token(usize::MAX - 3);
/// The token of the eventfd that `--offload pool`'s finished jobs write.
const OFFLOADED: Token = Token(usize::MAX - 4);

/// `--work`: requests one connection may have served per turn before the others get a turn.
const REQUESTS_PER_TURN: usize = 16;

/// Size of the one read buffer the loop shares between all connections.
const SCRATCH: usize = 64 * 1024;

/// Reads one connection may do per wake-up before the others get a turn.
const READS_PER_TURN: usize = 16;

/// One client.
struct Conn {
    stream: MaybeTls<TcpStream>,
    /// This connection's place under `--max-conns`, freed when it closes.
    _slot: ConnSlot,
    token: Token,
    /// Echo bytes the socket has not taken yet, oldest first.
    pending: Vec<u8>,
    /// False once the client has half-closed.
    read_open: bool,
    /// The interest registered with the poll now.
    interest: Interest,
    /// TLS: when the handshake must be complete by; `None` once it is (and for plain TCP).
    handshake_deadline: Option<Instant>,
    /// `--work`: the requests read and not yet answered; `None` for plain echo.
    requests: Option<Requests>,
}

/// `--work`: what one connection has of its requests.
struct Requests {
    work: Work,
    /// Bytes read and not yet answered: the request being served first.
    input: Vec<u8>,
    /// The first request has had its CPU work and waits for its timer until then.
    waiting_until: Option<Instant>,
    /// The first request's CPU work: with `--offload pool` in the pool, and the connection
    /// not read, until it is done.
    cpu: FrontCpu,
    /// `--idle-timeout`: since when the connection has been idle or sending its request.
    clock: Option<IdleClock>,
}

impl Requests {
    /// `--idle-timeout`: whether the connection, with nothing of ours in flight, has taken
    /// longer than its limit to send its next request or the rest of one.
    fn overdue(&self, owed: bool, now: Instant) -> bool {
        let Some(clock) = &self.clock else {
            return false;
        };
        let complete = parse_front(&self.input)
            .and_then(Result::ok)
            .is_some_and(|c| self.input.len() >= c.len);
        let in_flight = owed || complete || self.waiting_until.is_some() || self.cpu.in_pool();
        !in_flight && clock.overdue(now)
    }
}

/// What one turn on a connection left it as.
enum Turn {
    /// Waits for its next readiness event.
    Idle,
    /// Still had input when its read budget ran out: give it another turn soon.
    MoreToRead,
    /// Finished (echo flushed after half-close) or failed: remove it.
    Done,
    /// `--work`: sent a request that breaks a rule: count it as this and remove it.
    Refused(Ending),
}

/// Runs the event loop until SIGINT or SIGTERM.
pub fn serve(listener: StdListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let poll = Poll::new().context("cannot create the poll")?;
    let mut stop = UnixStream::from_std(stop.into_read_end());
    poll.registry()
        .register(&mut stop, STOP, Interest::READABLE)
        .context("cannot register the signal pipe")?;
    if let Some(queue) = config.chat {
        let listener = chat_listener(listener)?;
        let limit = Some(ConnLimit::of(config));
        let owner = (Owner::new(queue), None);
        return chat::owner::run(poll, listener, limit, owner, &|| true)
            .context("chat loop failed");
    }
    let pool = config.offload.map(Offload::pool).transpose()?;
    let work_loop = WorkLoop::new(poll.registry(), config.work.is_some(), pool.as_ref())?
        .idle_timeout(config.defences.idle_timeout);
    event_loop(
        poll,
        listener,
        ConnLimit::of(config),
        config.tls.clone(),
        (config.work, work_loop),
    )
}

/// `--chat`: the listener, non-blocking, for [`chat::owner::run`] to register.
pub(crate) fn chat_listener(listener: StdListener) -> anyhow::Result<TcpListener> {
    listener
        .set_nonblocking(true)
        .context("cannot make the listener non-blocking")?;
    Ok(TcpListener::from_std(listener))
}

/// The listener, non-blocking, registered with `poll` under [`LISTENER`].
fn register_listener(poll: &Poll, listener: StdListener) -> anyhow::Result<TcpListener> {
    listener
        .set_nonblocking(true)
        .context("cannot make the listener non-blocking")?;
    let mut listener = TcpListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .context("cannot register the listener")?;
    Ok(listener)
}

/// The loop itself, until an event on [`STOP`], which the caller has registered with `poll`.
pub(crate) fn event_loop(
    mut poll: Poll,
    listener: StdListener,
    limit: ConnLimit,
    tls: Option<Tls>,
    (work, mut work_loop): (Option<Work>, WorkLoop),
) -> anyhow::Result<()> {
    let listener = Listener {
        socket: register_listener(&poll, listener)?,
        limit,
        tls,
        work,
        idle: work_loop.idle.map(|(limit, _)| limit),
    };

    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Conn> = Slab::new();
    let mut scratch = vec![0u8; SCRATCH];
    let mut accept_paused_until: Option<Instant> = None;
    let mut more_to_read: Vec<usize> = Vec::new();
    let mut next_turns: Vec<usize> = Vec::new();
    let mut handshakes = Deadlines::default();

    loop {
        // Block unless connections are waiting for another turn, accepting is paused or a
        // handshake is due.
        let timeout = if !more_to_read.is_empty() {
            Some(Duration::ZERO)
        } else {
            let paused =
                accept_paused_until.map(|until| until.saturating_duration_since(Instant::now()));
            [paused, handshakes.next_due(), work_loop.next_sweep()]
                .into_iter()
                .flatten()
                .min()
        };
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if interrupted(&e) => continue,
            Err(e) => return Err(e).context("poll failed"),
        }
        handshakes.end_overdue(&mut conns, poll.registry());
        for key in work_loop.overdue(&conns) {
            endings::count(Ending::IdleTimeout);
            close(conns.remove(key), poll.registry());
        }
        if accept_paused_until.is_some_and(|until| Instant::now() >= until) {
            accept_paused_until = listener.accept_all(&mut conns, poll.registry(), &mut handshakes);
        }
        std::mem::swap(&mut more_to_read, &mut next_turns);
        // Waits that are over: their connections answer and go on.
        next_turns.extend(work_loop.take_due(&conns));
        for event in events.iter() {
            match event.token() {
                STOP => return Ok(()),
                TIMER => work_loop.fired(),
                OFFLOADED => next_turns.extend(work_loop.offloaded(&mut conns)),
                LISTENER if accept_paused_until.is_none() => {
                    accept_paused_until =
                        listener.accept_all(&mut conns, poll.registry(), &mut handshakes);
                }
                LISTENER => {}
                Token(key) => take_turn(
                    key,
                    // A FIN or error already in the event must be read even after a short read.
                    event.is_read_closed() || event.is_error(),
                    &mut conns,
                    &mut scratch,
                    poll.registry(),
                    &mut more_to_read,
                    &mut work_loop,
                ),
            }
        }
        for key in next_turns.drain(..) {
            take_turn(
                key,
                true,
                &mut conns,
                &mut scratch,
                poll.registry(),
                &mut more_to_read,
                &mut work_loop,
            );
        }
        work_loop.arm().context("cannot arm the wait timer")?;
    }
}

/// The listener and what every accepted connection gets from it.
struct Listener {
    socket: TcpListener,
    limit: ConnLimit,
    tls: Option<Tls>,
    work: Option<Work>,
    /// `--idle-timeout`, for each connection's clock.
    idle: Option<Duration>,
}

/// `--work`: what a loop keeps beside its connections: when waiting requests are due,
/// earliest first, and a timerfd armed for the first (epoll's own timeout is whole
/// milliseconds, too coarse for a 1 ms wait); with `--offload pool`, the pool and the eventfd
/// its finished jobs come back through. Plain echo has none of them.
pub(crate) struct WorkLoop {
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    fd: Option<nix::sys::timerfd::TimerFd>,
    armed_for: Option<Instant>,
    offload: Option<Offload>,
    /// `--idle-timeout`, and when the connections were last swept for those overdue.
    idle: Option<(Duration, Instant)>,
}

impl WorkLoop {
    /// What a loop registered with `registry` keeps for `--work` (nothing without it), with
    /// `pool` the pool that `--offload pool` hands CPU work to.
    pub(crate) fn new(
        registry: &Registry,
        work: bool,
        pool: Option<&Arc<rayon::ThreadPool>>,
    ) -> anyhow::Result<WorkLoop> {
        use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
        use std::os::fd::{AsFd, AsRawFd};
        if !work {
            return Ok(WorkLoop {
                due: BinaryHeap::new(),
                fd: None,
                armed_for: None,
                offload: None,
                idle: None,
            });
        }
        let offload = pool
            .map(|pool| Offload::new(Arc::clone(pool)))
            .transpose()?;
        if let Some(offload) = &offload {
            let raw = offload.as_fd().as_raw_fd();
            registry
                .register(
                    &mut mio::unix::SourceFd(&raw),
                    OFFLOADED,
                    Interest::READABLE,
                )
                .context("cannot register the --offload eventfd")?;
        }
        let flags = TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC;
        let fd = TimerFd::new(ClockId::CLOCK_MONOTONIC, flags)
            .context("cannot create the --work wait timer")?;
        let raw = fd.as_fd().as_raw_fd();
        registry
            .register(&mut mio::unix::SourceFd(&raw), TIMER, Interest::READABLE)
            .context("cannot register the --work wait timer")?;
        Ok(WorkLoop {
            due: BinaryHeap::new(),
            fd: Some(fd),
            armed_for: None,
            offload,
            idle: None,
        })
    }

    /// The same, closing connections idle for longer than `limit` (`--idle-timeout`).
    pub(crate) fn idle_timeout(self, limit: Option<Duration>) -> WorkLoop {
        WorkLoop {
            idle: limit.map(|limit| (limit, Instant::now())),
            ..self
        }
    }

    /// `--idle-timeout`: how long until the next sweep, if there is one.
    fn next_sweep(&self) -> Option<Duration> {
        let (_, swept) = self.idle?;
        Some((swept + defence::SWEEP).saturating_duration_since(Instant::now()))
    }

    /// `--idle-timeout`: the connections overdue, once a [`defence::SWEEP`] has passed since
    /// the last look (a sweep, as Redis looks for idle clients in its cron, rather than a
    /// timer per request: the clocks restart on every request and cost nothing then).
    fn overdue(&mut self, conns: &Slab<Conn>) -> Vec<usize> {
        let now = Instant::now();
        let Some((_, swept)) = &mut self.idle else {
            return Vec::new();
        };
        if now < *swept + defence::SWEEP {
            return Vec::new();
        }
        *swept = now;
        conns
            .iter()
            .filter(|(_, c)| {
                c.requests
                    .as_ref()
                    .is_some_and(|r| r.overdue(!c.pending.is_empty(), now))
            })
            .map(|(key, _)| key)
            .collect()
    }

    /// `--offload pool`: the connections whose CPU work the pool has finished, marked so; a
    /// job whose connection has closed (its key perhaps reused since) is dropped.
    fn offloaded(&mut self, conns: &mut Slab<Conn>) -> Vec<usize> {
        let Some(offload) = &self.offload else {
            return Vec::new();
        };
        let mut keys = Vec::new();
        for (key, job) in offload.finished() {
            let Some(requests) = conns.get_mut(key).and_then(|c| c.requests.as_mut()) else {
                continue;
            };
            if requests.cpu.finished(&job) {
                keys.push(key);
            }
        }
        keys
    }

    /// Connection `key`'s request is due at `at`.
    fn add(&mut self, at: Instant, key: usize) {
        self.due.push(Reverse((at, key)));
    }

    /// The timerfd fired: it is armed again for whatever is due next.
    fn fired(&mut self) {
        self.armed_for = None;
    }

    /// The connections whose wait is over. An entry whose connection has closed (its slab
    /// key perhaps reused since) or waits for another time is dropped.
    fn take_due(&mut self, conns: &Slab<Conn>) -> Vec<usize> {
        let now = Instant::now();
        let mut keys = Vec::new();
        while let Some(&Reverse((at, key))) = self.due.peek().filter(|Reverse((at, _))| *at <= now)
        {
            self.due.pop();
            let waiting = conns
                .get(key)
                .and_then(|c| c.requests.as_ref()?.waiting_until);
            if waiting == Some(at) {
                keys.push(key);
            }
        }
        keys
    }

    /// Arms the timerfd for the first wait due, unless it is armed for it already.
    fn arm(&mut self) -> io::Result<()> {
        use nix::sys::time::TimeSpec;
        use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
        let (Some(&Reverse((at, _))), Some(fd)) = (self.due.peek(), &self.fd) else {
            return Ok(());
        };
        if self.armed_for == Some(at) {
            return Ok(());
        }
        // A zero expiry would disarm the timer: one already due fires in a nanosecond.
        let left = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        fd.set(
            Expiration::OneShot(TimeSpec::from_duration(left)),
            TimerSetTimeFlags::empty(),
        )?;
        self.armed_for = Some(at);
        Ok(())
    }
}

/// The handshake deadlines of TLS connections, in accept order, which is deadline order (one
/// timeout for all).
#[derive(Default)]
struct Deadlines(VecDeque<(Instant, usize)>);

impl Deadlines {
    /// How long until the first deadline, if any.
    fn next_due(&self) -> Option<Duration> {
        let (due, _) = self.0.front()?;
        Some(due.saturating_duration_since(Instant::now()))
    }

    /// Closes every connection whose handshake is overdue. An entry whose connection has
    /// finished its handshake or closed (its slab key perhaps reused since) is dropped.
    fn end_overdue(&mut self, conns: &mut Slab<Conn>, registry: &Registry) {
        let now = Instant::now();
        while let Some(&(due, key)) = self.0.front().filter(|(due, _)| *due <= now) {
            self.0.pop_front();
            if conns
                .get(key)
                .is_some_and(|c| c.handshake_deadline == Some(due))
            {
                endings::count(Ending::HandshakeTimeout);
                close(conns.remove(key), registry);
            }
        }
    }
}

impl Listener {
    /// Accepts until the backlog is empty. Returns when accepting should resume after an
    /// error such as `EMFILE` (the listener is edge-triggered, so the loop must come back on
    /// its own).
    fn accept_all(
        &self,
        conns: &mut Slab<Conn>,
        registry: &Registry,
        handshakes: &mut Deadlines,
    ) -> Option<Instant> {
        loop {
            match self.socket.accept() {
                Ok((stream, _)) => self.add(stream, conns, registry, handshakes),
                Err(e) if would_block(&e) => return None,
                // The client gave up before we took it; try the next one.
                Err(e) if accept_error_is_per_connection(&e) => {}
                // Out of descriptors or memory: keep serving, retry accepting after a pause.
                Err(e) => {
                    log_accept_error(&e);
                    return Some(Instant::now() + ACCEPT_BACKOFF);
                }
            }
        }
    }

    /// Registers a new connection (TLS: starts its handshake clock), unless over the cap.
    fn add(
        &self,
        mut stream: TcpStream,
        conns: &mut Slab<Conn>,
        registry: &Registry,
        handshakes: &mut Deadlines,
    ) {
        // Refused (a defence) or over the cap: dropping the stream closes it at once.
        let Some(slot) = self.limit.admit(&stream) else {
            return;
        };
        let entry = conns.vacant_entry();
        let token = Token(entry.key());
        let registered = stream
            .set_nodelay(true)
            .and_then(|()| registry.register(&mut stream, token, Interest::READABLE));
        let stream = match (registered, &self.tls) {
            (Ok(()), None) => MaybeTls::Plain(stream),
            (Ok(()), Some(tls)) => match tls.accept(stream) {
                Ok(stream) => MaybeTls::Tls(Box::new(stream)),
                Err(_) => return endings::count(Ending::Other),
            },
            (Err(e), _) => return endings::ended_by(&e),
        };
        let handshake_deadline = self.tls.as_ref().map(|tls| {
            let due = Instant::now() + tls.handshake_timeout();
            handshakes.0.push_back((due, token.0));
            due
        });
        entry.insert(Conn {
            stream,
            _slot: slot,
            token,
            pending: Vec::new(),
            read_open: true,
            interest: Interest::READABLE,
            handshake_deadline,
            requests: self.work.map(|work| Requests {
                work,
                input: Vec::new(),
                waiting_until: None,
                cpu: FrontCpu::default(),
                clock: IdleClock::start(self.idle),
            }),
        });
    }
}

/// Gives connection `key` a turn; removes it when it is done.
fn take_turn(
    key: usize,
    drain: bool,
    conns: &mut Slab<Conn>,
    scratch: &mut [u8],
    registry: &Registry,
    more_to_read: &mut Vec<usize>,
    work_loop: &mut WorkLoop,
) {
    // A connection closed earlier in this batch may still have events queued.
    let Some(conn) = conns.get_mut(key) else {
        return;
    };
    let turn = match conn.requests.is_some() {
        true => conn.work_turn(key, scratch, drain, registry, work_loop),
        false => conn.turn(scratch, drain, registry),
    };
    if conn.handshake_deadline.is_some() && !conn.stream.is_handshaking() {
        conn.handshake_deadline = None;
        if let MaybeTls::Tls(stream) = &conn.stream {
            if let Some(handshake) = tls::handshake_of(stream.connection()) {
                endings::count_handshake(handshake);
            }
        }
    }
    match turn {
        Ok(Turn::Idle) => {}
        Ok(Turn::MoreToRead) => more_to_read.push(key),
        Ok(Turn::Done) => close(conns.remove(key), registry),
        Ok(Turn::Refused(ending)) => {
            endings::count(ending);
            close(conns.remove(key), registry);
        }
        Err(e) => {
            let ending = conn.stream.ending_of(&e);
            endings::count(if conn.read_open || conn.pending.is_empty() {
                ending
            } else {
                ending.with_echo_owed()
            });
            close(conns.remove(key), registry);
        }
    }
}

fn close(mut conn: Conn, registry: &Registry) {
    // A client gone while its request's CPU work is in the pool costs no more of it.
    if let Some(requests) = &conn.requests {
        requests.cpu.abandon();
    }
    // Dropping the stream closes it; deregistering first keeps the poll's set exact.
    let _ = registry.deregister(conn.stream.socket_mut());
}

impl Conn {
    /// Flushes pending echo, reads and echoes what is ready, and updates the interest.
    ///
    /// A read shorter than asked for emptied the socket's receive queue, and anything that
    /// arrives later raises a new edge; so, unless `drain` (the event already reported the
    /// client's FIN, which a short read can leave behind), the turn ends there instead of
    /// paying for a read that returns EAGAIN. Not so over TLS: a read returns one record's
    /// plaintext at most, whatever the socket still holds.
    fn turn(&mut self, scratch: &mut [u8], drain: bool, registry: &Registry) -> io::Result<Turn> {
        self.flush()?;
        let drain = drain || matches!(self.stream, MaybeTls::Tls(_));
        let mut reads = 0;
        let mut more_to_read = false;
        while self.read_open && self.pending.len() < MAX_PENDING {
            if reads == READS_PER_TURN {
                more_to_read = true;
                break;
            }
            reads += 1;
            // Never read more than the pending buffer could still hold.
            let room = if self.pending.is_empty() {
                scratch.len()
            } else {
                (MAX_PENDING - self.pending.len()).min(scratch.len())
            };
            match self.stream.read(&mut scratch[..room]) {
                // Half-close: flush what is pending, then close.
                Ok(0) => self.read_open = false,
                Ok(n) => {
                    self.echo(&scratch[..n])?;
                    if n < room && !drain {
                        break;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if !self.read_open && self.pending.is_empty() {
            match self.stream.shutdown_write() {
                Ok(()) => return Ok(Turn::Done),
                // TLS: the `close_notify` waits for the socket to take it (WRITABLE below).
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(e),
            }
        }
        self.update_interest(registry)?;
        Ok(if more_to_read {
            Turn::MoreToRead
        } else {
            Turn::Idle
        })
    }

    /// Writes `data` back; whatever the socket does not take joins the pending buffer.
    fn echo(&mut self, data: &[u8]) -> io::Result<()> {
        crate::echo::test_spin();
        if !self.pending.is_empty() {
            // Order: older pending bytes go out first.
            self.pending.extend_from_slice(data);
            return self.flush();
        }
        let written = write_some(&mut self.stream, data)?;
        self.pending.extend_from_slice(&data[written..]);
        Ok(())
    }

    /// Writes as much pending echo (and TLS records) as the socket takes now.
    fn flush(&mut self) -> io::Result<()> {
        if self.stream.wants_write() {
            match self.stream.flush() {
                Err(e) if !would_block(&e) => return Err(e),
                _ => {}
            }
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = write_some(&mut self.stream, &self.pending)?;
        self.pending.drain(..written);
        if self.pending.is_empty() {
            // Give back the memory a burst made it grow to.
            self.pending.shrink_to(0);
        }
        Ok(())
    }

    /// `--work`: answers waits that are over, serves the requests read (CPU work inline, a
    /// wait as a timer), reads more while the first request is incomplete, and updates the
    /// interest. Ends after a request that cost CPU, so that other connections get a turn.
    fn work_turn(
        &mut self,
        key: usize,
        scratch: &mut [u8],
        drain: bool,
        registry: &Registry,
        work_loop: &mut WorkLoop,
    ) -> io::Result<Turn> {
        self.flush()?;
        let Some(requests) = self.requests.as_mut() else {
            return Ok(Turn::Idle);
        };
        if requests.cpu.in_pool() {
            // In the pool: not read until it is done, but a reset ends it now.
            return match self.stream.socket_mut().take_error()? {
                Some(e) => Err(e),
                None => Ok(Turn::Idle),
            };
        }
        if let Some(until) = requests.waiting_until {
            if Instant::now() < until {
                return Ok(Turn::Idle);
            }
            requests.waiting_until = None;
            let len = parse_front(&requests.input)
                .and_then(Result::ok)
                .map_or(0, |c| c.len);
            answer(
                &mut self.stream,
                &mut self.pending,
                &mut requests.input,
                len,
            )?;
            defence::restart(&mut requests.clock);
        }
        let (mut reads, mut served, mut drained) = (0, 0, false);
        let turn = loop {
            match parse_front(&requests.input) {
                Some(Err(bad)) => return Ok(Turn::Refused(bad)),
                Some(Ok(cost)) if requests.input.len() >= cost.len => {
                    // Back-pressure: WRITABLE brings the connection back once it drains.
                    if self.pending.len() >= MAX_PENDING {
                        break Turn::Idle;
                    }
                    if served == REQUESTS_PER_TURN {
                        break Turn::MoreToRead;
                    }
                    served += 1;
                    let offload = work_loop.offload.as_ref();
                    if !requests.cpu.pay(&requests.work, cost.cpu_ns, offload, key) {
                        break Turn::Idle;
                    }
                    if cost.wait_us > 0 {
                        let until = Instant::now() + cost.wait();
                        requests.waiting_until = Some(until);
                        work_loop.add(until, key);
                        break Turn::Idle;
                    }
                    answer(
                        &mut self.stream,
                        &mut self.pending,
                        &mut requests.input,
                        cost.len,
                    )?;
                    defence::restart(&mut requests.clock);
                    if cost.cpu_ns > 0 && work_loop.offload.is_none() {
                        break Turn::MoreToRead;
                    }
                    continue;
                }
                _ => {}
            }
            if !self.read_open || drained {
                break Turn::Idle;
            }
            if reads == READS_PER_TURN {
                break Turn::MoreToRead;
            }
            reads += 1;
            match self.stream.read(scratch) {
                Ok(0) => self.read_open = false,
                Ok(n) => {
                    // A request's first byte: it has the limit from now to arrive whole.
                    if requests.input.is_empty() {
                        defence::restart(&mut requests.clock);
                    }
                    requests.input.extend_from_slice(&scratch[..n]);
                    drained = n < scratch.len() && !drain;
                }
                Err(e) if would_block(&e) => drained = true,
                Err(e) if interrupted(&e) => {}
                Err(e) => return Err(e),
            }
        };
        let idle = requests.waiting_until.is_none() && requests.input.is_empty();
        if !self.read_open && requests.waiting_until.is_none() && !requests.input.is_empty() {
            let complete = parse_front(&requests.input)
                .and_then(Result::ok)
                .is_some_and(|c| requests.input.len() >= c.len);
            if !complete {
                // The client half-closed in the middle of a request.
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        if !self.read_open && idle && self.pending.is_empty() {
            self.stream.shutdown_write()?;
            return Ok(Turn::Done);
        }
        if requests.input.is_empty() && requests.input.capacity() > SCRATCH {
            // Give back what one large request made the buffer grow to.
            requests.input = Vec::new();
        }
        self.update_interest(registry)?;
        Ok(turn)
    }

    /// READABLE while the client may send and there is room; WRITABLE while echo (or a TLS
    /// record) is pending.
    fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let readable = self.read_open && self.pending.len() < MAX_PENDING;
        let writable = !self.pending.is_empty() || self.stream.wants_write();
        let wanted = match (readable, writable) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            (false, _) => Interest::WRITABLE,
        };
        if wanted != self.interest {
            // Re-arming re-checks readiness, so data that arrived meanwhile is reported.
            registry.reregister(self.stream.socket_mut(), self.token, wanted)?;
            self.interest = wanted;
        }
        Ok(())
    }
}

/// `--work`: sends back the first `len` bytes of `input` (a whole request), after any echo
/// still pending, and drops them from `input`.
fn answer(
    stream: &mut MaybeTls<TcpStream>,
    pending: &mut Vec<u8>,
    input: &mut Vec<u8>,
    len: usize,
) -> io::Result<()> {
    let request = &input[..len.min(input.len())];
    let written = if pending.is_empty() {
        write_some(stream, request)?
    } else {
        0
    };
    pending.extend_from_slice(&request[written..]);
    input.drain(..request.len());
    Ok(())
}

/// Writes until `data` is out or the socket would block; returns how much it took.
fn write_some(stream: &mut impl Write, data: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < data.len() {
        match stream.write(&data[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if would_block(&e) => break,
            Err(e) if interrupted(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}
