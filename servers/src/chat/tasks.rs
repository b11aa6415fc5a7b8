//! Rooms for the async runtimes, where every member is a task (a reader and a writer joined in
//! one) with a mailbox: an unbounded channel of frames whose unsent bytes are counted against
//! `--chat-queue` ([`Mailbox`]). Two ways to share a room, both here:
//!
//! - [`RoomTasks`] (`tokio`, `tokio-current-thread`): a task per room is the single owner of
//!   its members; senders' tasks send it their messages over a channel, and it queues each for
//!   every member in the order it receives them. Rooms cross threads as messages: whichever
//!   worker runs the room's task, no lock is held while it fans out.
//! - [`LockedRooms`] (`smol`, `async-std`): the thread models' rooms behind locks
//!   ([`RoomMap`]: a `std::sync::Mutex` per room, never held across an `.await`), taken by the
//!   sender's own task for the whole fan-out.
//!
//! Either way a sender never writes another member's socket: each member's own task writes
//! its mailbox to its socket, so a slow member costs its room only its queue; past the cap it
//! is marked dropped, and its task ends, closing it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use smol::channel::{self, Receiver, Sender};

use super::locked::{Deliver, RoomMap, Seat};
use super::{ack_frame, count_join, count_message, Decoder, Frame, Request};
use crate::endings::Ending;

/// Bytes a writer gathers from its mailbox into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// One member's mailbox, shared by whoever queues for it and its own writer.
pub struct Mailbox {
    frames: Sender<Frame>,
    /// Bytes queued and not yet written.
    bytes: AtomicUsize,
    cap: usize,
    /// Closed when the member is dropped as too slow.
    kill: Sender<()>,
}

/// What became of a frame queued for a member.
#[derive(Debug, PartialEq, Eq)]
enum Push {
    Queued,
    /// It would have passed the cap: the member is dropped.
    Slow,
    /// The member has gone.
    Gone,
}

impl Mailbox {
    fn push(&self, frame: Frame) -> Push {
        let len = frame.len();
        if self.bytes.fetch_add(len, Ordering::AcqRel) + len > self.cap {
            self.bytes.fetch_sub(len, Ordering::AcqRel);
            self.kill.close();
            return Push::Slow;
        }
        match self.frames.try_send(frame) {
            Ok(()) => Push::Queued,
            Err(_) => Push::Gone,
        }
    }
}

/// A member's own ends of its mailbox: the frames to write, and the signal that it was dropped.
pub struct Inbox {
    frames: Receiver<Frame>,
    killed: Receiver<()>,
}

/// A new member's mailbox and inbox, its queue at most `cap` bytes.
pub fn mailbox(cap: usize) -> (Arc<Mailbox>, Inbox) {
    let (frames, rx) = channel::unbounded();
    let (kill, killed) = channel::bounded(1);
    let mailbox = Mailbox {
        frames,
        bytes: AtomicUsize::new(0),
        cap,
        kill,
    };
    (Arc::new(mailbox), Inbox { frames: rx, killed })
}

impl Inbox {
    /// Waits for frames and gathers what waits into `batch`, up to a batch's worth: false
    /// once the member has left and everything queued is taken.
    pub async fn next_batch(&self, batch: &mut Vec<u8>) -> bool {
        let Ok(first) = self.frames.recv().await else {
            return false;
        };
        batch.extend_from_slice(&first);
        while batch.len() < WRITE_BATCH {
            let Ok(f) = self.frames.try_recv() else {
                break;
            };
            batch.extend_from_slice(&f);
        }
        true
    }

    /// Resolves when the member has been dropped as too slow.
    pub async fn killed(&self) -> Ending {
        let _ = self.killed.recv().await;
        Ending::SlowMember
    }
}

/// Bytes of the mailbox written to the socket: they no longer count against the cap.
pub fn written(mailbox: &Mailbox, bytes: usize) {
    mailbox.bytes.fetch_sub(bytes, Ordering::AcqRel);
}

/// `--chat` for a runtime model: its rooms, and the most bytes queued per member.
pub type Chat = (Rooms, usize);

/// The rooms of a runtime model, shared one way or the other.
#[derive(Clone)]
pub enum Rooms {
    /// A task per room.
    Tasks(Arc<RoomTasks>),
    /// A lock per room.
    Locked(Arc<LockedRooms>),
}

