//! `--chat ROOM`: load for `echo-server --chat`. `--connections` members fill rooms of ROOM
//! (room `r` holds members `r × ROOM` to `r × ROOM + ROOM − 1`); every member joins and waits
//! for its `A` before any message is sent; then each member sends messages to its room, in a
//! closed loop (the next when its own message has come back to it, `--pipeline` in flight) or
//! on an open-loop plan at `--rate` in total. `--chat-slow N`: the last N members of each room
//! join and never read (nor send).
//!
//! A message's payload carries its sender, its number and its intended send time, then a
//! pattern both fix, so that every delivery is checked: it must come from the member's own
//! room, whole, once, and in the room's one order (the order the first member to receive each
//! message saw; every member's n-th delivery must be the room's n-th message). Delivery latency
//! is from the intended send time to each member's receipt, fan-out latency to the last
//! member's. A whole room runs on one worker thread, so that both are read on one clock.
//!
//! Ending: after the measured time no member sends; the run waits at most `--timeout` for the
//! deliveries of the measured messages (the drain), so that the deliveries expected are
//! defined: every measured message to every member of its room that reads and had joined.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{Expiration, TimerFd, TimerSetTimeFlags};

use crate::engine::{schedule_timer, TIMER};
use crate::hlog;
use crate::machine::{affinity_cpus, cpu_seconds, pin_to};
use crate::options::Options;
use crate::record::nanos;
use crate::report::{new_histogram, ChatReport};

// Bytes of a message's payload before its pattern (sender u32, number u64, intended send time
// u64 in ns after the start), and the largest `--size` with `--chat`.
use crate::options::{CHAT_MAX_SIZE as MAX_SIZE, CHAT_PAYLOAD_HEADER as PAYLOAD_HEADER};

/// Bytes of a frame's length prefix.
const PREFIX: usize = 4;

/// What the workers found, added up.
pub struct ChatTotals {
    /// Delivery latency, ns.
    pub delivery: Histogram<u64>,
    /// Fan-out latency, ns.
    pub fanout: Histogram<u64>,
    /// How late sends were on the open-loop plan, ns.
    pub send_late: Histogram<u64>,
    /// Delivery latency per `--hlog-interval`, by the interval of the message's intended send
    /// time.
    pub intervals: Vec<Histogram<u64>>,
    /// Fan-out latency per `--hlog-interval`, likewise.
    pub fanout_intervals: Vec<Histogram<u64>>,
    /// The counts of the `chat` key.
    pub report: ChatReport,
    /// Measured messages sent.
    pub messages: u64,
    /// Deliveries from another room, or that differed from what was sent.
    pub mismatch: u64,
    /// Readers closed by the server while messages were owed to them.
    pub reset: u64,
    /// Members that could not connect.
    pub connect: u64,
    /// The first connect error.
    pub first_error: Option<String>,
}

impl ChatTotals {
    fn new() -> ChatTotals {
        ChatTotals {
            delivery: new_histogram(),
            fanout: new_histogram(),
            send_late: new_histogram(),
            intervals: Vec::new(),
            fanout_intervals: Vec::new(),
            report: ChatReport::default(),
            messages: 0,
            mismatch: 0,
            reset: 0,
            connect: 0,
            first_error: None,
        }
    }

    fn add(&mut self, other: ChatTotals) -> anyhow::Result<()> {
        let add = |into: &mut Histogram<u64>, from: &Histogram<u64>| {
            into.add(from)
                .map_err(|e| anyhow!("cannot add histograms: {e:?}"))
        };
        add(&mut self.delivery, &other.delivery)?;
        add(&mut self.fanout, &other.fanout)?;
        add(&mut self.send_late, &other.send_late)?;
        for (into, from) in [
            (&mut self.intervals, &other.intervals),
            (&mut self.fanout_intervals, &other.fanout_intervals),
        ] {
            for (i, h) in from.iter().enumerate() {
                add(at(into, i), h)?;
            }
        }
        let (a, b) = (&mut self.report, &other.report);
        a.deliveries_expected += b.deliveries_expected;
        a.deliveries_received += b.deliveries_received;
        a.lost += b.lost;
        a.duplicated += b.duplicated;
        a.out_of_order += b.out_of_order;
        a.members_dropped += b.members_dropped;
        a.members_starved += b.members_starved;
        self.messages += other.messages;
        self.mismatch += other.mismatch;
        self.reset += other.reset;
        self.connect += other.connect;
        self.first_error = self.first_error.take().or(other.first_error);
        Ok(())
    }
}

