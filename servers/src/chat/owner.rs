//! Rooms owned by one event-loop thread (`mio`, each loop of `mio-multi`, `io-uring`, and the
//! process models' [`hub`](super::hub)): no lock, because no other thread ever touches them.
//! A message is queued for every member of its room inside one turn of the loop, so every
//! member has the room's messages in the order the loop read them.
//!
//! [`Owner`] is the state alone: members, their rooms, their queues, and which of them have
//! something new to write or must be closed; the loop around it does the I/O. [`run`] is that
//! loop over mio (edge-triggered epoll), for a TCP or a Unix listener; with a [`Handoff`]
//! (`mio-multi`) a room belongs to one loop of several, and a member whose `J` names a room
//! of another loop is moved there, socket and unread bytes, before it joins.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

use super::{ack_frame, count_join, count_message, Decoder, Frame, Outbox, Request};
use crate::accept::{accept_error_is_per_connection, log_accept_error, ACCEPT_BACKOFF};
use crate::conn_limit::{ConnLimit, ConnSlot};
use crate::echo::HalfClose;
use crate::endings::{self, Ending};
use crate::errors::{interrupted, would_block};

/// A member as the owner knows it.
#[derive(Debug)]
pub struct Member {
    decoder: Decoder,
    out: Outbox,
    room: Option<u32>,
}

impl Member {
    /// Bytes read from the member and not decoded yet: what a moved member brings along.
    pub fn rest(&self) -> &[u8] {
        self.decoder.rest()
    }
}

/// What feeding a member's bytes to the owner came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// Taken; go on reading.
    Taken,
    /// Its `J` names a room this owner does not own: move it to the owner of this room.
    Elsewhere(u32),
    /// It broke the protocol: close it, counted as this.
    Refused(Ending),
}

/// The rooms of one owner and their members, keyed by the loop's own connection keys.
pub struct Owner {
    members: HashMap<usize, Member>,
    rooms: HashMap<u32, Vec<usize>>,
    queue: usize,
    owns: Box<dyn Fn(u32) -> bool + Send>,
    dirty: Vec<usize>,
    dropped: Vec<usize>,
}

impl Owner {
    /// An owner of every room whose members' queues hold at most `queue` bytes.
    pub fn new(queue: usize) -> Owner {
        Owner::of(queue, Box::new(|_| true))
    }

    /// An owner of the rooms for which `owns` is true.
    pub fn of(queue: usize, owns: Box<dyn Fn(u32) -> bool + Send>) -> Owner {
        Owner {
            members: HashMap::new(),
            rooms: HashMap::new(),
            queue,
            owns,
            dirty: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// A new connection, in no room yet.
    pub fn add(&mut self, key: usize) {
        let member = Member {
            decoder: Decoder::default(),
            out: Outbox::new(self.queue),
            room: None,
        };
        self.members.insert(key, member);
    }

    /// A member moved here from another owner, its `J` for `room` already read, `rest`
    /// read after it.
    pub fn add_joined(&mut self, key: usize, room: u32, rest: &[u8]) -> Fed {
        self.add(key);
        self.join(key, room);
        if let Some(m) = self.members.get_mut(&key) {
            m.decoder = Decoder::after_join();
        }
        self.received(key, rest)
    }

    /// Bytes read from member `key`: its requests are carried out (joins answered, messages
    /// queued for the room).
    pub fn received(&mut self, key: usize, bytes: &[u8]) -> Fed {
        let Some(member) = self.members.get_mut(&key) else {
            return Fed::Taken;
        };
        member.decoder.extend(bytes);
        loop {
            let Some(member) = self.members.get_mut(&key) else {
                return Fed::Taken;
            };
            match member.decoder.next_request() {
                None => return Fed::Taken,
                Some(Err(ending)) => return Fed::Refused(ending),
                Some(Ok(Request::Join(room))) if !(self.owns)(room) => return Fed::Elsewhere(room),
                Some(Ok(Request::Join(room))) => self.join(key, room),
                Some(Ok(Request::Message(frame))) => self.fan_out(key, frame),
            }
        }
    }

    fn join(&mut self, key: usize, room: u32) {
        let members = self.rooms.entry(room).or_default();
        members.push(key);
        let ack = ack_frame(room, members.len());
        if let Some(m) = self.members.get_mut(&key) {
            m.room = Some(room);
            m.out.push(ack);
            self.dirty.push(key);
        }
        count_join();
    }

    fn fan_out(&mut self, from: usize, frame: Frame) {
        let Some(room) = self.members.get(&from).and_then(|m| m.room) else {
            return;
        };
        let Some(keys) = self.rooms.get_mut(&room) else {
            return;
        };
        let members = &mut self.members;
        let (dirty, dropped) = (&mut self.dirty, &mut self.dropped);
        keys.retain(|&key| {
            let Some(m) = members.get_mut(&key) else {
                return false;
            };
            if !m.out.push(Frame::clone(&frame)) {
                // Too slow: out of the room now, closed by the loop.
                m.room = None;
                dropped.push(key);
                return false;
            }
            if m.out.bytes() == frame.len() {
                dirty.push(key);
            }
            true
        });
        count_message(keys.len());
    }

    /// The members whose queues have had something added since the last call.
    pub fn take_dirty(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.dirty)
    }

    /// The members dropped as too slow since the last call: the loop closes them.
    pub fn take_dropped(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.dropped)
    }

