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

pub use crate::record::EncodedInterval;

/// The token of the schedule's timerfd ([`schedule_timer`]).
pub const TIMER: Token = Token(usize::MAX);

/// How often connections are checked for `--timeout`.
const TIMEOUT_SCAN: Duration = Duration::from_millis(20);

/// The longest the loop blocks, so that a stop request is seen promptly.
const MAX_BLOCK: Duration = Duration::from_millis(50);

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
}

enum State {
    /// No socket; a reconnect is scheduled.
    Down,
    /// Non-blocking connect in progress since then.
    Connecting(Instant),
    /// Established.
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
    stream: Option<TcpStream>,
    state: State,
    /// Bumped on every socket or schedule change, to recognise stale timer entries.
    generation: u64,
    /// Where this connection's bytes start in the payload pattern.
    stream_start: u64,
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
    record: Recorder<'a>,
    /// The run is over: no more sends or reconnects, connections are being closed.
    draining: bool,
    errors: Errors,
    first_connect_error: Option<String>,
}

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
    let mut worker = Worker {
        plan,
        shared,
        poll,
        timer,
        conns,
        due: BinaryHeap::new(),
        scratch: vec![0u8; 64 * 1024],
        record: Recorder::new(plan.mode, progress),
        draining: false,
        errors: Errors::default(),
        first_connect_error: None,
    };
    worker.run()?;
    Ok(worker.into_result())
}

impl Conn {
    /// Connection number `index` of the run, not yet connected.
    fn new(index: usize, idle: bool, now: Instant) -> Conn {
        Conn {
            index,
            idle,
            stream: None,
            state: State::Down,
            generation: 0,
            stream_start: payload::stream_start(index),
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

impl Worker<'_> {
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
        }
        let ended = Instant::now().min(self.plan.end);
        self.drain(&mut events)?;
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
        let grace = self.plan.timeout.min(DRAIN_GRACE);
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
            !c.idle && matches!(c.state, State::Open)
        })?;
        // Echoes still missing now never came: each connection with one is a timeout.
        for slot in 0..self.conns.len() {
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
            State::Connecting(_) => self.close(slot),
            State::Open | State::Closing | State::Down => {}
        }
    }

    /// Sends our FIN; the server's echo and EOF are read in [`State::Closing`].
    fn half_close(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let Some(stream) = conn.stream.as_ref() else {
            return;
        };
        match stream.shutdown(std::net::Shutdown::Write) {
            Ok(()) => conn.state = State::Closing,
            // Already reset by the peer: nothing left to end cleanly.
            Err(_) => self.close(slot),
        }
    }

    /// How long to poll: until `wake`, or until the next scheduled send, for which the timerfd
    /// is armed (once per deadline) because poll's own timeout is only millisecond-precise.
    fn poll_timeout(
        &mut self,
        now: Instant,
        wake: Instant,
        timer_armed_for: &mut Option<Instant>,
    ) -> io::Result<Option<Duration>> {
        let next_due = self.due.peek().map(|Reverse((t, _, _))| *t);
        Ok(match next_due {
            Some(t) if t <= now => Some(Duration::ZERO),
            Some(t) if t < wake => {
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
        let starved = self
            .conns
            .iter()
            .filter(|c| !c.idle && c.completed == 0)
            .count();
        WorkerResult {
            latency: self.record.latency,
            uncorrected: self.record.uncorrected,
            connect: self.record.connect,
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
        conn.connect_started = now;
        match TcpStream::connect(self.plan.addr) {
            Ok(mut stream) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                match self
                    .poll
                    .registry()
                    .register(&mut stream, Token(slot), interest)
                {
                    Ok(()) => {
                        conn.stream = Some(stream);
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
            let conn = &self.conns[slot];
            if conn.generation != generation {
                continue;
            }
            match conn.state {
                State::Down => self.connect(slot, now),
                State::Open => {
                    self.send(slot, t, now);
                    self.flush(slot);
                }
                State::Connecting(_) | State::Closing => {}
            }
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
            let failure = match conn.state {
                State::Connecting(since) if now - since > self.plan.timeout => Failure::Connect,
                State::Open if conn.received == 0 => continue,
                State::Open => match conn.in_flight.front() {
                    Some(m) if now - m.sent > self.plan.timeout => Failure::Timeout,
                    _ => continue,
                },
                _ => continue,
            };
            let timed_out = io::Error::new(io::ErrorKind::TimedOut, "connect timed out");
            self.fail(slot, failure, Some(timed_out), now);
        }
    }

    /// A readiness event on `slot`; `drain` when the event reports the peer's FIN or an error,
    /// which a short read must not leave unread.
    fn on_event(&mut self, slot: usize, drain: bool) {
        match self.conns[slot].state {
            State::Connecting(since) => self.on_connecting(slot, since, Instant::now()),
            State::Open | State::Closing => {
                self.read(slot, drain);
                if matches!(self.conns[slot].state, State::Open) {
                    self.flush(slot);
                }
            }
            State::Down => {}
        }
    }

    /// A readiness event on a connecting socket: connected, failed, or not yet.
    fn on_connecting(&mut self, slot: usize, since: Instant, now: Instant) {
        let Some(stream) = self.conns[slot].stream.as_ref() else {
            return;
        };
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
        self.shared.connected_once.store(true, Ordering::Relaxed);
        let conn = &mut self.conns[slot];
        conn.state = State::Open;
        conn.backoff = Duration::from_millis(10);
        if conn.idle {
            return;
        }
        match self.plan.mode {
            Mode::Closed => {
                for _ in 0..self.plan.pipeline {
                    self.send(slot, now, now);
                }
            }
            Mode::Open => self.schedule_next(slot, now),
            Mode::Churn => {
                if since >= self.plan.measure_start {
                    self.record.connect_took(now - since);
                }
                self.send(slot, since, now);
            }
        }
        self.flush(slot);
    }

    /// Queues one message meant to be sent at `intended`.
    fn send(&mut self, slot: usize, intended: Instant, now: Instant) {
        let conn = &mut self.conns[slot];
        conn.in_flight.push_back(Sent {
            intended,
            sent: now,
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
        let mut outcome = Ok(());
        while conn.written < conn.queued {
            let len = ((conn.queued - conn.written) as usize).min(WRITE_CHUNK);
            let bytes = payload::window(conn.stream_start + conn.written, len);
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
            let n = match stream.read(&mut self.scratch) {
                // The server's answer to our half-close: the connection ended cleanly.
                Ok(0) if matches!(conn.state, State::Closing) => return self.close(slot),
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
            if conn.received + n as u64 > conn.written
                || !payload::matches(conn.stream_start + conn.received, &self.scratch[..n])
            {
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
            if n < self.scratch.len() && !drain {
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
        // A message belongs to the window its intended send time lies in.
        if sent.intended >= self.plan.measure_start {
            self.record.echo(sent.intended, sent.sent, now);
            // Only an echo inside the window serves a connection: another worker may already
            // be draining, which lets an iterative server move on to this one.
            if now < self.plan.end {
                self.conns[slot].completed += 1;
                self.record.count();
            }
        }
        if self.draining {
            return self.close_after_echo(slot);
        }
        match self.plan.mode {
            Mode::Closed => self.send(slot, now, now),
            Mode::Open => self.schedule_next(slot, now),
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
        self.close(slot);
    }

    /// Closes the slot's socket, if it has one (deregistered first, to keep the poll's set
    /// exact), and leaves the slot down.
    fn close(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        conn.state = State::Down;
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