/// A whole `--chat` run: its totals, loadgen's CPU seconds over the measured time, and the
/// wall time they were measured over, and when the measured time began.
pub struct ChatRun {
    /// The workers' totals.
    pub totals: ChatTotals,
    /// loadgen's CPU seconds in the measured time.
    pub cpu_s: f64,
    /// The measured time's wall seconds.
    pub wall_s: f64,
    /// When measuring began.
    pub measure_start: Instant,
    /// Worker threads (each pinned to a CPU of `--cpus` when given).
    pub threads: usize,
}

/// Runs the members of `opts` in rooms of `room`.
pub fn run(opts: &Options, room: usize, slow: usize) -> anyhow::Result<ChatRun> {
    let rooms = opts.connections / room;
    let cores = match opts.cpus.is_empty() {
        true => affinity_cpus().len(),
        false => opts.cpus.len(),
    };
    let threads = opts.threads.unwrap_or(cores).clamp(1, rooms.max(1));
    let senders = rooms * (room - slow);
    let barrier = Barrier::new(threads + 1);
    let start: OnceLock<Instant> = OnceLock::new();
    thread::scope(|s| -> anyhow::Result<ChatRun> {
        let mut handles = Vec::new();
        for w in 0..threads {
            let mine: Vec<usize> = (w..rooms).step_by(threads).collect();
            let cpu = (!opts.cpus.is_empty()).then(|| opts.cpus[w % opts.cpus.len()]);
            let (barrier, start) = (&barrier, &start);
            let plan = Plan {
                opts,
                room,
                slow,
                senders,
            };
            let handle = thread::Builder::new()
                .name(format!("loadgen-chat-{w}"))
                .spawn_scoped(s, move || -> anyhow::Result<ChatTotals> {
                    if let Some(cpu) = cpu {
                        pin_to(&[cpu])?;
                    }
                    let _ = nix::sys::prctl::set_timerslack(1);
                    Worker::new(plan, &mine)?.run(barrier, start)
                })
                .context("cannot start a worker thread")?;
            handles.push(handle);
        }
        // Every room filled (or its members starved): the load starts now, for every worker.
        barrier.wait();
        let start = *start.get_or_init(Instant::now);
        if let Some(started) = &opts.load_started {
            let _ = started.set(start);
        }
        let measure_start = start + opts.warmup;
        let end = measure_start + opts.duration;
        thread::sleep(measure_start.saturating_duration_since(Instant::now()));
        let (cpu0, wall0) = (cpu_seconds(), Instant::now());
        thread::sleep(end.saturating_duration_since(Instant::now()));
        let (cpu_s, wall_s) = (cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
        let mut totals = ChatTotals::new();
        for handle in handles {
            let worked = handle
                .join()
                .map_err(|_| anyhow!("a worker thread panicked"))?;
            totals.add(worked?)?;
        }
        totals.report.room = room;
        totals.report.rooms = rooms;
        totals.report.slow_per_room = slow;
        Ok(ChatRun {
            totals,
            cpu_s,
            wall_s,
            measure_start,
            threads,
        })
    })
}

/// What every worker is told.
#[derive(Clone, Copy)]
struct Plan<'a> {
    opts: &'a Options,
    room: usize,
    slow: usize,
    /// Members that send, over all rooms (for the open-loop plan).
    senders: usize,
}