    /// Member `key`'s queue.
    pub fn outbox(&mut self, key: usize) -> Option<&mut Outbox> {
        self.members.get_mut(&key).map(|m| &mut m.out)
    }

    /// Member `key` leaves its room (it may still be owed deliveries already queued).
    pub fn leave(&mut self, key: usize) {
        let Some(room) = self.members.get_mut(&key).and_then(|m| m.room.take()) else {
            return;
        };
        if let Some(keys) = self.rooms.get_mut(&room) {
            keys.retain(|&k| k != key);
            if keys.is_empty() {
                self.rooms.remove(&room);
            }
        }
    }

    /// Member `key` is gone: out of its room and forgotten; what it was is returned.
    pub fn remove(&mut self, key: usize) -> Option<Member> {
        self.leave(key);
        self.members.remove(&key)
    }
}

/// A listener [`run`] accepts members on: TCP for the models, Unix for the hub.
pub trait Listen: Source {
    /// A connected member's socket.
    type Stream: Read + Write + Source + HalfClose + AsFd + Send + 'static;
    /// Accepts one; `WouldBlock` when none waits.
    fn accept_one(&self) -> io::Result<Self::Stream>;
}

impl Listen for mio::net::TcpListener {
    type Stream = mio::net::TcpStream;
    fn accept_one(&self) -> io::Result<Self::Stream> {
        let (stream, _) = self.accept()?;
        stream.set_nodelay(true)?;
        super::limit_send_buffer(&stream);
        Ok(stream)
    }
}

impl Listen for mio::net::UnixListener {
    type Stream = mio::net::UnixStream;
    fn accept_one(&self) -> io::Result<Self::Stream> {
        self.accept().map(|(stream, _)| stream)
    }
}

/// `mio-multi`: the loops between which members move to their room's loop.
pub struct Handoff<S> {
    /// This loop's number.
    pub index: usize,
    /// Each loop's inbox and the waker that tells it something came.
    pub loops: Vec<(Sender<Moved<S>>, Arc<Waker>)>,
    /// This loop's inbox.
    pub inbox: Receiver<Moved<S>>,
}

/// A member on its way to the loop that owns its room.
pub struct Moved<S> {
    stream: S,
    slot: Option<ConnSlot>,
    room: u32,
    rest: Vec<u8>,
}

/// Of `loops` loops, the one that owns `room`.
pub fn loop_of(loops: usize, room: u32) -> usize {
    room as usize % loops.max(1)
}

/// The listener's token.
pub const LISTENER: Token = Token(usize::MAX - 1);
/// The token of the stop source, and of [`Handoff`]'s waker, registered by the caller.
pub const STOP: Token = Token(usize::MAX - 2);

