//! The UDP engine (`--udp`): one worker thread per `--threads`, each a mio event loop over its
//! share of the sockets. A "connection" is a UDP socket connected to the target, so the kernel
//! only hands it datagrams from there.
//!
//! Every datagram opens with an 8-byte sequence number (little-endian) and continues with
//! that socket's payload stream at `seq × size`, so an echo names the datagram it answers and
//! every byte of it is checked. Closed loop: `--pipeline` datagrams in flight per socket, and
//! each echo or loss sends the next. Open loop: each socket sends on its schedule whatever is
//! still in flight (UDP has no stream to keep in order), latency from the intended send time.
//!
//! Fates: a datagram with no echo within `--timeout` is lost (not also `errors.timeout`); an
//! echo after that is `late` and the datagram stays lost; a second echo is `duplicated`; an
//! echo that arrives after the echo of a datagram sent later on the same socket is
//! `reordered`. Only datagrams whose intended send time lies in the measured window are
//! counted. At the end sending stops and the worker waits at most
//! min(`--timeout`, [`DRAIN_GRACE`]) for echoes in flight; a datagram whose timeout has run
//! out by then is lost, one whose timeout has not is left unjudged and counted nowhere.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{Expiration, TimerFd, TimerSetTimeFlags};

use crate::engine::{
    intended_offset, schedule_timer, yield_if_shared, Plan, Shared, WorkerResult, DRAIN_GRACE,
    TIMER,
};
use crate::payload;
use crate::record::Recorder;
use crate::report::{Datagrams, Errors, Mode};

/// Bytes of the sequence number that opens every datagram: the smallest `--size` with `--udp`.
pub const HEADER: usize = 8;

/// The largest UDP payload over IPv4, the largest `--size` with `--udp`.
pub const MAX_DATAGRAM: usize = 65_507;

/// Datagrams per socket whose fate is remembered, to tell a late or duplicated echo from a
/// foreign one; an echo older than that counts as late.
const HISTORY: usize = 4096;

/// How often in-flight datagrams are checked for `--timeout`.
const TIMEOUT_SCAN: Duration = Duration::from_millis(5);

/// The longest the loop blocks, so that a stop request is seen promptly.
const MAX_BLOCK: Duration = Duration::from_millis(50);

/// What became of one datagram.
#[derive(Clone, Copy)]
enum Fate {
    /// Sent; no echo yet.
    InFlight { intended: Instant, sent: Instant },
    /// Echoed (`measured`: its intended send time was in the measured window).
    Echoed { measured: bool },
    /// No echo within `--timeout`.
    Lost { measured: bool },
}

/// One connected socket.
struct Sock {
    /// Global connection number: payload stream and open-loop phase.
    index: usize,
    socket: UdpSocket,
    /// The socket's local port, to find it in `/proc/net/udp`.
    local_port: u16,
    stream_start: u64,
    /// Sequence number of the next datagram.
    next_seq: u64,
    /// `fates[i]` is datagram `base + i`'s.
    base: u64,
    fates: VecDeque<Fate>,
    /// Sequence numbers in flight, oldest first.
    in_flight: VecDeque<u64>,
    /// Highest sequence number echoed so far.
    highest_echoed: Option<u64>,
    /// Sends owed (their intended times): the send buffer was full.
    owed: VecDeque<Instant>,
    /// Open loop: number of the next datagram in this socket's schedule, and when it is due.
    scheduled: u64,
    due: Instant,
    /// Measured echoes.
    completed: u64,
}

struct Worker<'a> {
    plan: &'a Plan,
    shared: &'a Shared,
    poll: Poll,
    timer: TimerFd,
    socks: Vec<Sock>,
    buf: Vec<u8>,
    record: Recorder<'a>,
    datagrams: Datagrams,
    errors: Errors,
    first_error: Option<String>,
    draining: bool,
    /// The deadline the timerfd is armed for.
    timer_armed_for: Option<Instant>,
}

/// Runs one worker over the sockets numbered `active` until the plan's end or a stop request.
pub fn run_worker(
    plan: &Plan,
    shared: &Shared,
    progress: &AtomicU64,
    active: Vec<usize>,
) -> io::Result<WorkerResult> {
    let poll = Poll::new()?;
    let timer = schedule_timer(&poll)?;
    let mut socks = Vec::new();
    for (slot, index) in active.into_iter().enumerate() {
        socks.push(Sock::open(plan, &poll, slot, index)?);
    }
    let mut worker = Worker {
        plan,
        shared,
        poll,
        timer,
        socks,
        buf: vec![0u8; MAX_DATAGRAM + 1],
        record: Recorder::new(plan.mode, 0, progress),
        datagrams: Datagrams::default(),
        errors: Errors::default(),
        first_error: None,
        draining: false,
        timer_armed_for: None,
    };
    worker.run()?;
    let loadgen_drops = kernel_drops(|line| worker.socks.iter().any(|s| s.owns(line)));
    let starved = worker.socks.iter().filter(|s| s.completed == 0).count();
    Ok(WorkerResult {
        latency: worker.record.latency,
        uncorrected: worker.record.uncorrected,
        connect: worker.record.connect,
        handshake: worker.record.handshake,
        send_late: worker.record.send_late,
        own_late: worker.record.own_late,
        classes: Vec::new(),
        cpu_s: 0.0,
        intervals: worker.record.intervals,
        datagrams: worker.datagrams,
        kernel_drops: loadgen_drops,
        errors: worker.errors,
        starved,
        first_connect_error: worker.first_error,
    })
}

