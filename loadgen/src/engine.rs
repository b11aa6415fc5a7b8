//! The engine: one worker thread per `--threads`, each a mio event loop over its share of the
//! connections, non-blocking sockets, no thread per connection.
//!
//! Timing: latencies are taken with `Instant::now()` at the event that completes an echo. The
//! open-loop schedule wakes the loop with a `timerfd` armed to the next intended send time
//! (nanosecond resolution; epoll's own timeout is whole milliseconds).
//!
//! Ending: at the end of the run a worker stops sending, waits at most
//! min(`--timeout`, [`DRAIN_GRACE`]) for the echoes still in flight (an active connection with
//! none is half-closed at once, idle ones once the echoes are in), then half-closes every
//! connection and reads it to the server's EOF (at most as long again), so that a healthy
//! connection ends with FIN on both sides and never with a reset. A message counts when its
//! intended send time lies in the measured window, even if its echo arrives during the drain;
//! one that never arrives is a `timeout`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

use crate::payload;
use crate::record::Recorder;
use crate::report::{Datagrams, Errors, Mode};
use crate::tls::{self, Link};
use crate::work::Mix;

pub use crate::record::EncodedInterval;

/// The token of the schedule's timerfd ([`schedule_timer`]).
pub const TIMER: Token = Token(usize::MAX);

/// How often connections are checked for `--timeout`.
const TIMEOUT_SCAN: Duration = Duration::from_millis(20);

/// The longest the loop blocks, so that a stop request is seen promptly.
const MAX_BLOCK: Duration = Duration::from_millis(50);

/// The precision of poll's own timeout: it rounds up to whole milliseconds.
const POLL_GRAIN: Duration = Duration::from_millis(1);

/// Largest single write.
const WRITE_CHUNK: usize = 64 * 1024;

/// The longest the end of a run waits for echoes in flight, and then again for the server's
/// EOF after loadgen's half-close (each also at most `--timeout`).
pub const DRAIN_GRACE: Duration = Duration::from_millis(250);

/// What every worker is told.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Target address.
    pub addr: SocketAddr,
    /// How load is offered.
    pub mode: Mode,
    /// Message size, bytes.
    pub size: usize,
    /// Messages in flight per connection (closed loop).
    pub pipeline: usize,
    /// Active connections over all workers.
    pub connections: usize,
    /// Target rate over all connections (open loop), messages/s.
    pub rate: Option<f64>,
    /// When the run (and the open-loop schedule) starts.
    pub start: Instant,
    /// End of warm-up: completions from here on are measured.
    pub measure_start: Instant,
    /// End of the run.
    pub end: Instant,
    /// Connect and echo timeout.
    pub timeout: Duration,
    /// Length of the `--hlog` log's intervals.
    pub interval: Duration,
    /// `--tls`: every connection is a TLS client session of this client.
    pub tls: Option<tls::Client>,
    /// `--share-cpus`: give the CPU up after every batch of events ([`yield_if_shared`]).
    pub share_cpus: bool,
    /// `--source-addrs`: the local addresses connections come from, in turn; `None`: the
    /// kernel's choice.
    pub sources: Option<std::sync::Arc<crate::source::Sources>>,
    /// `--work`: every message is a request with a cost; `None`: plain echo.
    pub work: Option<std::sync::Arc<Mix>>,
}

impl Plan {
    /// How long the end of the run waits for the echoes in flight, and again for the server's
    /// EOF: [`DRAIN_GRACE`], plus twice the costliest `--work` request's cost, at most
    /// `--timeout`.
    pub fn drain_grace(&self) -> Duration {
        let cost = self
            .work
            .as_ref()
            .map_or(Duration::ZERO, |m| m.spec.longest());
        (DRAIN_GRACE + 2 * cost).min(self.timeout)
    }
}

/// `--share-cpus`: other loadgens run on these CPUs (agents of one host), so give the CPU up
/// after every batch of events. Without it the scheduler runs each for a whole time slice while
/// the other's connections wait with their echoes unread: the server sees half the
/// connections, and two agents on one core made 91 % of one agent's closed-loop throughput at
/// 16 connections against `mio`; with it, 97 %.
pub fn yield_if_shared(plan: &Plan) {
    if plan.share_cpus {
        std::thread::yield_now();
    }
}

/// State shared between the workers and the main thread.
#[derive(Default)]
pub struct Shared {
    /// Set by the main thread to end the run early.
    pub stop: AtomicBool,
    /// Set once any connection has been established.
    pub connected_once: AtomicBool,
}

