//! The hub of the process models (`fork-per-client`, `prefork`): processes share no memory,
//! so the rooms live in one more process, the hub, forked from the server's parent before
//! anything else. It runs the [`owner`](super::owner) loop over Unix sockets: every member's
//! process holds one link to it (a Unix stream on an abstract address private to this server,
//! [`HubLink`]) and speaks the chat protocol over it: it forwards its client's `J` and `M`
//! frames and writes back to its client whatever the hub sends down the link. The hub owns
//! the rooms, so every member sees a room's messages in the hub's order.
//!
//! What it costs, against the threads' lock: every message crosses two Unix sockets more (the
//! sender's process to the hub, the hub to each member's process), so a delivery is a write
//! and a read more, in two more processes' time slices.
//!
//! Counting: the hub counts joins, messages and deliveries, and the links it dropped; when the
//! parent stops it ([`Hub::finish`]) it sends them back over its control socket and exits, and
//! the parent adds them to its own. A member process that drops its client as slow counts
//! that through the endings pipe, as every child's ending.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::locked::Link;
use super::owner::{self, Listen, Owner, STOP};
use super::{join_frame, Frame, Outbox};
use crate::endings::{self, Ending};
use crate::errors::{interrupted, would_block};

/// How long the parent waits for the hub's counts when it stops.
const COUNTS_WAIT: Duration = Duration::from_secs(1);

/// What the hub queues for one member's process at most: the process takes it as soon as its
/// link is readable into its own queue of `--chat-queue`, which decides when a slow client
/// goes; the hub drops a link only when a process stops reading it altogether.
const LINK_QUEUE: usize = 64 << 20;

/// Bytes of the counts the hub sends back: joins, messages, deliveries, links dropped.
const COUNTS_LEN: usize = 32;

/// The hub before it is forked: its listener, its address, and both ends of its control
/// socket.
pub struct Hub {
    listener: UnixListener,
    addr: SocketAddr,
    parent: UnixStream,
    hub: UnixStream,
}

impl Hub {
    /// Binds the hub's listener on an abstract address named for this process and instant.
    pub fn bind() -> io::Result<Hub> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("echo-server-chat-{}-{nanos}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
        let listener = UnixListener::bind_addr(&addr)?;
        let (parent, hub) = UnixStream::pair()?;
        Ok(Hub {
            listener,
            addr,
            parent,
            hub,
        })
    }

    /// In the hub process: serves the rooms until the parent closes the control socket, then
    /// sends the counts back. The exit code of the hub. Each link's queue is [`LINK_QUEUE`].
    pub fn serve(self) -> i32 {
        let queue = LINK_QUEUE;
        let Hub {
            listener,
            parent,
            hub,
            ..
        } = self;
        drop(parent);
        match run(listener, hub, queue) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("echo-server: chat hub: {e}");
                1
            }
        }
    }

    /// In the parent, once the hub is forked: what it keeps (the members' processes connect
    /// to the address; the control socket stops the hub).
    pub fn parent_side(self) -> HubHandle {
        HubHandle {
            addr: self.addr,
            control: self.parent,
        }
    }
}

/// The hub's loop, until the parent closes the control socket; then the counts go back up it.
fn run(listener: UnixListener, hub: UnixStream, queue: usize) -> io::Result<()> {
    let poll = mio::Poll::new()?;
    listener.set_nonblocking(true)?;
    hub.set_nonblocking(true)?;
    let mut control = mio::net::UnixStream::from_std(hub.try_clone()?);
    poll.registry()
        .register(&mut control, STOP, mio::Interest::READABLE)?;
    let listener = HubListener(mio::net::UnixListener::from_std(listener));
    owner::run(poll, listener, None, (Owner::new(queue), None), &|| true)?;
    let [joins, messages, deliveries] = super::counts();
    let dropped = endings::counted(Ending::SlowMember);
    let mut counts = Vec::with_capacity(COUNTS_LEN);
    for n in [joins, messages, deliveries, dropped] {
        counts.extend_from_slice(&n.to_be_bytes());
    }
    hub.set_nonblocking(false)?;
    (&hub).write_all(&counts)
}

/// The parent's handle on the hub: its address, which every member's process links to, and
/// the control socket.
pub struct HubHandle {
    addr: SocketAddr,
    control: UnixStream,
}