/// Reads one member may do per turn before the others get theirs.
const READS_PER_TURN: usize = 16;

/// One member's connection in the loop.
struct Conn<S> {
    stream: S,
    /// Its place under `--max-conns`, which goes with it if it moves to another loop.
    slot: Option<ConnSlot>,
    reading: bool,
}

/// Runs the loop until an event on [`STOP`] (which the caller has registered with `poll`)
/// finds `stopped` true (an event on it also brings members moved here): accepts members on
/// `listener` (under `limit`), reads their frames into one [`Owner`], writes every member's
/// queue, closes who leaves, breaks the protocol or is too slow.
pub fn run<L: Listen>(
    mut poll: Poll,
    mut listener: L,
    limit: Option<ConnLimit>,
    (owner, handoff): (Owner, Option<Handoff<L::Stream>>),
    stopped: &dyn Fn() -> bool,
) -> io::Result<()> {
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut state = Loop {
        conns: Slab::new(),
        owner,
        again: Vec::new(),
        handoff,
        scratch: vec![0u8; 64 * 1024],
    };
    let mut events = Events::with_capacity(1024);
    let mut paused_until: Option<Instant> = None;
    loop {
        let timeout = match (&state.again.is_empty(), paused_until) {
            (false, _) => Some(Duration::ZERO),
            (true, Some(until)) => Some(until.saturating_duration_since(Instant::now())),
            (true, None) => None,
        };
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if interrupted(&e) => continue,
            Err(e) => return Err(e),
        }
        let registry = poll.registry();
        if paused_until.is_some_and(|until| Instant::now() >= until) {
            paused_until = state.accept_all(&listener, limit.as_ref(), registry);
        }
        for key in std::mem::take(&mut state.again) {
            state.turn(key, true, false, registry);
        }
        for event in events.iter() {
            match event.token() {
                STOP if stopped() => return Ok(()),
                STOP => state.arrivals(registry),
                LISTENER if paused_until.is_none() => {
                    paused_until = state.accept_all(&listener, limit.as_ref(), registry);
                }
                LISTENER => {}
                Token(key) => state.turn(
                    key,
                    event.is_readable() || event.is_read_closed() || event.is_error(),
                    event.is_writable(),
                    registry,
                ),
            }
        }
        state.settle(registry);
    }
}

struct Loop<S> {
    conns: Slab<Conn<S>>,
    owner: Owner,
    /// Members whose read budget ran out with input left: another turn soon.
    again: Vec<usize>,
    handoff: Option<Handoff<S>>,
    scratch: Vec<u8>,
}