impl Sock {
    /// Socket number `index` of the run, connected to the target and registered as `slot`.
    fn open(plan: &Plan, poll: &Poll, slot: usize, index: usize) -> io::Result<Sock> {
        let local = crate::source::udp_local(plan.sources.as_deref(), plan.addr);
        let mut socket = UdpSocket::bind(local)?;
        socket.connect(plan.addr)?;
        poll.registry().register(
            &mut socket,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let rate = plan.rate.unwrap_or(1.0);
        Ok(Sock {
            index,
            local_port: socket.local_addr()?.port(),
            socket,
            stream_start: payload::stream_start(index),
            next_seq: 0,
            base: 0,
            fates: VecDeque::new(),
            in_flight: VecDeque::new(),
            highest_echoed: None,
            owed: VecDeque::new(),
            scheduled: 0,
            due: plan.start + intended_offset(index, 0, plan.connections, rate),
            completed: 0,
        })
    }

    /// Whether a `/proc/net/udp` line is this socket's.
    fn owns(&self, line: &ProcLine) -> bool {
        self.local_port == line.local_port && line.remote_port != 0
    }

    fn fate(&mut self, seq: u64) -> Option<&mut Fate> {
        let at = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.fates.get_mut(at)
    }

    /// Forgets the oldest fates beyond [`HISTORY`], never one still in flight.
    fn prune(&mut self) {
        while self.fates.len() > HISTORY && !matches!(self.fates[0], Fate::InFlight { .. }) {
            self.fates.pop_front();
            self.base += 1;
        }
    }
}

impl Worker<'_> {
    fn run(&mut self) -> io::Result<()> {
        let start = Instant::now();
        if self.plan.mode == Mode::Closed {
            for slot in 0..self.socks.len() {
                for _ in 0..self.plan.pipeline {
                    self.socks[slot].owed.push_back(start);
                }
                self.flush(slot);
            }
        }
        let mut events = Events::with_capacity(1024);
        let interval = self.plan.interval;
        let mut next_boundary = self.plan.measure_start + interval;
        let mut next_scan = start + TIMEOUT_SCAN;
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
            let next_due = self.send_due(now);
            let mut wake = self.plan.end.min(next_scan).min(now + MAX_BLOCK);
            if now >= self.plan.measure_start {
                wake = wake.min(next_boundary);
            }
            self.arm_timer(next_due.filter(|&t| t < wake), now)?;
            let timeout = next_due.map_or(wake, |t| t.min(wake));
            self.poll_events(&mut events, timeout.saturating_duration_since(now))?;
            yield_if_shared(self.plan);
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

    /// Open loop: sends what the schedule holds up to `now`; returns when the next send is
    /// due.
    fn send_due(&mut self, now: Instant) -> Option<Instant> {
        if self.plan.mode != Mode::Open {
            return None;
        }
        let rate = self.plan.rate.unwrap_or(1.0);
        let mut next: Option<Instant> = None;
        for slot in 0..self.socks.len() {
            let sock = &mut self.socks[slot];
            let mut owes = false;
            while sock.due <= now {
                sock.owed.push_back(sock.due);
                sock.scheduled += 1;
                let offset =
                    intended_offset(sock.index, sock.scheduled, self.plan.connections, rate);
                sock.due = self.plan.start + offset;
                owes = true;
            }
            let due = sock.due;
            if owes {
                self.flush(slot);
            }
            next = Some(next.map_or(due, |n| n.min(due)));
        }
        next
    }

    /// Arms the timerfd for `at` (poll's own timeout is only millisecond-precise), once per
    /// deadline.
    fn arm_timer(&mut self, at: Option<Instant>, now: Instant) -> io::Result<()> {
        if let Some(at) = at.filter(|&t| t > now && self.timer_armed_for != Some(t)) {
            self.timer_armed_for = Some(at);
            let left = TimeSpec::from_duration(at - now);
            self.timer
                .set(Expiration::OneShot(left), TimerSetTimeFlags::empty())
                .map_err(io::Error::from)?;
        }
        Ok(())
    }

    fn poll_events(&mut self, events: &mut Events, timeout: Duration) -> io::Result<()> {
        match self.poll.poll(events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            match event.token() {
                TIMER => {
                    let _ = self.timer.wait();
                }
                Token(slot) => {
                    if event.is_readable() || event.is_error() {
                        self.receive(slot);
                    }
                    if event.is_writable() && !self.draining {
                        self.flush(slot);
                    }
                }
            }
        }
        Ok(())
    }

    /// Sends the socket's owed datagrams until done or its send buffer is full.
    fn flush(&mut self, slot: usize) {
        let size = self.plan.size;
        while let Some(&intended) = self.socks[slot].owed.front() {
            let sock = &mut self.socks[slot];
            let seq = sock.next_seq;
            self.buf[..HEADER].copy_from_slice(&seq.to_le_bytes());
            let body = payload::window(sock.stream_start + seq * size as u64, size - HEADER);
            self.buf[HEADER..size].copy_from_slice(body);
            let now = Instant::now();
            match sock.socket.send(&self.buf[..size]) {
                Ok(_) => {}
                // The send buffer is full: the next WRITABLE edge brings us back.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Counted, and then taken as sent: its timeout judges it lost, and the closed
                // loop goes on.
                Err(e) => self.socket_error(&e),
            }
            let sock = &mut self.socks[slot];
            sock.owed.pop_front();
            sock.next_seq += 1;
            // Closed loop: the send itself is the intended time.
            let intended = if self.plan.mode == Mode::Open {
                intended
            } else {
                now
            };
            sock.fates.push_back(Fate::InFlight {
                intended,
                sent: now,
            });
            sock.in_flight.push_back(seq);
            sock.prune();
        }
    }

    /// Counts an error of a socket call: refused (no server: ICMP port unreachable) or other.
    fn socket_error(&mut self, e: &io::Error) {
        if e.kind() == io::ErrorKind::ConnectionRefused {
            self.errors.connect += 1;
            if self.first_error.is_none() {
                self.first_error = Some(e.to_string());
            }
        } else {
            self.errors.other += 1;
        }
    }

    /// Receives every datagram the socket holds, then sends what their echoes made due. With
    /// others in flight the sends wait for the end: sent at once, their echoes could come back
    /// while this loop still reads, and one socket facing a fast server would keep the worker
    /// from the others.
    fn receive(&mut self, slot: usize) {
        loop {
            let n = match self.socks[slot].socket.recv(&mut self.buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.socket_error(&e);
                    continue;
                }
            };
            let now = Instant::now();
            match self.verify(slot, n) {
                Some(seq) => self.on_echo(slot, seq, now),
                None => self.errors.mismatch += 1,
            }
        }
        if !self.socks[slot].owed.is_empty() {
            self.flush(slot);
        }
    }