/// What one worker measured.
pub struct WorkerResult {
    /// Latency of measured messages, ns (open loop: from the intended send time).
    pub latency: Histogram<u64>,
    /// Open loop: latency from the actual send time, ns.
    pub uncorrected: Histogram<u64>,
    /// Churn: connect time, ns.
    pub connect: Histogram<u64>,
    /// TLS: handshake time of the handshakes begun in the measured time, ns.
    pub handshake: Histogram<u64>,
    /// Open loop and arrivals: how late sends (arrivals: connects) were on their schedule, ns.
    pub send_late: Histogram<u64>,
    /// Open loop: loadgen's own share of each send's lateness, ns (see `Recorder::own_late`).
    pub own_late: Histogram<u64>,
    /// `--work`: latency of each class's measured requests, ns; empty without it.
    pub classes: Vec<Histogram<u64>>,
    /// loadgen's CPU seconds on this thread over the measured time.
    pub cpu_s: f64,
    /// The per-interval histograms for `--hlog`.
    pub intervals: Vec<EncodedInterval>,
    /// UDP: what became of the datagrams (zero over TCP).
    pub datagrams: Datagrams,
    /// UDP: the kernel's receive drops at this worker's sockets; `None` over TCP.
    pub kernel_drops: Option<u64>,
    /// Errors by kind.
    pub errors: Errors,
    /// Active connections that completed no measured message.
    pub starved: usize,
    /// The first connect error, to explain an unreachable target.
    pub first_connect_error: Option<String>,
}

/// A message sent and not yet echoed.
#[derive(Clone, Copy)]
struct Sent {
    /// When the schedule meant it to be sent (open loop); otherwise when it was sent.
    intended: Instant,
    /// When it was handed to the socket.
    sent: Instant,
    /// `--work`: its class.
    class: u8,
}

enum State {
    /// No socket; a reconnect is scheduled.
    Down,
    /// Non-blocking connect in progress since then.
    Connecting(Instant),
    /// TLS: established, handshake under way since then.
    Handshaking(Instant),
    /// Established (TLS: handshake complete).
    Open,
    /// Half-closed by us at the end of the run: reading the rest of the echo up to EOF.
    Closing,
}

/// One connection slot; its socket is replaced on reconnect.
struct Conn {
    /// Global connection number: payload stream and open-loop phase.
    index: usize,
    /// Held open without traffic (`--idle`).
    idle: bool,
    /// `--handshake-rate`: a connection of the arrivals, meant to start then; it makes one echo
    /// and closes, and its slot is free again.
    arrival: Option<Instant>,
    stream: Option<Link>,
    state: State,
    /// Bumped on every socket or schedule change, to recognise stale timer entries.
    generation: u64,
    /// Where this connection's bytes start in the payload pattern.
    stream_start: u64,
    /// `--work`: the number of this socket's first request on the connection (they are
    /// counted across reconnects, so that the classes go on where they were).
    first_request: u64,
    /// Bytes handed to the socket, queued for it, and echoed back (verified), on this socket.
    written: u64,
    queued: u64,
    received: u64,
    /// Messages echoed on this socket.
    echoed: u64,
    in_flight: VecDeque<Sent>,
    /// Open loop: number of the next message in this connection's schedule.
    next_seq: u64,
    /// Measured messages completed, across reconnects.
    completed: u64,
    /// Start of the current connect.
    connect_started: Instant,
    /// Wait before the next reconnect after a connect error.
    backoff: Duration,
}

/// How a connection failed.
#[derive(Clone, Copy)]
enum Failure {
    Connect,
    Reset,
    Timeout,
    Mismatch,
    Other,
}

fn classify(e: &io::Error) -> Failure {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => Failure::Reset,
        _ => Failure::Other,
    }
}

/// A timer entry: at `.0`, act on connection `.1` if its generation is still `.2`.
type Due = Reverse<(Instant, usize, u64)>;

struct Worker<'a> {
    plan: &'a Plan,
    shared: &'a Shared,
    poll: Poll,
    timer: TimerFd,
    conns: Vec<Conn>,
    due: BinaryHeap<Due>,
    scratch: Vec<u8>,
    /// `--work`: the requests' bytes, made for each write.
    out: Vec<u8>,
    record: Recorder<'a>,
    /// The run is over: no more sends or reconnects, connections are being closed.
    draining: bool,
    /// A send is being made because its timer fired (its lateness is loadgen's own), not
    /// because its connection's last echo came back late.
    on_timer: bool,
    errors: Errors,
    first_connect_error: Option<String>,
    /// `--handshake-rate`: this worker makes the arrivals.
    arrivals: Option<Arrivals>,
    /// This thread's CPU time at the start of the measured time.
    cpu_at_measure_start: Option<Duration>,
    /// This thread's CPU seconds over the measured time, once the run is over.
    cpu_s: f64,
}

/// `--handshake-rate`: new connections on an open-loop schedule, each making one echo.
struct Arrivals {
    /// Arrivals per second.
    rate: f64,
    /// Number of the next arrival of the schedule.
    next: u64,
    /// Slots whose arrival is over, to be used again.
    free: Vec<usize>,
}

