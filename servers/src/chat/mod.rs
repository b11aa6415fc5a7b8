//! The chat room (`--chat`): state shared between connections, which echo never has. Each
//! member joins one room; every message it sends goes to every member of that room, itself
//! included, in one order per room.
//!
//! The protocol, over TCP, is frames of a u32 big-endian body length (1 B to [`MAX_BODY`])
//! and a body:
//!
//! | body | from | meaning |
//! |------|------|---------|
//! | `J` + room (u32) | member, first frame only | join the room |
//! | `A` + room (u32) + members (u32) | server | joined; the members now in it, this one included |
//! | `M` + payload | member, after `J` | a message: relayed unchanged (the whole frame) to every member of the room |
//!
//! Anything else (a length out of range, an unknown or misplaced type, a `J` of the wrong size)
//! closes that connection, counted as [`Ending::BadFrame`]. Every member has an outgoing queue
//! of at most `--chat-queue` bytes ([`Outbox`]); a member whose queue would pass it is
//! disconnected and counted ([`Ending::SlowMember`]), and its room goes on without it. Its
//! socket's kernel send buffer is fixed ([`SOCKET_SEND_BUFFER`]), so that what a member that
//! never reads holds in the kernel is bounded too.
//!
//! How each model shares the rooms is its own: [`locked`] (a lock per room, for the thread
//! models), [`owner`] (the rooms owned by one event loop thread), [`hub`] (a process that owns
//! the rooms, for the process models, reached over Unix sockets), [`tasks`] (a task per room,
//! for the async runtimes). This module holds what they all read: the frames, the queue, the
//! counts.

pub mod hub;
pub mod locked;
pub mod owner;
pub mod tasks;

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::endings::{self, Ending};

/// The longest body of a frame: 64 KiB.
pub const MAX_BODY: usize = 64 * 1024;

/// Bytes of a frame's length prefix.
pub const PREFIX: usize = 4;

/// `--chat-queue` unless given: 1 MiB of deliveries waiting per member.
pub const DEFAULT_QUEUE: usize = 1 << 20;

/// The kernel's send buffer of a member's socket: fixed, so that what a member that does not
/// read can be owed is `--chat-queue` plus this, never the megabytes the kernel's autotuning
/// would otherwise grant every socket.
pub const SOCKET_SEND_BUFFER: usize = 256 * 1024;

/// Fixes a member's socket's send buffer at [`SOCKET_SEND_BUFFER`] (a failure leaves the
/// kernel's own, and only loosens the bound).
pub fn limit_send_buffer(socket: impl std::os::fd::AsFd) {
    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SOCKET_SEND_BUFFER);
}

/// How a model shares its rooms between members, as reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Nothing is shared: one member at a time (the iterative servers).
    Alone,
    /// Locks: the senders' threads or tasks fan out under a room's lock.
    Lock,
    /// A single owner: one thread, loop or task owns a room, and nothing is locked.
    Owner,
    /// IPC: a hub process owns the rooms, and the members' processes reach it over sockets.
    Ipc,
}

impl Sharing {
    /// The name reports give it.
    pub fn name(self) -> &'static str {
        match self {
            Sharing::Alone => "alone",
            Sharing::Lock => "lock",
            Sharing::Owner => "single owner",
            Sharing::Ipc => "IPC",
        }
    }
}

/// A frame as it travels: length prefix and body, shared by every member it is queued for.
pub type Frame = Arc<[u8]>;

/// What a member's frame asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `J`: join this room.
    Join(u32),
    /// `M`: this frame, to relay to the room.
    Message(Frame),
}

/// The frame of a `J` for `room`.
pub fn join_frame(room: u32) -> Vec<u8> {
    let mut f = Vec::with_capacity(PREFIX + 5);
    f.extend_from_slice(&5u32.to_be_bytes());
    f.push(b'J');
    f.extend_from_slice(&room.to_be_bytes());
    f
}

/// The `A` frame answering a join of `room`, which now has `members`.
pub fn ack_frame(room: u32, members: usize) -> Frame {
    let mut f = Vec::with_capacity(PREFIX + 9);
    f.extend_from_slice(&9u32.to_be_bytes());
    f.push(b'A');
    f.extend_from_slice(&room.to_be_bytes());
    f.extend_from_slice(&u32::try_from(members).unwrap_or(u32::MAX).to_be_bytes());
    f.into()
}

/// The `M` frame of `payload`.
pub fn message_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(PREFIX + 1 + payload.len());
    f.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
    f.push(b'M');
    f.extend_from_slice(payload);
    f
}

