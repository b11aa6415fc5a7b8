//! Rooms behind locks, for the models whose members are threads (`blocking`,
//! `thread-per-client`, `thread-pool`), and the blocking member loop that the thread and the
//! process models share ([`serve_member`]).
//!
//! The locks: a `std::sync::Mutex` over the map of rooms, taken only to join or leave, and one
//! `Mutex` per room, taken by a sender for the whole fan-out, so that every member of a room
//! has the room's messages queued in one order. Each member has a mailbox ([`Mailbox`]: its
//! [`Outbox`] behind a `Mutex`, and an eventfd that wakes its thread when the mailbox goes from
//! empty to not). A sender never writes another member's socket: it queues, and each member's
//! own thread writes its own socket, so a slow member costs its room nothing but its queue,
//! up to `--chat-queue`; then the sender marks it dropped, and its thread closes it.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::{ack_frame, count_join, count_message, Decoder, Frame, Outbox, Request};
use crate::echo::READ_BUF;
use crate::endings::{Ending, Outcome};
use crate::errors::{interrupted, would_block};

/// How often an idle member's thread wakes to ask whether the server stops.
const STOP_TICK: Duration = Duration::from_millis(200);

/// Reads one member may do per wake-up before its deliveries get written again.
const READS_PER_TURN: usize = 16;

/// A member's side of the rooms, for [`serve_member`]: where its requests go and where its
/// deliveries come from.
pub trait Link {
    /// Readable when deliveries wait for the member; `None` once none can come any more (the
    /// member has left and the rooms have said so), so that nobody polls it.
    fn wake_fd(&self) -> Option<BorrowedFd<'_>>;
    /// Joins `room`; the `A` arrives as the first delivery.
    fn join(&mut self, room: u32) -> io::Result<()>;
    /// Relays a message frame to the member's room.
    fn publish(&mut self, frame: Frame) -> io::Result<()>;
    /// Writes the deliveries waiting for the member to `socket` (non-blocking): `Ok(true)`
    /// when none is left; `Err(SlowMember)` when the member has been dropped as too slow.
    fn deliver(&mut self, socket: &mut TcpStream) -> Result<bool, Ending>;
    /// The member has left (its EOF): out of its room, so that only what it is already owed
    /// still comes.
    fn leave(&mut self);
}

/// Serves one member on its own thread (or process) until it leaves, breaks the protocol, is
/// dropped as slow, or `stop`: reads its frames and hands them to `link`, writes what `link`
/// delivers. The socket is made non-blocking; one `poll` waits on it and on the link.
pub fn serve_member(
    socket: &mut TcpStream,
    link: &mut dyn Link,
    stop: &dyn Fn() -> bool,
) -> Result<(), Ending> {
    let io = |e: io::Error| Ending::of(&e);
    socket.set_nonblocking(true).map_err(io)?;
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; READ_BUF];
    let (mut reading, mut flushed) = (true, true);
    while !stop() {
        let mut interest = PollFlags::empty();
        interest.set(PollFlags::POLLIN, reading);
        interest.set(PollFlags::POLLOUT, !flushed);
        let wake = link.wake_fd();
        let mut fds = [
            PollFd::new(socket.as_fd(), interest),
            PollFd::new(wake.unwrap_or(socket.as_fd()), PollFlags::POLLIN),
        ];
        let watched = if wake.is_some() { 2 } else { 1 };
        match poll(
            &mut fds[..watched],
            PollTimeout::from(STOP_TICK.as_millis() as u16),
        ) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io(e.into())),
        }
        let ready = fds[0].revents().unwrap_or(PollFlags::empty());
        let readable = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        // Deliveries came, or the socket takes more of those waiting: write them.
        let woken = watched == 2 && fds[1].revents().is_some_and(|r| r.intersects(readable));
        if woken || ready.intersects(PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP) {
            flushed = link.deliver(socket)?;
        }
        if reading && ready.intersects(readable) {
            for _ in 0..READS_PER_TURN {
                match socket.read(&mut buf) {
                    Ok(0) => {
                        reading = false;
                        link.leave();
                        break;
                    }
                    Ok(n) => decoder.extend(&buf[..n]),
                    Err(e) if would_block(&e) => break,
                    Err(e) if interrupted(&e) => {}
                    Err(e) => return Err(io(e)),
                }
            }
            while let Some(request) = decoder.next_request() {
                match request? {
                    Request::Join(room) => link.join(room).map_err(io)?,
                    Request::Message(frame) => link.publish(frame).map_err(io)?,
                }
            }
            if !decoder.rest().is_empty() && !reading {
                return Err(Ending::EofMidMessage);
            }
            flushed = link.deliver(socket)?;
        }
        // Left, and everything it was owed is written: close our side too.
        if !reading && flushed {
            return socket.shutdown(Shutdown::Write).map_err(io);
        }
    }
    Ok(())
}

/// Serves one member on this thread (or process) through `link` ([`serve_member`]); `record`
/// counts how it ended, before the socket closes (a client that sees it closed finds it
/// counted).
pub fn serve_connection<L: Link>(
    mut socket: TcpStream,
    link: io::Result<L>,
    stop: &dyn Fn() -> bool,
    record: &dyn Fn(&Outcome),
) {
    let served = link.map_err(|e| Ending::of(&e)).and_then(|mut link| {
        socket.set_nodelay(true).map_err(|e| Ending::of(&e))?;
        super::limit_send_buffer(&socket);
        serve_member(&mut socket, &mut link, stop)
    });
    record(&Outcome {
        handshake: None,
        ending: served.err(),
    });
}