/// The timer entries' slot for the next arrival.
const ARRIVAL: usize = usize::MAX;

/// Runs one worker over the connections numbered `active` (and `idle` idle ones) until the
/// plan's end or a stop request.
pub fn run_worker(
    plan: &Plan,
    shared: &Shared,
    progress: &AtomicU64,
    active: Vec<usize>,
    idle: Vec<usize>,
) -> io::Result<WorkerResult> {
    let poll = Poll::new()?;
    let timer = schedule_timer(&poll)?;
    let now = Instant::now();
    let conns = active
        .into_iter()
        .map(|i| Conn::new(i, false, now))
        .chain(idle.into_iter().map(|i| Conn::new(i, true, now)))
        .collect();
    let mut worker = Worker::new(plan, shared, poll, timer, conns, progress);
    worker.run()?;
    Ok(worker.into_result())
}

/// Runs the arrivals of `--handshake-rate`: at `rate` per second, on the plan's schedule
/// from its start, a new connection (TLS: with a handshake) that makes one echo of the plan's
/// size and closes; as many at once as the server leaves waiting. Latency counts from each
/// arrival's intended time; how late the connects were is `send_late`.
pub fn run_arrivals(
    plan: &Plan,
    shared: &Shared,
    progress: &AtomicU64,
    rate: f64,
) -> io::Result<WorkerResult> {
    let poll = Poll::new()?;
    let timer = schedule_timer(&poll)?;
    let mut worker = Worker::new(plan, shared, poll, timer, Vec::new(), progress);
    worker.arrivals = Some(Arrivals {
        rate,
        next: 0,
        free: Vec::new(),
    });
    worker.due.push(Reverse((plan.start, ARRIVAL, 0)));
    worker.run()?;
    Ok(worker.into_result())
}