/// Splits a member's byte stream into requests, holding at most one frame's worth of bytes
/// beyond what it has handed out.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the bytes not yet decoded start in `buf`.
    at: usize,
    joined: bool,
}

impl Decoder {
    /// A decoder for a member whose `J` another decoder has read (one moved between loops).
    pub fn after_join() -> Decoder {
        Decoder {
            joined: true,
            ..Decoder::default()
        }
    }

    /// Adds bytes read from the member.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.at > 0 && self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Whether the member has joined (its `J` decoded).
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// Bytes held but not yet decoded: a partial frame, or frames after the one asked for.
    pub fn rest(&self) -> &[u8] {
        &self.buf[self.at..]
    }

    /// The next whole request, `None` until one has arrived; an error closes the connection.
    pub fn next_request(&mut self) -> Option<Result<Request, Ending>> {
        let rest = &self.buf[self.at..];
        let prefix: [u8; PREFIX] = rest.get(..PREFIX)?.try_into().ok()?;
        let len = u32::from_be_bytes(prefix) as usize;
        if !(1..=MAX_BODY).contains(&len) {
            return Some(Err(Ending::BadFrame));
        }
        let frame = rest.get(..PREFIX + len)?;
        let request = match (frame[PREFIX], self.joined) {
            (b'J', false) if len == 5 => {
                self.joined = true;
                let room = [frame[5], frame[6], frame[7], frame[8]];
                Ok(Request::Join(u32::from_be_bytes(room)))
            }
            (b'M', true) => Ok(Request::Message(Frame::from(frame))),
            _ => Err(Ending::BadFrame),
        };
        self.at += PREFIX + len;
        // Give back what one large frame made the buffer grow to, once it is decoded.
        if self.at == self.buf.len() && self.buf.capacity() > 4 * MAX_BODY {
            self.buf = Vec::new();
            self.at = 0;
        } else if self.at > MAX_BODY {
            self.buf.drain(..self.at);
            self.at = 0;
        }
        Some(request)
    }
}

/// A member's outgoing queue: the frames queued for it, oldest first, bounded by
/// `--chat-queue` in bytes not yet written.
#[derive(Debug)]
pub struct Outbox {
    frames: VecDeque<Frame>,
    /// Bytes of the front frame already written.
    sent: usize,
    /// Bytes queued and not yet written.
    bytes: usize,
    cap: usize,
}

/// Frames one vectored write takes at most.
const WRITE_BATCH: usize = 64;

impl Outbox {
    /// An empty queue that holds at most `cap` bytes.
    pub fn new(cap: usize) -> Outbox {
        Outbox {
            frames: VecDeque::new(),
            sent: 0,
            bytes: 0,
            cap,
        }
    }

    /// Queues `frame`; false (and nothing queued) when it would pass the cap: the member is
    /// too slow and must go.
    pub fn push(&mut self, frame: Frame) -> bool {
        if self.bytes + frame.len() > self.cap {
            return false;
        }
        self.bytes += frame.len();
        self.frames.push_back(frame);
        true
    }

    /// Whether nothing waits to be written.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes queued and not yet written.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Writes what the socket takes, in vectored writes; `Ok(true)` when all of it went.
    /// `WouldBlock` is not an error: it is `Ok(false)`.
    pub fn write_to(&mut self, out: &mut impl Write) -> io::Result<bool> {
        while !self.frames.is_empty() {
            let slices: Vec<IoSlice<'_>> = self
                .frames
                .iter()
                .take(WRITE_BATCH)
                .enumerate()
                .map(|(i, f)| IoSlice::new(if i == 0 { &f[self.sent..] } else { f }))
                .collect();
            match out.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// The front of the queue as one buffer of at most `most` bytes, for a loop that hands a
    /// copy to the kernel (io_uring); [`Outbox::advance`] once it is written.
    pub fn front_bytes(&self, most: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, f) in self.frames.iter().enumerate() {
            let f = if i == 0 { &f[self.sent..] } else { &f[..] };
            let take = f.len().min(most - out.len());
            out.extend_from_slice(&f[..take]);
            if out.len() == most {
                break;
            }
        }
        out
    }

    /// `n` bytes from the front have been written.
    pub fn advance(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let left = self.frames[0].len() - self.sent;
            if n < left {
                self.sent += n;
                return;
            }
            n -= left;
            self.sent = 0;
            self.frames.pop_front();
        }
    }
}