/// One member's mailbox: its queue and whether a sender dropped it, and the eventfd that
/// wakes its thread.
pub struct Mailbox {
    state: Mutex<MailState>,
    wake: EventFd,
}

struct MailState {
    out: Outbox,
    dropped: bool,
}

impl Mailbox {
    fn state(&self) -> MutexGuard<'_, MailState> {
        lock(&self.state)
    }

    /// Queues `frame`: false when the member is (now) dropped.
    fn push(&self, frame: Frame) -> bool {
        let mut state = self.state();
        if state.dropped {
            return false;
        }
        let was_empty = state.out.is_empty();
        if !state.out.push(frame) {
            state.dropped = true;
        }
        // Woken once per batch: its thread writes all that waits before it polls again.
        if was_empty || state.dropped {
            let _ = self.wake.write(1);
        }
        !state.dropped
    }
}

/// A member of [`RoomMap`]'s rooms: what a sender calls for it, under its room's lock.
pub trait Deliver {
    /// Queues `frame` for the member: false when it is (now) dropped as too slow, and leaves
    /// the room.
    fn deliver(&self, frame: Frame) -> bool;
}

impl Deliver for Mailbox {
    fn deliver(&self, frame: Frame) -> bool {
        self.push(frame)
    }
}

/// Members of one room, in the order they joined.
type Room<M> = Mutex<Vec<Arc<M>>>;

/// Rooms behind locks, for members on threads or tasks: a map behind one lock, taken to join
/// and leave, and each room behind its own, taken by a sender for its whole fan-out, so that
/// every member of a room has its messages queued in one order.
pub struct RoomMap<M> {
    rooms: Mutex<HashMap<u32, Arc<Room<M>>>>,
}

impl<M> Default for RoomMap<M> {
    fn default() -> Self {
        RoomMap {
            rooms: Mutex::default(),
        }
    }
}

/// A member's place in [`RoomMap`]: its room's number and the room.
pub struct Seat<M> {
    number: u32,
    room: Arc<Room<M>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<M: Deliver> RoomMap<M> {
    /// `member` joins room `number`; its `A` is its first delivery.
    pub fn join(&self, number: u32, member: &Arc<M>) -> Seat<M> {
        // Under the map's lock, so that no member joins a room the last one is leaving.
        let mut map = lock(&self.rooms);
        let room = Arc::clone(
            map.entry(number)
                .or_insert_with(|| Arc::new(Mutex::default())),
        );
        let mut members = lock(&room);
        members.push(Arc::clone(member));
        // Under the room's lock: the `A` comes before any message.
        member.deliver(ack_frame(number, members.len()));
        count_join();
        drop(members);
        Seat { number, room }
    }

    /// Queues a message for every member of `seat`'s room; those too slow to take it are
    /// dropped (each one's own thread or task closes it).
    pub fn publish(seat: &Seat<M>, frame: Frame) {
        let mut members = lock(&seat.room);
        members.retain(|m| m.deliver(Frame::clone(&frame)));
        count_message(members.len());
    }

    /// `member` leaves `seat`'s room: the last member out removes it.
    pub fn leave(&self, seat: Seat<M>, member: &Arc<M>) {
        let mut map = lock(&self.rooms);
        let mut members = lock(&seat.room);
        members.retain(|m| !Arc::ptr_eq(m, member));
        if members.is_empty() {
            map.remove(&seat.number);
        }
    }
}

/// Every room of a thread model's server, and the queue of each member.
pub struct Rooms {
    map: RoomMap<Mailbox>,
    queue: usize,
}

impl Rooms {
    /// No rooms yet; every member's queue holds at most `queue` bytes.
    pub fn new(queue: usize) -> Arc<Rooms> {
        Arc::new(Rooms {
            map: RoomMap::default(),
            queue,
        })
    }

    /// A new member's link, not in any room yet.
    pub fn link(self: &Arc<Rooms>) -> io::Result<LocalLink> {
        let wake = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)?;
        Ok(LocalLink {
            rooms: Arc::clone(self),
            mailbox: Arc::new(Mailbox {
                state: Mutex::new(MailState {
                    out: Outbox::new(self.queue),
                    dropped: false,
                }),
                wake,
            }),
            seat: None,
        })
    }
}

/// A member of [`Rooms`] in this process.
pub struct LocalLink {
    rooms: Arc<Rooms>,
    mailbox: Arc<Mailbox>,
    seat: Option<Seat<Mailbox>>,
}

impl Link for LocalLink {
    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.mailbox.wake.as_fd())
    }

    fn join(&mut self, number: u32) -> io::Result<()> {
        self.seat = Some(self.rooms.map.join(number, &self.mailbox));
        Ok(())
    }

    fn publish(&mut self, frame: Frame) -> io::Result<()> {
        if let Some(seat) = &self.seat {
            RoomMap::publish(seat, frame);
        }
        Ok(())
    }

    fn deliver(&mut self, socket: &mut TcpStream) -> Result<bool, Ending> {
        // EAGAIN: nothing written since the last read.
        let _ = self.mailbox.wake.read();
        let mut state = self.mailbox.state();
        if state.dropped {
            return Err(Ending::SlowMember);
        }
        state.out.write_to(socket).map_err(|e| Ending::of(&e))
    }

    fn leave(&mut self) {
        if let Some(seat) = self.seat.take() {
            self.rooms.map.leave(seat, &self.mailbox);
        }
    }
}

impl Drop for LocalLink {
    /// Leaves the room: the last member out removes it.
    fn drop(&mut self) {
        self.leave();
    }
}