    /// The sequence number of the datagram in `buf[..n]`, if it is exactly one we sent.
    fn verify(&self, slot: usize, n: usize) -> Option<u64> {
        let size = self.plan.size;
        let sock = &self.socks[slot];
        if n != size {
            return None;
        }
        let seq = u64::from_le_bytes(self.buf[..HEADER].try_into().ok()?);
        let body_at = sock
            .stream_start
            .wrapping_add(seq.wrapping_mul(size as u64));
        (seq < sock.next_seq && payload::matches(body_at, &self.buf[HEADER..n])).then_some(seq)
    }

    /// An echo of datagram `seq` arrived at `now`.
    fn on_echo(&mut self, slot: usize, seq: u64, now: Instant) {
        self.shared.connected_once.store(true, Ordering::Relaxed);
        let measure_start = self.plan.measure_start;
        let sock = &mut self.socks[slot];
        let Some(fate) = sock.fate(seq) else {
            // Older than the fates remembered: it was judged long ago.
            self.datagrams.late += 1;
            return;
        };
        let (intended, sent) = match *fate {
            Fate::InFlight { intended, sent } => (intended, sent),
            Fate::Echoed { measured } => {
                self.datagrams.duplicated += u64::from(measured);
                return;
            }
            Fate::Lost { measured } => {
                self.datagrams.late += u64::from(measured);
                return;
            }
        };
        let measured = intended >= measure_start;
        *fate = Fate::Echoed { measured };
        if let Some(at) = sock.in_flight.iter().position(|&s| s == seq) {
            sock.in_flight.remove(at);
        }
        if measured {
            self.datagrams.sent += 1;
            if sock.highest_echoed.is_some_and(|h| seq < h) {
                self.datagrams.reordered += 1;
            }
            self.record.echo(intended, sent, now);
            if now < self.plan.end {
                sock.completed += 1;
                self.record.count();
            }
        }
        sock.highest_echoed = Some(sock.highest_echoed.map_or(seq, |h| h.max(seq)));
        // With nothing else in flight no echo can follow on this socket: send at once, or the
        // round trip would wait for a receive that finds the socket empty.
        let alone = self.socks[slot].in_flight.is_empty();
        self.next_after(slot, now, alone);
    }