/// The counts of the `chat:` line, in this process.
static JOINS: AtomicU64 = AtomicU64::new(0);
static MESSAGES: AtomicU64 = AtomicU64::new(0);
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// Counts a member joining.
pub fn count_join() {
    JOINS.fetch_add(1, Ordering::Relaxed);
}

/// Counts a message relayed to `deliveries` members.
pub fn count_message(deliveries: usize) {
    MESSAGES.fetch_add(1, Ordering::Relaxed);
    DELIVERIES.fetch_add(deliveries as u64, Ordering::Relaxed);
}

/// This process's counts: joins, messages, deliveries.
pub fn counts() -> [u64; 3] {
    [&JOINS, &MESSAGES, &DELIVERIES].map(|c| c.load(Ordering::Relaxed))
}

/// Adds counts made in another process (the [`hub`]) to this one's.
pub fn add_counts([joins, messages, deliveries]: [u64; 3]) {
    JOINS.fetch_add(joins, Ordering::Relaxed);
    MESSAGES.fetch_add(messages, Ordering::Relaxed);
    DELIVERIES.fetch_add(deliveries, Ordering::Relaxed);
}

/// The line a `--chat` server prints at exit, e.g. `echo-server: chat: 64 joins, 1200
/// messages, 19200 deliveries, 1 slow members dropped`.
pub fn summary() -> String {
    let [joins, messages, deliveries] = counts();
    format!(
        "echo-server: chat: {joins} joins, {messages} messages, {deliveries} deliveries, {} slow members dropped",
        endings::counted(Ending::SlowMember)
    )
}

/// The line after it: the connections closed for a frame that broke the protocol.
pub fn refused_summary() -> String {
    format!(
        "echo-server: chat refused: {} bad frames",
        endings::counted(Ending::BadFrame)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    #[test]
    fn frames_are_decoded_in_pieces_and_every_rule_closes_the_connection() {
        let mut d = Decoder::default();
        let mut stream = join_frame(7);
        stream.extend(message_frame(b"hello"));
        for byte in &stream[..stream.len() - 1] {
            d.extend(&[*byte]);
        }
        assert_eq!(d.next_request(), Some(Ok(Request::Join(7))));
        assert!(d.joined());
        assert_eq!(d.next_request(), None);
        d.extend(&stream[stream.len() - 1..]);
        let Some(Ok(Request::Message(m))) = d.next_request() else {
            panic!("no message");
        };
        assert_eq!(&m[..], &message_frame(b"hello")[..]);
        assert_eq!(d.next_request(), None);

        let refused = |bytes: &[u8]| {
            let mut d = Decoder::default();
            d.extend(bytes);
            d.next_request()
        };
        assert_eq!(refused(&message_frame(b"x")), Some(Err(Ending::BadFrame)));
        assert_eq!(refused(&frame(b"J\0\0\0")), Some(Err(Ending::BadFrame)));
        assert_eq!(refused(&frame(b"X")), Some(Err(Ending::BadFrame)));
        assert_eq!(refused(&[0, 0, 0, 0]), Some(Err(Ending::BadFrame)));
        let too_long = (MAX_BODY as u32 + 1).to_be_bytes();
        assert_eq!(refused(&too_long), Some(Err(Ending::BadFrame)));
        let mut twice = join_frame(1);
        twice.extend(join_frame(2));
        let mut d = Decoder::default();
        d.extend(&twice);
        assert_eq!(d.next_request(), Some(Ok(Request::Join(1))));
        assert_eq!(d.next_request(), Some(Err(Ending::BadFrame)));
    }

    #[test]
    fn the_outbox_refuses_what_would_pass_its_cap_and_writes_in_order() {
        let mut out = Outbox::new(10);
        assert!(out.push(Frame::from(&b"abcd"[..])));
        assert!(out.push(Frame::from(&b"efgh"[..])));
        assert!(!out.push(Frame::from(&b"ijk"[..])));
        assert_eq!(out.bytes(), 8);
        assert_eq!(out.front_bytes(5), b"abcde");
        out.advance(5);
        assert_eq!(out.bytes(), 3);
        assert!(out.push(Frame::from(&b"ijk"[..])));
        let mut written = Vec::new();
        assert!(out.write_to(&mut written).unwrap());
        assert_eq!(written, b"fghijk");
        assert!(out.is_empty() && out.bytes() == 0);
    }

    #[test]
    fn an_ack_names_the_room_and_its_members() {
        assert_eq!(&ack_frame(3, 16)[..], &frame(b"A\0\0\0\x03\0\0\0\x10")[..]);
    }
}