impl HubHandle {
    /// A member's link to the hub (in the member's process).
    pub fn link(&self, queue: usize) -> io::Result<HubLink> {
        let link = UnixStream::connect_addr(&self.addr)?;
        link.set_nonblocking(true)?;
        Ok(HubLink {
            link,
            out: Outbox::new(queue),
            buf: vec![0u8; 64 * 1024],
            left: false,
            done: false,
        })
    }

    /// Stops the hub and adds its counts to this process's: a hub that does not answer
    /// within a second leaves them uncounted, with a line saying so.
    pub fn finish(&self) {
        let _ = self.control.shutdown(std::net::Shutdown::Write);
        let mut counts = [0u8; COUNTS_LEN];
        let until = Instant::now() + COUNTS_WAIT;
        let mut got = 0;
        let _ = self.control.set_nonblocking(true);
        while got < COUNTS_LEN && Instant::now() < until {
            let mut fds = [PollFd::new(self.control.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(100u8));
            match (&self.control).read(&mut counts[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if would_block(&e) || interrupted(&e) => {}
                Err(_) => break,
            }
        }
        if got < COUNTS_LEN {
            eprintln!("echo-server: chat hub: no counts at exit; the chat line counts none");
            return;
        }
        let n =
            |i: usize| u64::from_be_bytes(counts[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        super::add_counts([n(0), n(1), n(2)]);
        for _ in 0..n(3) {
            endings::count(Ending::SlowMember);
        }
    }
}

/// The hub's listener: only this server's own user may link to it.
struct HubListener(mio::net::UnixListener);

impl mio::event::Source for HubListener {
    fn register(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        self.0.register(r, t, i)
    }
    fn reregister(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        self.0.reregister(r, t, i)
    }
    fn deregister(&mut self, r: &mio::Registry) -> io::Result<()> {
        self.0.deregister(r)
    }
}

impl Listen for HubListener {
    type Stream = mio::net::UnixStream;
    fn accept_one(&self) -> io::Result<Self::Stream> {
        use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
        loop {
            let (stream, _) = self.0.accept()?;
            let ours = getsockopt(&stream, PeerCredentials)
                .is_ok_and(|c| c.uid() == nix::unistd::getuid().as_raw());
            if ours {
                return Ok(stream);
            }
        }
    }
}

/// A member process's link to the hub: its client's frames go up the link; what comes down
/// is queued (at most `--chat-queue`) and written to the client.
pub struct HubLink {
    link: UnixStream,
    out: Outbox,
    buf: Vec<u8>,
    /// The member has left: the link is half-closed.
    left: bool,
    /// The hub has closed its side after the member left: nothing more comes.
    done: bool,
}

impl HubLink {
    /// Writes all of `bytes` up the link, waiting for room in it when it is full (the hub
    /// never blocks, so the wait is short).
    fn send(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match (&self.link).write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if interrupted(&e) => {}
                Err(e) if would_block(&e) => {
                    let mut fds = [PollFd::new(self.link.as_fd(), PollFlags::POLLOUT)];
                    let _ = poll(&mut fds, PollTimeout::from(100u8));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Link for HubLink {
    fn wake_fd(&self) -> Option<BorrowedFd<'_>> {
        (!self.done).then(|| self.link.as_fd())
    }

    fn join(&mut self, room: u32) -> io::Result<()> {
        self.send(&join_frame(room))
    }

    fn publish(&mut self, frame: Frame) -> io::Result<()> {
        self.send(&frame)
    }

    fn leave(&mut self) {
        // The hub takes the member out of its room at this EOF, sends what was already
        // queued, and closes its side.
        let _ = self.link.shutdown(std::net::Shutdown::Write);
        self.left = true;
    }

    fn deliver(&mut self, socket: &mut TcpStream) -> Result<bool, Ending> {
        while !self.done {
            match (&self.link).read(&mut self.buf) {
                Ok(0) if self.left => self.done = true,
                // The hub is gone: so are the rooms.
                Ok(0) => return Err(Ending::Other),
                Ok(n) => {
                    if !self.out.push(Frame::from(&self.buf[..n])) {
                        return Err(Ending::SlowMember);
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => {}
                Err(_) => return Err(Ending::Other),
            }
        }
        self.out.write_to(socket).map_err(|e| Ending::of(&e))
    }
}