impl Rooms {
    /// Rooms with a task each (tokio's way); call inside a tokio runtime.
    pub fn tasks() -> Rooms {
        Rooms::Tasks(Arc::default())
    }

    /// Rooms with a lock each.
    pub fn locked() -> Rooms {
        Rooms::Locked(Arc::default())
    }

    fn join(&self, number: u32, mailbox: &Arc<Mailbox>) -> Membership {
        match self {
            Rooms::Tasks(rooms) => Membership::Task(rooms.join(number, mailbox)),
            Rooms::Locked(rooms) => Membership::Locked(LockedMembership {
                seat: Some(rooms.join(number, mailbox)),
                rooms: Arc::clone(rooms),
                mailbox: Arc::clone(mailbox),
            }),
        }
    }
}

/// A member's place in its room; leaving when dropped.
enum Membership {
    Task(TaskMembership),
    Locked(LockedMembership),
}

impl Membership {
    fn publish(&self, frame: Frame) {
        match self {
            Membership::Task(m) => {
                let _ = m.room.send(Event::Message(frame));
            }
            Membership::Locked(m) => m.publish(frame),
        }
    }
}

/// Reads a member's frames as they come: joins and publishes. Call with each read's bytes;
/// an error closes the member.
pub struct Member {
    rooms: Rooms,
    mailbox: Arc<Mailbox>,
    decoder: Decoder,
    membership: Option<Membership>,
}

impl Member {
    /// A member of `rooms` with `mailbox`.
    pub fn new(rooms: Rooms, mailbox: Arc<Mailbox>) -> Member {
        Member {
            rooms,
            mailbox,
            decoder: Decoder::default(),
            membership: None,
        }
    }

    /// Bytes read from the member.
    pub fn received(&mut self, bytes: &[u8]) -> Result<(), Ending> {
        self.decoder.extend(bytes);
        while let Some(request) = self.decoder.next_request() {
            match request? {
                Request::Join(room) => {
                    self.membership = Some(self.rooms.join(room, &self.mailbox));
                }
                Request::Message(frame) => {
                    if let Some(m) = &self.membership {
                        m.publish(frame);
                    }
                }
            }
        }
        Ok(())
    }

    /// The member has left (its EOF): out of the room; its writer ends once the mailbox is
    /// written. An error if it left in the middle of a frame.
    pub fn left(&mut self) -> Result<(), Ending> {
        self.membership = None;
        self.mailbox.frames.close();
        match self.decoder.rest().is_empty() {
            true => Ok(()),
            false => Err(Ending::EofMidMessage),
        }
    }
}

/// What a room's task is sent.
enum Event {
    Join(Arc<Mailbox>),
    Message(Frame),
    Leave(Arc<Mailbox>),
}

/// Rooms with a task each: the map from room to its task's inbox.
#[derive(Default)]
pub struct RoomTasks {
    rooms: Mutex<HashMap<u32, tokio::sync::mpsc::UnboundedSender<Event>>>,
}

struct TaskMembership {
    room: tokio::sync::mpsc::UnboundedSender<Event>,
    mailbox: Arc<Mailbox>,
}

impl Drop for TaskMembership {
    fn drop(&mut self) {
        let _ = self.room.send(Event::Leave(Arc::clone(&self.mailbox)));
    }
}

impl RoomTasks {
    fn map(&self) -> MutexGuard<'_, HashMap<u32, tokio::sync::mpsc::UnboundedSender<Event>>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn join(self: &Arc<RoomTasks>, number: u32, mailbox: &Arc<Mailbox>) -> TaskMembership {
        // Under the map's lock, so that a room's task never ends with a join on its way.
        let mut map = self.map();
        let room = map
            .entry(number)
            .or_insert_with(|| {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(room_task(number, rx, Arc::clone(self)));
                tx
            })
            .clone();
        let _ = room.send(Event::Join(Arc::clone(mailbox)));
        TaskMembership {
            room,
            mailbox: Arc::clone(mailbox),
        }
    }
}

