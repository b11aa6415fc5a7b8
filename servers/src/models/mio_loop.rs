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
//! Run: `echo-server mio --addr 127.0.0.1:7007 [--max-conns N]`

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener as StdListener};
use std::time::Instant;

use anyhow::Context;
use mio::net::{TcpListener, TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use crate::accept::{accept_error_is_per_connection, log_accept_error, ACCEPT_BACKOFF};
use crate::config::ServerConfig;
use crate::conn_limit::{ConnLimit, ConnSlot};
use crate::echo::MAX_PENDING;
use crate::endings;
use crate::errors::{interrupted, would_block};
use crate::signals::SignalPipe;

const LISTENER: Token = Token(usize::MAX - 1);
/// The token of the stop source: the signal pipe here, a `Waker` in `mio-multi`.
pub(crate) const STOP: Token = Token(usize::MAX - 2);

/// Size of the one read buffer the loop shares between all connections.
const SCRATCH: usize = 64 * 1024;

/// Reads one connection may do per wake-up before the others get a turn.
const READS_PER_TURN: usize = 16;

/// One client.
struct Conn {
    stream: TcpStream,
    /// This connection's place under `--max-conns`, freed when it closes.
    _slot: ConnSlot,
    token: Token,
    /// Echo bytes the socket has not taken yet, oldest first.
    pending: Vec<u8>,
    /// False once the client has half-closed.
    read_open: bool,
    /// The interest registered with the poll now.
    interest: Interest,
}

/// What one turn on a connection left it as.
enum Turn {
    /// Waits for its next readiness event.
    Idle,
    /// Still had input when its read budget ran out: give it another turn soon.
    MoreToRead,
    /// Finished (echo flushed after half-close) or failed: remove it.
    Done,
}

/// Runs the event loop until SIGINT or SIGTERM.
pub fn serve(listener: StdListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let poll = Poll::new().context("cannot create the poll")?;
    let mut stop = UnixStream::from_std(stop.into_read_end());
    poll.registry()
        .register(&mut stop, STOP, Interest::READABLE)
        .context("cannot register the signal pipe")?;
    event_loop(poll, listener, ConnLimit::new(config.max_conns))
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
) -> anyhow::Result<()> {
    let listener = register_listener(&poll, listener)?;
    let mut events = Events::with_capacity(1024);
    let mut conns: Slab<Conn> = Slab::new();
    let mut scratch = vec![0u8; SCRATCH];
    let mut accept_paused_until: Option<Instant> = None;
    let mut more_to_read: Vec<usize> = Vec::new();
    let mut next_turns: Vec<usize> = Vec::new();

    loop {
        // Block unless connections are waiting for another turn or accepting is paused.
        let timeout = if !more_to_read.is_empty() {
            Some(std::time::Duration::ZERO)
        } else {
            accept_paused_until.map(|until| until.saturating_duration_since(Instant::now()))
        };
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if interrupted(&e) => continue,
            Err(e) => return Err(e).context("poll failed"),
        }
        if accept_paused_until.is_some_and(|until| Instant::now() >= until) {
            accept_paused_until = accept_all(&listener, &mut conns, poll.registry(), &limit);
        }
        std::mem::swap(&mut more_to_read, &mut next_turns);
        for event in events.iter() {
            match event.token() {
                STOP => return Ok(()),
                LISTENER if accept_paused_until.is_none() => {
                    accept_paused_until =
                        accept_all(&listener, &mut conns, poll.registry(), &limit);
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
            );
        }
    }
}

/// Accepts until the backlog is empty. Returns when accepting should resume after an error
/// such as `EMFILE` (the listener is edge-triggered, so the loop must come back on its own).
fn accept_all(
    listener: &TcpListener,
    conns: &mut Slab<Conn>,
    registry: &Registry,
    limit: &ConnLimit,
) -> Option<Instant> {
    loop {
        let (mut stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if would_block(&e) => return None,
            // The client gave up before we took it; try the next one.
            Err(e) if accept_error_is_per_connection(&e) => continue,
            // Out of descriptors or memory: keep serving, retry accepting after a pause.
            Err(e) => {
                log_accept_error(&e);
                return Some(Instant::now() + ACCEPT_BACKOFF);
            }
        };
        // Over the cap: dropping the stream closes it at once.
        let Some(slot) = limit.try_acquire() else {
            continue;
        };
        let entry = conns.vacant_entry();
        let token = Token(entry.key());
        let registered = stream
            .set_nodelay(true)
            .and_then(|()| registry.register(&mut stream, token, Interest::READABLE));
        match registered {
            Ok(()) => {
                entry.insert(Conn {
                    stream,
                    _slot: slot,
                    token,
                    pending: Vec::new(),
                    read_open: true,
                    interest: Interest::READABLE,
                });
            }
            Err(e) => endings::ended_by(&e),
        }
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
) {
    // A connection closed earlier in this batch may still have events queued.
    let Some(conn) = conns.get_mut(key) else {
        return;
    };
    match conn.turn(scratch, drain, registry) {
        Ok(Turn::Idle) => {}
        Ok(Turn::MoreToRead) => more_to_read.push(key),
        Ok(Turn::Done) => close(conns.remove(key), registry),
        Err(e) => {
            if conn.read_open || conn.pending.is_empty() {
                endings::ended_by(&e);
            } else {
                endings::ended_with_echo_owed(&e);
            }
            close(conns.remove(key), registry);
        }
    }
}

fn close(mut conn: Conn, registry: &Registry) {
    // Dropping the stream closes it; deregistering first keeps the poll's set exact.
    let _ = registry.deregister(&mut conn.stream);
}

impl Conn {
    /// Flushes pending echo, reads and echoes what is ready, and updates the interest.
    ///
    /// A read shorter than asked for emptied the socket's receive queue, and anything that
    /// arrives later raises a new edge; so, unless `drain` (the event already reported the
    /// client's FIN, which a short read can leave behind), the turn ends there instead of
    /// paying for a read that returns EAGAIN.
    fn turn(&mut self, scratch: &mut [u8], drain: bool, registry: &Registry) -> io::Result<Turn> {
        self.flush()?;
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
            self.stream.shutdown(Shutdown::Write)?;
            return Ok(Turn::Done);
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

    /// Writes as much pending echo as the socket takes now.
    fn flush(&mut self) -> io::Result<()> {
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

    /// READABLE while the client may send and there is room; WRITABLE while echo is pending.
    fn update_interest(&mut self, registry: &Registry) -> io::Result<()> {
        let readable = self.read_open && self.pending.len() < MAX_PENDING;
        let writable = !self.pending.is_empty();
        let wanted = match (readable, writable) {
            (true, true) => Interest::READABLE | Interest::WRITABLE,
            (true, false) => Interest::READABLE,
            (false, _) => Interest::WRITABLE,
        };
        if wanted != self.interest {
            // Re-arming re-checks readiness, so data that arrived meanwhile is reported.
            registry.reregister(&mut self.stream, self.token, wanted)?;
            self.interest = wanted;
        }
        Ok(())
    }
}

/// Writes until `data` is out or the socket would block; returns how much it took.
fn write_some(stream: &mut TcpStream, data: &[u8]) -> io::Result<usize> {
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