impl<S: Read + Write + Source + HalfClose + AsFd + Send + 'static> Loop<S> {
    fn accept_all<L: Listen<Stream = S>>(
        &mut self,
        listener: &L,
        limit: Option<&ConnLimit>,
        registry: &Registry,
    ) -> Option<Instant> {
        loop {
            match listener.accept_one() {
                Ok(stream) => {
                    let slot = match limit {
                        Some(limit) => match limit.admit(&stream) {
                            Some(slot) => Some(slot),
                            // Refused (a defence) or over the cap: dropping the stream closes it at once.
                            None => continue,
                        },
                        None => None,
                    };
                    let key = self.insert(stream, slot, registry);
                    if let Some(key) = key {
                        self.owner.add(key);
                    }
                }
                Err(e) if would_block(&e) => return None,
                Err(e) if interrupted(&e) || accept_error_is_per_connection(&e) => {}
                Err(e) => {
                    log_accept_error(&e);
                    return Some(Instant::now() + ACCEPT_BACKOFF);
                }
            }
        }
    }

    fn insert(
        &mut self,
        mut stream: S,
        slot: Option<ConnSlot>,
        registry: &Registry,
    ) -> Option<usize> {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if registry
            .register(&mut stream, Token(key), interest)
            .is_err()
        {
            return None;
        }
        entry.insert(Conn {
            stream,
            slot,
            reading: true,
        });
        Some(key)
    }

    /// Members moved here by other loops: registered, joined, their unread bytes taken.
    fn arrivals(&mut self, registry: &Registry) {
        let mut moved = Vec::new();
        if let Some(h) = &self.handoff {
            moved.extend(h.inbox.try_iter());
        }
        for m in moved {
            let Some(key) = self.insert(m.stream, m.slot, registry) else {
                continue;
            };
            let fed = self.owner.add_joined(key, m.room, &m.rest);
            self.after_feed(key, fed, registry);
            // Bytes that came while it moved wait in the socket; edge-triggered, so look now.
            self.again.push(key);
        }
    }

    /// A turn on member `key`: read what it sent, write what it is owed.
    fn turn(&mut self, key: usize, readable: bool, writable: bool, registry: &Registry) {
        if writable {
            self.flush(key, registry);
        }
        if !readable || !self.conns.get(key).is_some_and(|c| c.reading) {
            return;
        }
        for i in 0..=READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if i == READS_PER_TURN {
                self.again.push(key);
                return;
            }
            match conn.stream.read(&mut self.scratch) {
                Ok(0) => {
                    conn.reading = false;
                    let eof_mid_frame = self
                        .owner
                        .members
                        .get(&key)
                        .is_some_and(|m| !m.rest().is_empty());
                    if eof_mid_frame {
                        return self.close(key, Some(Ending::EofMidMessage), registry);
                    }
                    self.owner.leave(key);
                    return self.flush(key, registry);
                }
                Ok(n) => {
                    let fed = self.owner.received(key, &self.scratch[..n]);
                    if !self.after_feed(key, fed, registry) {
                        return;
                    }
                }
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => {}
                Err(e) => return self.close(key, Some(Ending::of(&e)), registry),
            }
        }
    }

    /// Acts on what feeding member `key` came to; false when it is no longer this loop's.
    fn after_feed(&mut self, key: usize, fed: Fed, registry: &Registry) -> bool {
        match fed {
            Fed::Taken => true,
            Fed::Refused(ending) => {
                self.close(key, Some(ending), registry);
                false
            }
            Fed::Elsewhere(room) => {
                self.move_to_owner(key, room, registry);
                false
            }
        }
    }

    fn move_to_owner(&mut self, key: usize, room: u32, registry: &Registry) {
        let rest = self.owner.remove(key).map(|m| m.rest().to_vec());
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = registry.deregister(&mut conn.stream);
        let Some(h) = &self.handoff else {
            return;
        };
        let (to, waker) = &h.loops[loop_of(h.loops.len(), room)];
        let moved = Moved {
            stream: conn.stream,
            slot: conn.slot,
            room,
            rest: rest.unwrap_or_default(),
        };
        if to.send(moved).is_ok() {
            let _ = waker.wake();
        }
    }

    /// Writes what member `key` is owed; closes it once it has left and has it all.
    fn flush(&mut self, key: usize, registry: &Registry) {
        let (Some(conn), Some(out)) = (self.conns.get_mut(key), self.owner.outbox(key)) else {
            return;
        };
        match out.write_to(&mut conn.stream) {
            Ok(true) if !conn.reading => {
                let _ = conn.stream.shutdown_write();
                self.close(key, None, registry);
            }
            Ok(_) => {}
            Err(e) => self.close(key, Some(Ending::of(&e)), registry),
        }
    }

    /// After a round of events: write every queue that grew, close every member dropped.
    fn settle(&mut self, registry: &Registry) {
        loop {
            let (dirty, dropped) = (self.owner.take_dirty(), self.owner.take_dropped());
            if dirty.is_empty() && dropped.is_empty() {
                return;
            }
            for key in dropped {
                self.close(key, Some(Ending::SlowMember), registry);
            }
            for key in dirty {
                self.flush(key, registry);
            }
        }
    }

    fn close(&mut self, key: usize, ending: Option<Ending>, registry: &Registry) {
        self.owner.remove(key);
        if let Some(mut conn) = self.conns.try_remove(key) {
            let _ = registry.deregister(&mut conn.stream);
        }
        if let Some(ending) = ending {
            endings::count(ending);
        }
    }
}