/// Where a member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Sent its `J`; no `A` yet.
    Joining,
    /// Has its `A`.
    Joined,
    /// Had its `A` only after the load began: counted starved, and left out of the load
    /// (it sends nothing, and what it receives is neither owed to it nor checked, since it
    /// joined its room's order part way).
    Late,
    /// Closed by the server, or never connected.
    Gone,
}

/// One member.
struct Member {
    stream: Option<TcpStream>,
    /// Its number in the whole run: room × ROOM + place.
    id: u32,
    /// Its room among the worker's.
    room: usize,
    slow: bool,
    state: State,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `output` written.
    written: usize,
    /// Closed loop: its own messages not yet back at it.
    in_flight: usize,
    /// Its next message's number.
    seq: u64,
    /// The number of the last message received from each member of its room.
    last_from: Vec<Option<u64>>,
    /// Its deliveries so far: its place in the room's order.
    cursor: usize,
}

/// One room of the worker's.
struct Room {
    number: u32,
    /// The room's order: (sender's place, number) of each message, as first received.
    order: Vec<(u32, u64)>,
    /// Members that read and joined: each measured message is owed to them.
    readers: u32,
}

/// A message on its way to its room's readers.
struct Pending {
    intended: Instant,
    measured: bool,
    left: u32,
}

struct Worker<'a> {
    plan: Plan<'a>,
    poll: Poll,
    timer: TimerFd,
    members: Vec<Member>,
    rooms: Vec<Room>,
    pending: HashMap<(u32, u64), Pending>,
    totals: ChatTotals,
    scratch: Vec<u8>,
    start: Instant,
    measure_start: Instant,
    end: Instant,
    sending: bool,
    /// Whether the load has begun: every member's join was waited for.
    begun: bool,
    /// Open loop: every sending member's next intended send, earliest first.
    schedule: BinaryHeap<Reverse<(Instant, usize)>>,
    events: Option<Events>,
}