    /// Closed loop: a datagram's echo or loss makes the next one due; `send` sends it now.
    fn next_after(&mut self, slot: usize, now: Instant, send: bool) {
        if self.plan.mode == Mode::Closed && !self.draining {
            self.socks[slot].owed.push_back(now);
            if send {
                self.flush(slot);
            }
        }
    }

    /// Judges lost every datagram in flight for longer than `--timeout`.
    fn check_timeouts(&mut self, now: Instant) {
        for slot in 0..self.socks.len() {
            while let Some(&seq) = self.socks[slot].in_flight.front() {
                let Some(&mut Fate::InFlight { intended, sent }) = self.socks[slot].fate(seq)
                else {
                    self.socks[slot].in_flight.pop_front();
                    continue;
                };
                if now - sent <= self.plan.timeout {
                    break;
                }
                self.socks[slot].in_flight.pop_front();
                let measured = intended >= self.plan.measure_start;
                if let Some(fate) = self.socks[slot].fate(seq) {
                    *fate = Fate::Lost { measured };
                }
                if measured {
                    self.datagrams.sent += 1;
                    self.datagrams.lost += 1;
                }
                self.next_after(slot, now, true);
            }
        }
    }

    /// Stops sending and waits, at most min(`--timeout`, [`DRAIN_GRACE`]), for the measured
    /// datagrams in flight; then judges those whose timeout has run out.
    fn drain(&mut self, events: &mut Events) -> io::Result<()> {
        self.draining = true;
        let deadline = Instant::now() + self.plan.timeout.min(DRAIN_GRACE);
        loop {
            let now = Instant::now();
            self.check_timeouts(now);
            if now >= deadline || !self.measured_in_flight() {
                return Ok(());
            }
            self.poll_events(events, (deadline - now).min(TIMEOUT_SCAN))?;
        }
    }

    fn measured_in_flight(&mut self) -> bool {
        let measure_start = self.plan.measure_start;
        self.socks.iter().any(|s| {
            s.in_flight.iter().any(|&seq| {
                let at = (seq - s.base) as usize;
                matches!(s.fates.get(at), Some(Fate::InFlight { intended, .. }) if *intended >= measure_start)
            })
        })
    }
}

/// One line of `/proc/net/udp` or `/proc/net/udp6`: a socket's ports and its drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcLine {
    /// Local port.
    pub local_port: u16,
    /// Remote port (0: not connected).
    pub remote_port: u16,
    /// Datagrams the kernel dropped at this socket.
    pub drops: u64,
}

/// Parses a line of `/proc/net/udp{,6}`: `sl local_address rem_address st ... drops`.
pub fn parse_proc_line(line: &str) -> Option<ProcLine> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let port = |addr: &str| u16::from_str_radix(addr.rsplit_once(':')?.1, 16).ok();
    Some(ProcLine {
        local_port: port(fields.get(1)?)?,
        remote_port: port(fields.get(2)?)?,
        drops: fields.last()?.parse().ok()?,
    })
}

/// The kernel's receive drops summed over the UDP sockets (IPv4 and IPv6) that `pick` picks;
/// `None` when it picks none.
pub fn kernel_drops(pick: impl Fn(&ProcLine) -> bool) -> Option<u64> {
    let mut found = None;
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1).filter_map(parse_proc_line) {
            if pick(&line) {
                found = Some(found.unwrap_or(0) + line.drops);
            }
        }
    }
    found
}

/// The machine's UDP receive-buffer overflows so far (`RcvbufErrors` of IPv4 and IPv6).
pub fn rcvbuf_errors() -> u64 {
    let v4 = std::fs::read_to_string("/proc/net/snmp")
        .ok()
        .and_then(|text| {
            let mut udp = text.lines().filter(|l| l.starts_with("Udp: "));
            let (names, values) = (udp.next()?, udp.next()?);
            let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
            values.split_whitespace().nth(at)?.parse::<u64>().ok()
        });
    let v6 = std::fs::read_to_string("/proc/net/snmp6")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Udp6RcvbufErrors"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
    v4.unwrap_or(0) + v6.unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_udp_lines_give_ports_and_drops() {
        let line = "  812: 0100007F:1B5F 0100007F:9C40 01 00000000:00000000 00:00000000 \
                    00000000     0        0 123456 2 0000000000000000 17";
        assert_eq!(
            parse_proc_line(line),
            Some(ProcLine {
                local_port: 0x1B5F,
                remote_port: 0x9C40,
                drops: 17
            })
        );
        assert_eq!(parse_proc_line("  sl  local_address rem_address"), None);
    }
}