/// This thread's CPU time (user + system).
fn thread_cpu() -> Duration {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

impl Conn {
    /// Connection number `index` of the run, not yet connected.
    fn new(index: usize, idle: bool, now: Instant) -> Conn {
        Conn {
            index,
            idle,
            arrival: None,
            stream: None,
            state: State::Down,
            generation: 0,
            stream_start: payload::stream_start(index),
            first_request: 0,
            written: 0,
            queued: 0,
            received: 0,
            echoed: 0,
            in_flight: VecDeque::new(),
            next_seq: 0,
            completed: 0,
            connect_started: now,
            backoff: Duration::from_millis(10),
        }
    }
}

impl<'a> Worker<'a> {
    fn new(
        plan: &'a Plan,
        shared: &'a Shared,
        poll: Poll,
        timer: TimerFd,
        conns: Vec<Conn>,
        progress: &'a AtomicU64,
    ) -> Worker<'a> {
        Worker {
            plan,
            shared,
            poll,
            timer,
            conns,
            due: BinaryHeap::new(),
            scratch: vec![0u8; 64 * 1024],
            out: Vec::new(),
            record: Recorder::new(
                plan.mode,
                plan.work.as_ref().map_or(0, |m| m.spec.classes.len()),
                progress,
            ),
            draining: false,
            on_timer: false,
            errors: Errors::default(),
            first_connect_error: None,
            arrivals: None,
            cpu_at_measure_start: None,
            cpu_s: 0.0,
        }
    }

    fn run(&mut self) -> io::Result<()> {
        for slot in 0..self.conns.len() {
            self.connect(slot, Instant::now());
        }
        let mut events = Events::with_capacity(1024);
        let mut next_scan = Instant::now() + TIMEOUT_SCAN;
        let interval = self.plan.interval;
        let mut next_boundary = self.plan.measure_start + interval;
        let mut timer_armed_for: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now >= self.plan.end || self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            if now >= self.plan.measure_start && self.cpu_at_measure_start.is_none() {
                self.cpu_at_measure_start = Some(thread_cpu());
            }
            while now >= next_boundary {
                self.record.close_interval(interval);
                next_boundary += interval;
            }
            if now >= next_scan {
                self.check_timeouts(now);
                next_scan = now + TIMEOUT_SCAN;
            }
            self.run_due(now);

            // Sleep until the next thing to do; the schedule's deadlines need the timerfd.
            let mut wake = self.plan.end.min(next_scan).min(now + MAX_BLOCK);
            if now >= self.plan.measure_start {
                wake = wake.min(next_boundary);
            }
            let timeout = self.poll_timeout(now, wake, &mut timer_armed_for)?;
            if self.poll_events(&mut events, timeout)? {
                timer_armed_for = None;
            }
            yield_if_shared(self.plan);
        }
        let ended = Instant::now().min(self.plan.end);
        let cpu_until_end = thread_cpu();
        self.drain(&mut events)?;
        self.cpu_s = self
            .cpu_at_measure_start
            .map_or(0.0, |at| cpu_until_end.saturating_sub(at).as_secs_f64());
        if ended >= self.plan.measure_start {
            // Echoes that completed during the drain belong to the last interval.
            let last = ended.saturating_duration_since(next_boundary - interval);
            self.record.close_interval(last);
        }
        Ok(())
    }

    /// Polls once, at most for `timeout`, and handles the events; `true` when the timerfd
    /// fired.
    fn poll_events(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<bool> {
        match self.poll.poll(events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(false),
            Err(e) => return Err(e),
        }
        let mut timer_fired = false;
        for event in events.iter() {
            match event.token() {
                TIMER => timer_fired = true,
                Token(slot) => self.on_event(slot, event.is_read_closed() || event.is_error()),
            }
        }
        Ok(timer_fired)
    }

    /// Ends the run without resets: stop sending, wait for the echoes in flight, half-close,
    /// read to the server's EOF; each wait at most min(`--timeout`, [`DRAIN_GRACE`]).
    fn drain(&mut self, events: &mut Events) -> io::Result<()> {
        self.draining = true;
        let grace = self.plan.drain_grace();
        // Idle connections wait for the last echoes: closing thousands of them at once makes
        // the server do thousands of closes (a forking one, process exits) while echoes that
        // the window measures are still owed.
        for slot in 0..self.conns.len() {
            if !self.conns[slot].idle {
                self.close_if_done(slot);
            }
        }
        let echo_deadline = Instant::now() + grace;
        self.poll_until(events, echo_deadline, |c| {
            !c.idle
                && matches!(
                    c.state,
                    State::Open | State::Handshaking(_) | State::Connecting(_)
                )
        })?;
        // Echoes still missing now never came: each connection with one is a timeout. A
        // handshake not complete by now is abandoned.
        for slot in 0..self.conns.len() {
            if matches!(
                self.conns[slot].state,
                State::Handshaking(_) | State::Connecting(_)
            ) {
                self.close(slot);
            }
            if matches!(self.conns[slot].state, State::Open) {
                let conn = &mut self.conns[slot];
                if conn
                    .in_flight
                    .iter()
                    .any(|m| m.intended >= self.plan.measure_start)
                {
                    self.errors.timeout += 1;
                }
                conn.in_flight.clear();
                self.half_close(slot);
            }
        }
        let eof_deadline = Instant::now() + grace;
        self.poll_until(events, eof_deadline, |c| matches!(c.state, State::Closing))?;
        // What the server has not closed by now is closed from our side.
        for slot in 0..self.conns.len() {
            self.close(slot);
        }
        Ok(())
    }

    /// Handles events until `deadline` or until no connection is `waiting`.
    fn poll_until(
        &mut self,
        events: &mut Events,
        deadline: Instant,
        waiting: impl Fn(&Conn) -> bool,
    ) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if now >= deadline || !self.conns.iter().any(&waiting) {
                return Ok(());
            }
            self.poll_events(events, Some((deadline - now).min(MAX_BLOCK)))?;
        }
    }

    /// During the drain: a connection with nothing left in flight is half-closed, one still
    /// connecting is abandoned.
    fn close_if_done(&mut self, slot: usize) {
        let conn = &self.conns[slot];
        match conn.state {
            State::Open if conn.in_flight.is_empty() && conn.written == conn.queued => {
                self.half_close(slot)
            }
            // Plain: nothing is owed on it yet.
            State::Connecting(_) if self.plan.tls.is_none() => self.close(slot),
            // TLS: a connect or handshake under way is let finish, then ended cleanly (the
            // server would count a connection closed before its ClientHello as a failed
            // handshake).
            State::Connecting(_)
            | State::Open
            | State::Handshaking(_)
            | State::Closing
            | State::Down => {}
        }
    }

    /// Sends our FIN; the server's echo and EOF are read in [`State::Closing`].
    fn half_close(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        match stream.half_close() {
            Ok(()) => conn.state = State::Closing,
            // Already reset by the peer: nothing left to end cleanly.
            Err(_) => self.closed(slot),
        }
    }

    /// How long to poll: until `wake`, or until the next scheduled send, for which the timerfd
    /// is armed (once per deadline) because poll's own timeout is only millisecond-precise.
    /// poll rounds its timeout up to the next millisecond, so a send due up to a millisecond
    /// after `wake` gets the timer too: without it, one send in every scan or interval
    /// boundary went out up to a millisecond late (1 % of the sends at 4,000 msgs/s).
    fn poll_timeout(
        &mut self,
        now: Instant,
        wake: Instant,
        timer_armed_for: &mut Option<Instant>,
    ) -> io::Result<Option<Duration>> {
        let next_due = self.due.peek().map(|Reverse((t, _, _))| *t);
        Ok(match next_due {
            Some(t) if t <= now => Some(Duration::ZERO),
            Some(t) if t < wake + POLL_GRAIN => {
                if *timer_armed_for != Some(t) {
                    let left = TimeSpec::from_duration(t - now);
                    self.timer
                        .set(Expiration::OneShot(left), TimerSetTimeFlags::empty())
                        .map_err(io::Error::from)?;
                    *timer_armed_for = Some(t);
                }
                Some(wake - now)
            }
            _ => Some(wake - now),
        })
    }

    /// The worker's results, once its run is over.
    fn into_result(self) -> WorkerResult {
        // The arrivals' slots serve one connection after another: none is starved.
        let starved = match self.arrivals {
            Some(_) => 0,
            None => self
                .conns
                .iter()
                .filter(|c| !c.idle && c.completed == 0)
                .count(),
        };
        WorkerResult {
            latency: self.record.latency,
            uncorrected: self.record.uncorrected,
            connect: self.record.connect,
            handshake: self.record.handshake,
            send_late: self.record.send_late,
            own_late: self.record.own_late,
            classes: self.record.classes,
            cpu_s: self.cpu_s,
            intervals: self.record.intervals,
            datagrams: Datagrams::default(),
            kernel_drops: None,
            errors: self.errors,
            starved,
            first_connect_error: self.first_connect_error,
        }
    }

    /// Starts a non-blocking connect on `slot`.
    fn connect(&mut self, slot: usize, now: Instant) {
        let conn = &mut self.conns[slot];
        conn.generation += 1;
        conn.written = 0;
        conn.queued = 0;
        conn.received = 0;
        conn.echoed = 0;
        conn.in_flight.clear();
        conn.first_request = conn.next_seq;
        conn.connect_started = now;
        let connected = crate::source::connect(self.plan.sources.as_deref(), self.plan.addr);
        match connected.map(TcpStream::from_std) {
            Ok(mut stream) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                match self
                    .poll
                    .registry()
                    .register(&mut stream, Token(slot), interest)
                {
                    Ok(()) => {
                        conn.stream = Some(Link::plain(stream));
                        conn.state = State::Connecting(now);
                    }
                    Err(e) => self.fail(slot, Failure::Connect, Some(e), now),
                }
            }
            Err(e) => self.fail(slot, Failure::Connect, Some(e), now),
        }
    }

    /// Counts a failure, drops the socket and schedules a reconnect.
    fn fail(&mut self, slot: usize, failure: Failure, error: Option<io::Error>, now: Instant) {
        match failure {
            Failure::Connect => {
                self.errors.connect += 1;
                if self.first_connect_error.is_none() {
                    self.first_connect_error = error.map(|e| e.to_string());
                }
            }
            Failure::Reset => self.errors.reset += 1,
            Failure::Timeout => self.errors.timeout += 1,
            Failure::Mismatch => self.errors.mismatch += 1,
            Failure::Other => self.errors.other += 1,
        }
        if self.conns[slot].arrival.is_some() {
            return self.arrival_done(slot);
        }
        self.close(slot);
        let conn = &mut self.conns[slot];
        conn.generation += 1;
        // Back off only while the server refuses connections; otherwise reconnect at once.
        let wait = match failure {
            Failure::Connect => {
                let wait = conn.backoff;
                conn.backoff = (conn.backoff * 2).min(Duration::from_millis(200));
                wait
            }
            _ => Duration::ZERO,
        };
        self.due.push(Reverse((now + wait, slot, conn.generation)));
    }

    /// Acts on timer entries that are due: reconnects and open-loop sends.
    fn run_due(&mut self, now: Instant) {
        while let Some(&Reverse((t, slot, generation))) = self.due.peek() {
            if t > now {
                break;
            }
            self.due.pop();
            if slot == ARRIVAL {
                self.arrive(t, now);
                continue;
            }
            let conn = &self.conns[slot];
            if conn.generation != generation {
                continue;
            }
            match conn.state {
                State::Down => self.connect(slot, now),
                State::Open => {
                    self.on_timer = true;
                    self.send(slot, t, now);
                    self.on_timer = false;
                    self.flush(slot);
                }
                State::Connecting(_) | State::Handshaking(_) | State::Closing => {}
            }
        }
    }

    /// `--handshake-rate`: the arrival meant for `intended` connects now (in a free slot or a
    /// new one), and the next is scheduled.
    fn arrive(&mut self, intended: Instant, now: Instant) {
        let Some(arrivals) = self.arrivals.as_mut() else {
            return;
        };
        if self.draining {
            return;
        }
        let index = arrivals.next;
        arrivals.next += 1;
        let next = self.plan.start + Duration::from_secs_f64(arrivals.next as f64 / arrivals.rate);
        self.due.push(Reverse((next, ARRIVAL, 0)));
        // Each arrival its own payload stream, apart from the steady connections'.
        let mut conn = Conn::new(self.plan.connections + index as usize, false, now);
        conn.arrival = Some(intended);
        let slot = match arrivals.free.pop() {
            Some(slot) => {
                // The slot's generation goes on, so no timer entry of its last arrival matches.
                conn.generation = self.conns[slot].generation;
                self.conns[slot] = conn;
                slot
            }
            None => {
                self.conns.push(conn);
                self.conns.len() - 1
            }
        };
        if intended >= self.plan.measure_start {
            self.record.late_by(now - intended);
        }
        self.connect(slot, now);
    }

    /// An arrival's connection is over (its echo in, or failed): the slot is free again.
    fn arrival_done(&mut self, slot: usize) {
        self.close(slot);
        let conn = &mut self.conns[slot];
        conn.arrival = None;
        conn.generation += 1;
        if let Some(arrivals) = self.arrivals.as_mut() {
            arrivals.free.push(slot);
        }
    }

    /// Fails connections whose connect or oldest echo has taken longer than `--timeout`.
    ///
    /// A connection the server has never answered is not failed: it is still queued there (an
    /// iterative server serves its backlog in order), and a reconnect would only put it at the
    /// back of the queue and leave a dead socket in the server's backlog. It stays starved.
    fn check_timeouts(&mut self, now: Instant) {
        for slot in 0..self.conns.len() {
            let conn = &self.conns[slot];
            let late = |since: Instant| now - since > self.plan.timeout;
            let failure = match conn.state {
                State::Connecting(since) if late(since) => Failure::Connect,
                // An arrival is never left waiting: the schedule does not wait for it.
                State::Handshaking(since) if conn.arrival.is_some() && late(since) => {
                    Failure::Connect
                }
                State::Open if conn.received == 0 && conn.arrival.is_none() => continue,
                State::Open => match conn.in_flight.front() {
                    Some(m) if now - m.sent > self.plan.timeout => Failure::Timeout,
                    _ => continue,
                },
                _ => continue,
            };
            let timed_out =
                io::Error::new(io::ErrorKind::TimedOut, "connect or handshake timed out");
            self.fail(slot, failure, Some(timed_out), now);
        }
    }

    /// A readiness event on `slot`; `drain` when the event reports the peer's FIN or an error,
    /// which a short read must not leave unread.
    fn on_event(&mut self, slot: usize, drain: bool) {
        match self.conns[slot].state {
            State::Connecting(since) => self.on_connecting(slot, since, Instant::now()),
            State::Handshaking(since) => self.on_handshaking(slot, since, Instant::now()),
            State::Open | State::Closing => {
                self.read(slot, drain);
                let conn = &mut self.conns[slot];
                match (&conn.state, conn.stream.as_mut()) {
                    (State::Open, _) => self.flush(slot),
                    // TLS: a close_notify the socket did not take at once.
                    (State::Closing, Some(link)) if link.wants_write() => {
                        if let Err(e) = link.push() {
                            self.fail(slot, classify(&e), Some(e), Instant::now());
                        }
                    }
                    _ => {}
                }
            }
            State::Down => {}
        }
    }

    /// A readiness event on a connecting socket: connected, failed, or not yet. Connected
    /// over TLS, the handshake begins.
    fn on_connecting(&mut self, slot: usize, since: Instant, now: Instant) {
        let Some(link) = self.conns[slot].stream.as_mut() else {
            return;
        };
        let stream = &link.socket;
        let outcome = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Err((Failure::Connect, e)),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => stream.set_nodelay(true).map_err(|e| (Failure::Other, e)),
                // Spurious wake-up: the handshake is still under way.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => Err((Failure::Connect, e)),
            },
        };
        if let Err((failure, e)) = outcome {
            return self.fail(slot, failure, Some(e), now);
        }
        if self.plan.mode == Mode::Churn && since >= self.plan.measure_start {
            self.record.connect_took(now - since);
        }
        let Some(client) = &self.plan.tls else {
            return self.opened(slot, now);
        };
        let started = client.session().and_then(|session| link.start_tls(session));
        match started {
            Ok(()) => self.conns[slot].state = State::Handshaking(now),
            Err(e) => self.fail(slot, Failure::Connect, Some(e), now),
        }
    }

    /// A readiness event during the TLS handshake: complete, failed (a connect error: the
    /// connection was never usable), or not yet.
    fn on_handshaking(&mut self, slot: usize, since: Instant, now: Instant) {
        let Some(link) = self.conns[slot].stream.as_mut() else {
            return;
        };
        match link.handshake() {
            Ok(None) => {}
            Ok(Some(kind)) => {
                if let Some(client) = &self.plan.tls {
                    client.counts.count(kind);
                }
                if since >= self.plan.measure_start {
                    self.record.handshake_took(now - since);
                }
                self.opened(slot, now);
            }
            Err(e) => self.fail(slot, Failure::Connect, Some(e), now),
        }
    }

    /// The connection is ready for echo (TLS: its handshake complete): start its load.
    fn opened(&mut self, slot: usize, now: Instant) {
        self.shared.connected_once.store(true, Ordering::Relaxed);
        let conn = &mut self.conns[slot];
        conn.state = State::Open;
        conn.backoff = Duration::from_millis(10);
        if self.draining && !conn.idle {
            return self.half_close(slot);
        }
        if conn.idle {
            return;
        }
        if let Some(intended) = conn.arrival {
            self.send(slot, intended, now);
            return self.flush(slot);
        }
        match self.plan.mode {
            Mode::Closed => {
                for _ in 0..self.plan.pipeline {
                    self.send(slot, now, now);
                }
            }
            Mode::Open => self.schedule_next(slot, now),
            Mode::Churn => {
                let started = self.conns[slot].connect_started;
                self.send(slot, started, now);
            }
        }
        self.flush(slot);
    }

    /// Queues one message meant to be sent at `intended`.
    fn send(&mut self, slot: usize, intended: Instant, now: Instant) {
        let conn = &mut self.conns[slot];
        let scheduled = self.plan.mode == Mode::Open && conn.arrival.is_none();
        if scheduled && intended >= self.plan.measure_start {
            self.record.late_by(now - intended);
            let own = match self.on_timer {
                true => now - intended,
                false => Duration::ZERO,
            };
            self.record.own_late_by(own);
        }
        let class = match &self.plan.work {
            Some(mix) => mix.class_of(conn.index, conn.next_seq) as u8,
            None => 0,
        };
        conn.in_flight.push_back(Sent {
            intended,
            sent: now,
            class,
        });
        conn.queued += self.plan.size as u64;
        conn.next_seq += 1;
    }

    /// Open loop: send the connection's next scheduled message now if its time has come,
    /// otherwise set a timer for it. One message in flight per connection, as in wrk2: a
    /// connection that falls behind sends late, and the latency counts from the plan.
    fn schedule_next(&mut self, slot: usize, now: Instant) {
        let conn = &self.conns[slot];
        let rate = self.plan.rate.unwrap_or(1.0);
        let intended = self.plan.start
            + intended_offset(conn.index, conn.next_seq, self.plan.connections, rate);
        if intended <= now {
            self.send(slot, intended, now);
        } else {
            self.due.push(Reverse((intended, slot, conn.generation)));
        }
    }

    /// Writes queued bytes until done or the socket is full.
    fn flush(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        let mut outcome = stream.push().map_err(|e| (classify(&e), e));
        while outcome.is_ok() && conn.written < conn.queued {
            let len = ((conn.queued - conn.written) as usize).min(WRITE_CHUNK);
            let bytes = match &self.plan.work {
                Some(mix) => {
                    let (first, start) = (conn.first_request, conn.stream_start);
                    mix.fill(conn.index, first, start, conn.written, len, &mut self.out);
                    &self.out[..]
                }
                None => payload::window(conn.stream_start + conn.written, len),
            };
            match stream.write(bytes) {
                Ok(0) => {
                    outcome = Err((Failure::Reset, io::ErrorKind::WriteZero.into()));
                    break;
                }
                Ok(n) => conn.written += n as u64,
                // The socket is full: the next WRITABLE edge brings us back.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    outcome = Err((classify(&e), e));
                    break;
                }
            }
        }
        if let Err((failure, e)) = outcome {
            self.fail(slot, failure, Some(e), Instant::now());
        }
    }

    /// Reads and verifies echo until the socket is drained; completes messages.
    ///
    /// A read shorter than the buffer emptied the socket's receive queue; anything arriving
    /// later raises a new edge, so (unless `drain`) the loop stops there instead of paying a
    /// read that returns EAGAIN.
    fn read(&mut self, slot: usize, drain: bool) {
        loop {
            let conn = &mut self.conns[slot];
            let Some(stream) = conn.stream.as_mut() else {
                return;
            };
            let drained_by_short_read = stream.short_read_drains();
            let n = match stream.read(&mut self.scratch) {
                // The server's answer to our half-close: the connection ended cleanly.
                Ok(0) if matches!(conn.state, State::Closing) => return self.closed(slot),
                Ok(0) => {
                    let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
                    return self.fail(slot, Failure::Reset, Some(eof), Instant::now());
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(slot, classify(&e), Some(e), Instant::now()),
            };
            let now = Instant::now();
            // Bytes we never sent, or bytes other than those we sent, are a mismatch.
            let received = &self.scratch[..n];
            let matching = match &self.plan.work {
                Some(mix) => {
                    let (first, start) = (conn.first_request, conn.stream_start);
                    mix.matches(conn.index, first, start, conn.received, received)
                }
                None => payload::matches(conn.stream_start + conn.received, received),
            };
            if conn.received + n as u64 > conn.written || !matching {
                return self.fail(slot, Failure::Mismatch, None, now);
            }
            conn.received += n as u64;
            let size = self.plan.size as u64;
            while matches!(self.conns[slot].state, State::Open) {
                let Some(sent) = self.take_echoed(slot, size) else {
                    break;
                };
                self.complete(slot, sent, now);
            }
            if n < self.scratch.len() && !drain && drained_by_short_read {
                return;
            }
        }
    }

    /// The oldest message in flight, if its whole echo has arrived.
    fn take_echoed(&mut self, slot: usize, size: u64) -> Option<Sent> {
        let conn = &mut self.conns[slot];
        if conn.received < (conn.echoed + 1) * size {
            return None;
        }
        conn.echoed += 1;
        conn.in_flight.pop_front()
    }

    /// A message's echo is complete: record it, then send the next one as the mode says.
    fn complete(&mut self, slot: usize, sent: Sent, now: Instant) {
        let arrival = self.conns[slot].arrival.is_some();
        // A message belongs to the window its intended send time lies in.
        if sent.intended >= self.plan.measure_start {
            match self.plan.work {
                Some(_) => {
                    let class = usize::from(sent.class);
                    self.record
                        .echo_of_class(class, sent.intended, sent.sent, now);
                }
                None => self.record.echo(sent.intended, sent.sent, now),
            }
            // Only an echo inside the window serves a connection: another worker may already
            // be draining, which lets an iterative server move on to this one.
            if now < self.plan.end {
                self.conns[slot].completed += 1;
                self.record.count();
            }
        }
        if arrival {
            // Its one echo is in: end it as a client ends (TLS: close_notify), read to EOF.
            return self.half_close(slot);
        }
        if self.draining {
            return self.close_after_echo(slot);
        }
        match self.plan.mode {
            Mode::Closed => self.send(slot, now, now),
            Mode::Open => self.schedule_next(slot, now),
            Mode::Churn if self.plan.tls.is_some() => {
                // TLS ends with close_notify both ways: half-close, read the server's to EOF,
                // then the next connection ([`Worker::closed`]).
                self.half_close(slot);
            }
            Mode::Churn => {
                // Close our side; the server sees EOF. Then the next connection.
                self.close(slot);
                self.connect(slot, now);
            }
        }
    }

    /// During the drain, after an echo: a connection with nothing left in flight is closed,
    /// a churn connection as every churn connection is (all its echo read, so no reset).
    fn close_after_echo(&mut self, slot: usize) {
        if self.plan.mode != Mode::Churn {
            return self.close_if_done(slot);
        }
        if self.plan.tls.is_some() {
            return self.half_close(slot);
        }
        self.close(slot);
    }

    /// Closes the slot's socket, if it has one (deregistered first, to keep the poll's set
    /// exact), and leaves the slot down.
    fn close(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream.socket);
        }
        conn.state = State::Down;
    }

    /// The server's EOF after our half-close: the connection ended cleanly; an arrival's slot
    /// is free again.
    fn closed(&mut self, slot: usize) {
        if self.conns[slot].arrival.is_some() {
            return self.arrival_done(slot);
        }
        self.close(slot);
        // TLS churn: the connection ended cleanly, the next one begins.
        if self.plan.mode == Mode::Churn && !self.draining {
            self.connect(slot, Instant::now());
        }
    }
}