/// A room's task: the one owner of its members, until the last has left.
async fn room_task(
    number: u32,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<Event>,
    rooms: Arc<RoomTasks>,
) {
    let mut members: Vec<Arc<Mailbox>> = Vec::new();
    while let Some(event) = inbox.recv().await {
        match event {
            Event::Join(mailbox) => {
                members.push(Arc::clone(&mailbox));
                mailbox.push(ack_frame(number, members.len()));
                count_join();
            }
            Event::Message(frame) => {
                members.retain(|m| m.push(Frame::clone(&frame)) == Push::Queued);
                count_message(members.len());
            }
            Event::Leave(mailbox) => {
                members.retain(|m| !Arc::ptr_eq(m, &mailbox));
                if members.is_empty() {
                    let mut map = rooms.map();
                    // A join sent meanwhile is in the inbox: the room goes on.
                    if inbox.is_empty() {
                        map.remove(&number);
                        return;
                    }
                }
            }
        }
    }
}

/// Rooms with a lock each: the thread models' [`RoomMap`], over these members' mailboxes.
pub type LockedRooms = RoomMap<Mailbox>;

impl Deliver for Mailbox {
    fn deliver(&self, frame: Frame) -> bool {
        self.push(frame) == Push::Queued
    }
}

struct LockedMembership {
    rooms: Arc<LockedRooms>,
    seat: Option<Seat<Mailbox>>,
    mailbox: Arc<Mailbox>,
}

impl LockedMembership {
    fn publish(&self, frame: Frame) {
        if let Some(seat) = &self.seat {
            RoomMap::publish(seat, frame);
        }
    }
}

impl Drop for LockedMembership {
    fn drop(&mut self) {
        if let Some(seat) = self.seat.take() {
            self.rooms.leave(seat, &self.mailbox);
        }
    }
}

/// Serves one member on a `futures-io` stream (`smol`, `async-std`), its reader and writer
/// halves given apart, until it leaves (then every delivery owed is written first), breaks
/// the protocol or is dropped; the caller closes the socket.
pub async fn serve_futures<R, W>(
    mut reader: R,
    mut writer: W,
    rooms: Rooms,
    cap: usize,
) -> Result<(), Ending>
where
    R: futures_lite::AsyncRead + Unpin,
    W: futures_lite::AsyncWrite + Unpin,
{
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let (mailbox, inbox) = mailbox(cap);
    let mut member = Member::new(rooms, Arc::clone(&mailbox));
    let io = |e: std::io::Error| Ending::of(&e);
    let read = async {
        let mut buf = vec![0u8; crate::echo::READ_BUF];
        loop {
            match reader.read(&mut buf).await.map_err(io)? {
                0 => break,
                n => member.received(&buf[..n])?,
            }
        }
        member.left()?;
        // Left cleanly: the writer decides when this member is done.
        std::future::pending().await
    };
    let write = async {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while inbox.next_batch(&mut batch).await {
            writer.write_all(&batch).await.map_err(io)?;
            written(&mailbox, batch.len());
            batch.clear();
        }
        writer.flush().await.map_err(io)
    };
    let killed = async { Err(inbox.killed().await) };
    futures_lite::future::or(read, futures_lite::future::or(write, killed)).await
}

/// [`serve_futures`] on a tokio stream's halves (`tokio`, `tokio-current-thread`).
pub async fn serve_tokio<R, W>(
    mut reader: R,
    mut writer: W,
    rooms: Rooms,
    cap: usize,
) -> Result<(), Ending>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mailbox, inbox) = mailbox(cap);
    let mut member = Member::new(rooms, Arc::clone(&mailbox));
    let io = |e: std::io::Error| Ending::of(&e);
    let read = async {
        let mut buf = vec![0u8; crate::echo::READ_BUF];
        loop {
            match reader.read(&mut buf).await.map_err(io)? {
                0 => break,
                n => member.received(&buf[..n])?,
            }
        }
        member.left()?;
        std::future::pending().await
    };
    let write = async {
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        while inbox.next_batch(&mut batch).await {
            writer.write_all(&batch).await.map_err(io)?;
            written(&mailbox, batch.len());
            batch.clear();
        }
        writer.shutdown().await.map_err(io)
    };
    let killed = async { Err(inbox.killed().await) };
    futures_lite::future::or(read, futures_lite::future::or(write, killed)).await
}