impl<'a> Worker<'a> {
    /// Connects the members of `rooms` and sends their `J`s.
    fn new(plan: Plan<'a>, rooms: &[usize]) -> anyhow::Result<Worker<'a>> {
        let poll = Poll::new().context("cannot create a poll")?;
        let timer = schedule_timer(&poll).context("cannot create the schedule's timer")?;
        let mut w = Worker {
            plan,
            poll,
            timer,
            members: Vec::new(),
            rooms: Vec::new(),
            pending: HashMap::new(),
            totals: ChatTotals::new(),
            scratch: vec![0u8; 64 * 1024],
            start: Instant::now(),
            measure_start: Instant::now(),
            end: Instant::now(),
            sending: false,
            begun: false,
            schedule: BinaryHeap::new(),
            events: Some(Events::with_capacity(1024)),
        };
        for (local, &number) in rooms.iter().enumerate() {
            w.rooms.push(Room {
                number: number as u32,
                order: Vec::new(),
                readers: 0,
            });
            for place in 0..plan.room {
                let id = (number * plan.room + place) as u32;
                let slow = place >= plan.room - plan.slow;
                w.connect(id, local, slow);
            }
        }
        Ok(w)
    }

    fn connect(&mut self, id: u32, room: usize, slow: bool) {
        let key = self.members.len();
        let mut member = Member {
            stream: None,
            id,
            room,
            slow,
            state: State::Gone,
            input: Vec::new(),
            output: join_frame(self.rooms[room].number),
            written: 0,
            in_flight: 0,
            seq: 0,
            last_from: vec![None; self.plan.room],
            cursor: 0,
        };
        match connect(self.plan.opts.addr, self.plan.opts.timeout, slow) {
            Ok(mut stream) => {
                let interest = Interest::READABLE | Interest::WRITABLE;
                match self
                    .poll
                    .registry()
                    .register(&mut stream, Token(key), interest)
                {
                    Ok(()) => {
                        member.stream = Some(stream);
                        member.state = State::Joining;
                    }
                    Err(e) => self.connect_failed(&e),
                }
            }
            Err(e) => self.connect_failed(&e),
        }
        self.members.push(member);
        self.flush(key);
    }

    fn connect_failed(&mut self, e: &io::Error) {
        self.totals.connect += 1;
        self.totals.first_error.get_or_insert_with(|| e.to_string());
    }

    fn run(mut self, barrier: &Barrier, start: &OnceLock<Instant>) -> anyhow::Result<ChatTotals> {
        let opts = self.plan.opts;
        // Joins: every member's `A`, or `--timeout`; a member still without one is starved.
        let joins_until = Instant::now() + opts.timeout;
        while self
            .members
            .iter()
            .any(|m| m.state == State::Joining && !m.slow)
            && Instant::now() < joins_until
        {
            self.turn(Some(joins_until))?;
        }
        for m in &self.members {
            match (m.state, m.slow) {
                (State::Joined, false) => self.rooms[m.room].readers += 1,
                (State::Joining | State::Late, false) | (State::Gone, _) => {
                    self.totals.report.members_starved += 1
                }
                (_, true) => {}
            }
        }
        barrier.wait();
        self.start = *start.get_or_init(Instant::now);
        self.measure_start = self.start + opts.warmup;
        self.end = self.measure_start + opts.duration;
        self.sending = true;
        self.begun = true;
        match opts.rate {
            None => {
                for key in 0..self.members.len() {
                    for _ in 0..opts.pipeline {
                        self.send(key, Instant::now());
                    }
                }
            }
            Some(rate) => {
                for key in 0..self.members.len() {
                    let m = &self.members[key];
                    if m.state == State::Joined && !m.slow {
                        let at = self.intended(m, rate);
                        self.schedule.push(Reverse((at, key)));
                    }
                }
            }
        }
        while Instant::now() < self.end {
            let due = self.schedule.peek().map(|Reverse((at, _))| *at);
            self.turn(Some(due.map_or(self.end, |d| d.min(self.end))))?;
        }
        // The drain: no more sends; the measured messages' deliveries, for at most --timeout.
        self.sending = false;
        let drain_until = Instant::now() + opts.timeout;
        while self.pending.values().any(|p| p.measured && p.left > 0)
            && Instant::now() < drain_until
        {
            self.turn(Some(drain_until))?;
        }
        self.finish();
        Ok(self.totals)
    }

    /// Waits for events (at most until `until`) and handles them.
    fn turn(&mut self, until: Option<Instant>) -> anyhow::Result<()> {
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(1024));
        let left = until.map(|u| u.saturating_duration_since(Instant::now()));
        let timeout = match left {
            Some(left) if !left.is_zero() => {
                // The timerfd wakes on time; poll's own timeout is whole milliseconds.
                let _ = self.timer.set(
                    Expiration::OneShot(TimeSpec::from_duration(left)),
                    TimerSetTimeFlags::empty(),
                );
                Some(left + Duration::from_millis(1))
            }
            other => other,
        };
        let polled = self.poll.poll(&mut events, timeout);
        if let Err(e) = polled {
            self.events = Some(events);
            return match e.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(e).context("poll failed"),
            };
        }
        for event in events.iter() {
            match event.token() {
                TIMER => {
                    let _ = self.timer.wait();
                }
                Token(key) => {
                    if event.is_writable() {
                        self.flush(key);
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        self.read(key);
                    }
                }
            }
        }
        self.events = Some(events);
        if self.sending {
            self.send_scheduled(Instant::now());
        }
        Ok(())
    }

    fn intended(&self, m: &Member, rate: f64) -> Instant {
        let sender = self.sender_index(m);
        let nth = sender as f64 + m.seq as f64 * self.plan.senders as f64;
        self.start + Duration::from_secs_f64(nth / rate)
    }

    /// The member's place among the senders of the whole run.
    fn sender_index(&self, m: &Member) -> usize {
        let readers = self.plan.room - self.plan.slow;
        let room = m.id as usize / self.plan.room;
        room * readers + m.id as usize % self.plan.room
    }

    /// Open loop: sends every message whose time has come, and schedules each sender's next.
    fn send_scheduled(&mut self, now: Instant) {
        let Some(rate) = self.plan.opts.rate else {
            return;
        };
        while let Some(&Reverse((intended, key))) = self.schedule.peek() {
            if intended > now || intended >= self.end {
                return;
            }
            self.schedule.pop();
            self.totals
                .send_late
                .record(nanos(now - intended).max(1))
                .ok();
            self.send(key, intended);
            let m = &self.members[key];
            if m.state == State::Joined {
                let next = self.intended(m, rate);
                self.schedule.push(Reverse((next, key)));
            }
        }
    }

    /// Member `key` sends its next message, meant for `intended`.
    fn send(&mut self, key: usize, intended: Instant) {
        let size = self.plan.opts.size;
        let (id, seq, room) = {
            let m = &mut self.members[key];
            if m.state != State::Joined || m.slow {
                return;
            }
            m.seq += 1;
            m.in_flight += 1;
            (m.id, m.seq, m.room)
        };
        let at = intended.saturating_duration_since(self.start);
        let measured = intended >= self.measure_start && intended < self.end;
        let readers = self.rooms[room].readers;
        if measured {
            self.totals.messages += 1;
            self.totals.report.deliveries_expected += u64::from(readers);
        }
        self.pending.insert(
            (id, seq),
            Pending {
                intended,
                measured,
                left: readers,
            },
        );
        let m = &mut self.members[key];
        m.output
            .extend_from_slice(&((size + 1) as u32).to_be_bytes());
        m.output.push(b'M');
        m.output.extend_from_slice(&id.to_be_bytes());
        m.output.extend_from_slice(&seq.to_be_bytes());
        m.output.extend_from_slice(&(nanos(at)).to_be_bytes());
        m.output
            .extend_from_slice(pattern(id, seq, size - PAYLOAD_HEADER));
        self.flush(key);
    }

    fn flush(&mut self, key: usize) {
        let m = &mut self.members[key];
        let Some(stream) = m.stream.as_mut() else {
            return;
        };
        while m.written < m.output.len() {
            match stream.write(&m.output[m.written..]) {
                Ok(0) => break,
                Ok(n) => m.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.gone(key),
            }
        }
        m.output.clear();
        m.written = 0;
    }

    fn read(&mut self, key: usize) {
        if self.members[key].slow {
            return;
        }
        loop {
            let Worker {
                members, scratch, ..
            } = self;
            let Some(stream) = members[key].stream.as_mut() else {
                return;
            };
            match stream.read(scratch) {
                Ok(0) => return self.gone(key),
                Ok(n) => {
                    members[key].input.extend_from_slice(&scratch[..n]);
                    self.take_frames(key);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.gone(key),
            }
        }
    }

    /// Member `key`'s connection ended: the server closed it (or it failed).
    fn gone(&mut self, key: usize) {
        let m = &mut self.members[key];
        if m.state == State::Gone {
            return;
        }
        if let Some(mut stream) = m.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        let (was_joined, late) = (m.state == State::Joined, m.state == State::Late);
        m.state = State::Gone;
        if late {
            // Counted starved already.
            return;
        }
        self.totals.report.members_dropped += 1;
        if was_joined && !m.slow {
            self.totals.reset += 1;
        }
    }

    fn take_frames(&mut self, key: usize) {
        let now = Instant::now();
        let input = std::mem::take(&mut self.members[key].input);
        let mut at = 0;
        while let Some(prefix) = input.get(at..at + PREFIX) {
            let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
            if len == 0 || len > MAX_SIZE + 1 {
                self.totals.mismatch += 1;
                return self.gone(key);
            }
            let Some(body) = input.get(at + PREFIX..at + PREFIX + len) else {
                break;
            };
            at += PREFIX + len;
            self.frame(key, body, now);
        }
        let mut input = input;
        input.drain(..at);
        self.members[key].input = input;
    }

    fn frame(&mut self, key: usize, body: &[u8], now: Instant) {
        match body[0] {
            b'A' if self.members[key].state == State::Joining => {
                self.members[key].state = match self.begun {
                    true => State::Late,
                    false => State::Joined,
                };
            }
            b'M' if self.members[key].state == State::Late => {}
            b'M' if body.len() > PAYLOAD_HEADER => self.delivery(key, &body[1..], now),
            _ => self.totals.mismatch += 1,
        }
    }

    fn delivery(&mut self, key: usize, payload: &[u8], now: Instant) {
        let field = |at: usize, n: usize| {
            payload[at..at + n]
                .iter()
                .fold(0u64, |a, &b| a << 8 | u64::from(b))
        };
        let (sender, seq) = (field(0, 4) as u32, field(4, 8));
        let plan = self.plan;
        let (room, place) = (sender as usize / plan.room, sender as usize % plan.room);
        let member = &self.members[key];
        let whole = payload.len() == plan.opts.size
            && payload[PAYLOAD_HEADER..] == *pattern(sender, seq, payload.len() - PAYLOAD_HEADER);
        if room as u32 != self.rooms[member.room].number || !whole {
            self.totals.mismatch += 1;
            return;
        }
        let m = &mut self.members[key];
        if m.last_from[place].is_some_and(|last| seq <= last) {
            self.totals.report.duplicated += 1;
            return;
        }
        m.last_from[place] = Some(seq);
        let order = &mut self.rooms[m.room].order;
        match order.get(m.cursor) {
            Some(&expected) if expected != (place as u32, seq) => {
                self.totals.report.out_of_order += 1
            }
            Some(_) => {}
            None => order.push((place as u32, seq)),
        }
        m.cursor += 1;
        let own = m.id == sender;
        if let Some(p) = self.pending.get_mut(&(sender, seq)) {
            p.left = p.left.saturating_sub(1);
            if p.measured {
                self.totals.report.deliveries_received += 1;
                let took = nanos(now.saturating_duration_since(p.intended)).max(1);
                self.totals.delivery.record(took).ok();
                let interval = p
                    .intended
                    .saturating_duration_since(self.measure_start)
                    .as_nanos()
                    / plan.opts.hlog_interval.as_nanos().max(1);
                let interval = interval as usize;
                at(&mut self.totals.intervals, interval).record(took).ok();
                if p.left == 0 {
                    self.totals.fanout.record(took).ok();
                    at(&mut self.totals.fanout_intervals, interval)
                        .record(took)
                        .ok();
                }
            }
            if p.left == 0 {
                self.pending.remove(&(sender, seq));
            }
        }
        if own {
            let m = &mut self.members[key];
            m.in_flight = m.in_flight.saturating_sub(1);
            if self.sending && plan.opts.rate.is_none() && Instant::now() < self.end {
                self.send(key, Instant::now());
            }
        }
    }

    /// The end: what was owed and never came is lost; slow members are read to see whether
    /// the server dropped them; every connection is half-closed and read to the server's EOF.
    fn finish(&mut self) {
        self.totals.report.lost = self
            .pending
            .values()
            .filter(|p| p.measured)
            .map(|p| u64::from(p.left))
            .sum();
        // A dropped slow member's socket still holds what the server had queued for it (up to
        // its send buffer) before the EOF: read it through the small window, for at most a
        // second.
        let slow_until = Instant::now() + Duration::from_secs(1).min(self.plan.opts.timeout);
        for key in 0..self.members.len() {
            if self.members[key].slow {
                self.drain_slow(key, slow_until);
            }
        }
        let until = Instant::now() + Duration::from_millis(250).min(self.plan.opts.timeout);
        for m in &mut self.members {
            if let Some(stream) = &m.stream {
                let _ = stream.shutdown(Shutdown::Write);
            }
        }
        let mut events = self
            .events
            .take()
            .unwrap_or_else(|| Events::with_capacity(64));
        while Instant::now() < until && self.members.iter().any(|m| m.stream.is_some()) {
            for key in 0..self.members.len() {
                let Some(stream) = self.members[key].stream.as_mut() else {
                    continue;
                };
                match stream.read(&mut self.scratch) {
                    Ok(0) => self.members[key].stream = None,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => self.members[key].stream = None,
                }
            }
            let _ = self.poll.poll(&mut events, Some(Duration::from_millis(10)));
        }
    }

    /// A slow member, read at the end until `until`: the server dropped it if its data ends
    /// in EOF or a reset. Data that stops coming before it (nothing for 50 ms) is a member the
    /// server kept.
    fn drain_slow(&mut self, key: usize, until: Instant) {
        let Some(stream) = self.members[key].stream.as_mut() else {
            return;
        };
        let mut quiet_since = Instant::now();
        loop {
            match stream.read(&mut self.scratch) {
                Ok(0) => break,
                Ok(_) => quiet_since = Instant::now(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= until || now.duration_since(quiet_since) >= SLOW_QUIET {
                        return;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                Err(_) => break,
            }
        }
        self.gone(key);
    }
}

/// How long a slow member read at the end may stay without data before it is taken as kept by
/// the server: a dropped one's last bytes and EOF follow each other within microseconds on
/// loopback.
const SLOW_QUIET: Duration = Duration::from_millis(50);

/// A slow member's receive buffer: it never reads, so what it would hold is only what the
/// server takes longer to find out about.
const SLOW_RCVBUF: usize = 4096;

/// A connected, non-blocking socket with `TCP_NODELAY`, within `timeout`; a `slow` member's
/// with a small receive buffer, set before it connects so that its window stays small.
fn connect(addr: SocketAddr, timeout: Duration, slow: bool) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if slow {
        socket.set_recv_buffer_size(SLOW_RCVBUF)?;
    }
    socket.connect_timeout(&addr.into(), timeout)?;
    let stream: std::net::TcpStream = socket.into();
    stream.set_nodelay(true)?;
    stream.set_nonblocking(true)?;
    Ok(TcpStream::from_std(stream))
}

/// The frame of a `J` for `room`.
fn join_frame(room: u32) -> Vec<u8> {
    let mut f = 5u32.to_be_bytes().to_vec();
    f.push(b'J');
    f.extend_from_slice(&room.to_be_bytes());
    f
}

/// The pattern's period: a prime, so that no power-of-two message size lines it up.
const PERIOD: usize = 251;

/// The bytes of message `seq` of member `sender`'s payload after its header, `len` of them:
/// byte `i` of the payload is `(sender × 31 + seq × 7 + i) mod 251`.
fn pattern(sender: u32, seq: u64, len: usize) -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    let table = TABLE.get_or_init(|| (0..PERIOD + MAX_SIZE).map(|k| (k % PERIOD) as u8).collect());
    let base = (u64::from(sender) * 31 + seq.wrapping_mul(7) % PERIOD as u64) as usize;
    let from = (base + PAYLOAD_HEADER) % PERIOD;
    &table[from..from + len]
}

/// The histogram of interval `i` of `intervals`, made (with any before it) if missing.
fn at(intervals: &mut Vec<Histogram<u64>>, i: usize) -> &mut Histogram<u64> {
    while intervals.len() <= i {
        intervals.push(new_histogram());
    }
    &mut intervals[i]
}

/// The interval log's tag of the fan-out latency's intervals.
pub const FANOUT_TAG: &str = "fanout";

/// The interval log's intervals of a chat run, each interval's delivery latency (tagged
/// `latency`), then its fan-out latency (tagged [`FANOUT_TAG`]).
pub fn intervals(totals: &ChatTotals, length: Duration) -> Vec<hlog::Interval> {
    let empty = new_histogram();
    let mut all = Vec::new();
    for (i, h) in totals.intervals.iter().enumerate() {
        let start = length * i as u32;
        let fanout = totals.fanout_intervals.get(i).unwrap_or(&empty);
        for (tag, histogram) in [("latency", h), (FANOUT_TAG, fanout)] {
            all.push(hlog::Interval {
                start,
                length,
                tag: tag.to_owned(),
                histogram: histogram.clone(),
            });
        }
    }
    all
}