/// A non-blocking `timerfd` registered with `poll` as [`TIMER`]: the open-loop schedule's
/// wake-ups, which poll's own millisecond timeout cannot time.
pub fn schedule_timer(poll: &Poll) -> io::Result<TimerFd> {
    let timer = TimerFd::new(
        ClockId::CLOCK_MONOTONIC,
        TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let timer_fd = std::os::fd::AsFd::as_fd(&timer).as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&timer_fd), TIMER, Interest::READABLE)?;
    Ok(timer)
}

/// The open-loop plan: when, after the start, connection `index` of `connections` is meant to
/// send its message number `seq` at a total `rate`. Connections take turns, so the plan is one
/// evenly spaced sequence (message `index + seq × connections` of it) and each connection's
/// phase is staggered by `1 / rate`.
pub fn intended_offset(index: usize, seq: u64, connections: usize, rate: f64) -> Duration {
    let nth = index as f64 + seq as f64 * connections as f64;
    Duration::from_secs_f64(nth / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_loop_plan_is_evenly_spaced_with_staggered_phases() {
        // 4 connections at 1000 msgs/s: each sends every 4 ms, 1 ms after the previous one.
        let at = |i, k| intended_offset(i, k, 4, 1000.0).as_secs_f64() * 1000.0;
        assert!((at(0, 0) - 0.0).abs() < 1e-9);
        assert!((at(1, 0) - 1.0).abs() < 1e-9);
        assert!((at(3, 0) - 3.0).abs() < 1e-9);
        assert!((at(0, 1) - 4.0).abs() < 1e-9);
        assert!((at(2, 10) - 42.0).abs() < 1e-9);
    }
}
