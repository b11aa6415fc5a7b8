//! `io-uring`: completion-based I/O. One thread, one io_uring (the `io-uring` crate): the loop
//! submits an accept, and per connection a read; when a read completes, the write of the same
//! bytes is submitted, and when all of them are written, the next read. Nothing asks whether a
//! socket is ready: the kernel reports what is done.
//!
//! Should win: fewer system calls than readiness loops (submissions and completions are
//! batched through shared rings), so less CPU per message on one core.
//! Should break: one core only, like `mio`; and it needs a kernel that allows io_uring: where
//! the kernel refuses it (`kernel.io_uring_disabled`, seccomp), the server says so and exits 1.
//!
//! Back-pressure: one operation in flight per connection, and the next read only after the
//! echo of the last one is written, so a client that never reads is simply not read from.
//!
//! With `--work`, a request's CPU work runs inline as its last bytes' read completes, so every
//! other connection's completions wait for it; its wait is an io_uring timeout, the
//! connection's one operation in flight until the request is written back. With `--offload
//! pool` the CPU work goes to a rayon pool instead: the job puts its connection on a list and
//! writes an eventfd on which the ring has a poll, and the connection has no operation in the
//! ring until its work is back. With `--idle-timeout`, a timeout in the ring wakes the loop
//! every 50 ms to sweep the connections whose read has waited past their clock; it shuts each
//! such socket, and the read in flight completes with the EOF, counted as an idle timeout.
//!
//! With `--chat` (`io_uring_chat`), the ring's thread owns every room, as the `mio` loop does:
//! a read in flight per member, and a write whenever its queue is not empty.
//!
//! Run: `echo-server io-uring --addr 127.0.0.1:7007 [--max-conns N] [--work [--offload pool]]`
//!
//! `unsafe` here is what the io_uring interface demands: the kernel writes into and reads from
//! our buffers after `push` returns, so each push promises they outlive the operation. On the
//! way out every operation still in flight is cancelled and reaped ([`Ring::cancel_all`])
//! before a buffer is freed.
#![allow(unsafe_code)]

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use io_uring::{opcode, types};
use slab::Slab;

use crate::accept::ACCEPT_BACKOFF;
use crate::config::ServerConfig;
use crate::conn_limit::{ConnLimit, ConnSlot};
use crate::defence::{self, IdleClock};
use crate::echo::READ_BUF;
use crate::endings::{self, Ending};
use crate::signals::SignalPipe;
use crate::work::{parse_front, FrontCpu, Offload, Work};

use super::ring::{
    accepted, push_accept, push_stop_poll, Ring, ACCEPT, BACKOFF, CANCEL_WAIT, KIND, READ, STOP,
    WRITE,
};

/// Submission queue entries.
const RING_ENTRIES: u32 = 1024;

/// What a completion is for, beside the kinds of `ring`: `--work`: a request's wait.
const WAIT: u64 = 6 << 32;
/// `--offload pool`: the eventfd of finished jobs is readable.
const OFFLOADED: u64 = 7 << 32;
/// `--idle-timeout`: the sweep's timeout is over; look for connections overdue.
const SWEEP: u64 = 8 << 32;

/// One client.
struct Conn {
    stream: TcpStream,
    /// Read into, then written back from; boxed so that it never moves while the kernel uses it.
    buf: Box<[u8]>,
    /// Bytes of `buf` that hold echo, and how many of them are written back.
    len: usize,
    written: usize,
    _slot: ConnSlot,
    /// `--work`: the requests read and not yet answered; `None` for plain echo.
    requests: Option<Requests>,
    /// Its one operation in flight is a read.
    reading: bool,
    /// `--idle-timeout`: the sweep found it overdue and shut the socket; the read in flight
    /// completes with the EOF, and the connection is counted as an idle timeout.
    timed_out: bool,
}

/// `--work`: what one connection has of its requests. The request being answered is the front
/// of `input`, written back from there (`len` and `written` count it, as `buf`'s echo in plain
/// mode); nothing else touches `input` while its write or wait is in flight.
struct Requests {
    work: Work,
    input: Vec<u8>,
    /// The wait of the request in flight; boxed, so that it never moves while the kernel
    /// reads it.
    wait: Box<types::Timespec>,
    /// The first request's CPU work: with `--offload pool` in the pool until it is done.
    cpu: FrontCpu,
    /// `--idle-timeout`: since when it has been idle or sending its request.
    clock: Option<IdleClock>,
}

impl Requests {}

impl Conn {
    /// The echo still to write: of `buf` in plain mode, of the front request with `--work`.
    fn unwritten(&self) -> &[u8] {
        match &self.requests {
            Some(r) => &r.input[self.written..self.len],
            None => &self.buf[self.written..self.len],
        }
    }
}

/// Runs the ring until SIGINT or SIGTERM.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let stop: UnixStream = stop.into_read_end();
    let limit = ConnLimit::of(config);
    if let Some(queue) = config.chat {
        return super::io_uring_chat::serve(&listener, &stop, &limit, queue);
    }
    let mut ring = Ring::new(RING_ENTRIES)?;
    let mut conns: Slab<Conn> = Slab::new();
    // The back-off timer's duration must live as long as a timeout may be in flight.
    let backoff = Box::new(types::Timespec::from(ACCEPT_BACKOFF));
    let offload = match config.offload {
        Some(threads) => Some(Offload::new(Offload::pool(threads)?)?),
        None => None,
    };
    let idle = config.defences.idle_timeout;
    // The sweep's duration must live as long as its timeout may be in flight.
    let sweep = Box::new(types::Timespec::from(defence::SWEEP));
    let served = run(
        &mut ring,
        (&listener, &stop),
        (&limit, config.work, idle),
        &mut conns,
        (&backoff, idle.map(|_| &*sweep)),
        offload.as_ref(),
    );
    // Reads still write into the connections' buffers until they are cancelled and reaped;
    // where that cannot be made sure of, the buffers are leaked (the process is ending), never
    // freed under the kernel.
    if !ring.cancel_all(CANCEL_WAIT) {
        std::mem::forget(conns);
        std::mem::forget(backoff);
        std::mem::forget(sweep);
        std::mem::forget(offload);
    }
    served
}

/// The loop: completions in, the next operations out, until the stop signal's poll completes.
fn run(
    ring: &mut Ring,
    (listener, stop): (&TcpListener, &UnixStream),
    accepted: (&ConnLimit, Option<Work>, Option<Duration>),
    conns: &mut Slab<Conn>,
    (backoff, sweep): (&types::Timespec, Option<&types::Timespec>),
    offload: Option<&Offload>,
) -> anyhow::Result<()> {
    if let Some(offload) = offload {
        push_offload_poll(ring, offload)?;
    }
    if let Some(sweep) = sweep {
        push_sweep(ring, sweep)?;
    }
    push_stop_poll(ring, stop, STOP)?;
    push_accept(ring, listener)?;

    let mut done = Vec::new();
    loop {
        ring.complete(&mut done)?;
        for &(user_data, result, _) in &done {
            let key = (user_data & !KIND) as usize;
            match user_data & KIND {
                STOP => return Ok(()),
                BACKOFF => push_accept(ring, listener)?,
                ACCEPT => on_accept(ring, listener, conns, accepted, backoff, result)?,
                READ => on_read(ring, conns, key, result, offload)?,
                WRITE => on_write(ring, conns, key, result, offload)?,
                WAIT => on_wait(ring, conns, key)?,
                SWEEP => {
                    end_overdue(conns);
                    if let Some(sweep) = sweep {
                        push_sweep(ring, sweep)?;
                    }
                }
                OFFLOADED => {
                    if let Some(offload) = offload {
                        on_offloaded(ring, conns, offload)?;
                    }
                }
                _ => {}
            }
        }
    }
}

fn on_accept(
    ring: &mut Ring,
    listener: &TcpListener,
    conns: &mut Slab<Conn>,
    (limit, work, idle): (&ConnLimit, Option<Work>, Option<Duration>),
    backoff: &types::Timespec,
    result: i32,
) -> anyhow::Result<()> {
    let Some(stream) = accepted(ring, listener, backoff, result)? else {
        return Ok(());
    };
    // Refused (a defence) or over the cap: dropping the stream closes it at once.
    let Some(slot) = limit.admit(&stream) else {
        return Ok(());
    };
    if let Err(e) = stream.set_nodelay(true) {
        endings::ended_by(&e);
        return Ok(());
    }
    let entry = conns.vacant_entry();
    let key = entry.key();
    let conn = entry.insert(Conn {
        stream,
        buf: vec![0u8; READ_BUF].into_boxed_slice(),
        len: 0,
        written: 0,
        _slot: slot,
        requests: work.map(|work| Requests {
            work,
            input: Vec::new(),
            wait: Box::new(types::Timespec::new()),
            cpu: FrontCpu::default(),
            clock: IdleClock::start(idle),
        }),
        reading: false,
        timed_out: false,
    });
    push_read(ring, conn, key)
}

fn on_read(
    ring: &mut Ring,
    conns: &mut Slab<Conn>,
    key: usize,
    result: i32,
    offload: Option<&Offload>,
) -> anyhow::Result<()> {
    let Some(conn) = conns.get_mut(key) else {
        return Ok(());
    };
    conn.reading = false;
    match result {
        // `--idle-timeout`: the sweep shut it; this is the read it cut short.
        _ if conn.timed_out => {
            endings::count(Ending::IdleTimeout);
            conns.remove(key);
            Ok(())
        }
        // With `--work`, a half-close in the middle of a request.
        0 if conn.requests.as_ref().is_some_and(|r| !r.input.is_empty()) => {
            // Counted before the socket closes: a client that sees it closed finds it counted.
            endings::count(Ending::EofMidMessage);
            conns.remove(key);
            Ok(())
        }
        // Half-close: every byte read so far is written back; close our side, then the socket.
        0 => {
            let conn = conns.remove(key);
            if let Err(e) = conn.stream.shutdown(Shutdown::Write) {
                endings::ended_by(&e);
            }
            Ok(())
        }
        n if n > 0 => match conn.requests.as_mut() {
            Some(requests) => {
                // A request's first byte: it has the limit from now to arrive whole.
                if requests.input.is_empty() {
                    defence::restart(&mut requests.clock);
                }
                requests.input.extend_from_slice(&conn.buf[..n as usize]);
                serve_next(ring, conns, key, offload)
            }
            None => {
                conn.len = n as usize;
                conn.written = 0;
                push_write(ring, conn, key)
            }
        },
        err => {
            conns.remove(key);
            endings::ended_by(&io::Error::from_raw_os_error(-err));
            Ok(())
        }
    }
}

fn on_write(
    ring: &mut Ring,
    conns: &mut Slab<Conn>,
    key: usize,
    result: i32,
    offload: Option<&Offload>,
) -> anyhow::Result<()> {
    let Some(conn) = conns.get_mut(key) else {
        return Ok(());
    };
    if result <= 0 {
        let e = if result == 0 {
            io::ErrorKind::WriteZero.into()
        } else {
            io::Error::from_raw_os_error(-result)
        };
        conns.remove(key);
        endings::ended_by(&e);
        return Ok(());
    }
    conn.written += result as usize;
    // A short write: the rest of the echo first, then the next read.
    if conn.written < conn.len {
        return push_write(ring, conn, key);
    }
    match conn.requests.as_mut() {
        Some(requests) => {
            requests.input.drain(..conn.len);
            defence::restart(&mut requests.clock);
            serve_next(ring, conns, key, offload)
        }
        None => push_read(ring, conn, key),
    }
}

/// `--work`: serves the first request read, if it is whole (its CPU work here, inline, or in
/// the pool with `--offload pool`, then its wait or its write); otherwise reads on. A request
/// that breaks a rule closes its connection.
fn serve_next(
    ring: &mut Ring,
    conns: &mut Slab<Conn>,
    key: usize,
    offload: Option<&Offload>,
) -> anyhow::Result<()> {
    let Some(conn) = conns.get_mut(key) else {
        return Ok(());
    };
    let Some(requests) = conn.requests.as_mut() else {
        return push_read(ring, conn, key);
    };
    let cost = match parse_front(&requests.input) {
        Some(Err(bad)) => {
            endings::count(bad);
            conns.remove(key);
            return Ok(());
        }
        Some(Ok(cost)) if requests.input.len() >= cost.len => cost,
        _ => {
            if requests.input.is_empty() && requests.input.capacity() > READ_BUF {
                // Give back what one large request made the buffer grow to.
                requests.input = Vec::new();
            }
            return push_read(ring, conn, key);
        }
    };
    if !requests.cpu.pay(&requests.work, cost.cpu_ns, offload, key) {
        // In the pool: the connection's one operation until the job comes back, with nothing
        // in the ring.
        return Ok(());
    }
    conn.len = cost.len;
    conn.written = 0;
    if cost.wait_us == 0 {
        return push_write(ring, conn, key);
    }
    *requests.wait = types::Timespec::from(cost.wait());
    let wait = opcode::Timeout::new(&*requests.wait)
        .build()
        .user_data(WAIT | key as u64);
    // SAFETY: the timespec is boxed in the slab entry, which is removed only after this
    // timeout completes (the connection's one operation in flight) or is cancelled and reaped.
    ring.push(&wait)
}

/// `--offload pool`: the eventfd's poll completed: the connections whose CPU work the pool
/// has finished go on (their wait or their write), and the poll is armed again.
fn on_offloaded(ring: &mut Ring, conns: &mut Slab<Conn>, offload: &Offload) -> anyhow::Result<()> {
    for (key, job) in offload.finished() {
        let Some(requests) = conns.get_mut(key).and_then(|c| c.requests.as_mut()) else {
            continue;
        };
        if requests.cpu.finished(&job) {
            serve_next(ring, conns, key, Some(offload))?;
        }
    }
    push_offload_poll(ring, offload)
}

/// Arms a poll on the eventfd that the pool's finished jobs write.
fn push_offload_poll(ring: &mut Ring, offload: &Offload) -> anyhow::Result<()> {
    use std::os::fd::AsFd;
    let fd = offload.as_fd().as_raw_fd();
    let poll = opcode::PollAdd::new(types::Fd(fd), nix::libc::POLLIN as u32)
        .build()
        .user_data(OFFLOADED);
    // SAFETY: a poll holds no buffer; the eventfd lives in `serve`'s `offload` until the ring's
    // operations are cancelled and reaped.
    ring.push(&poll)
}

/// `--work`: a request's wait is over (or was cut short): write it back.
fn on_wait(ring: &mut Ring, conns: &mut Slab<Conn>, key: usize) -> anyhow::Result<()> {
    match conns.get_mut(key) {
        Some(conn) => push_write(ring, conn, key),
        None => Ok(()),
    }
}

/// `--idle-timeout`: arms the next sweep, [`defence::SWEEP`] from now.
fn push_sweep(ring: &mut Ring, sweep: &types::Timespec) -> anyhow::Result<()> {
    let timeout = opcode::Timeout::new(sweep).build().user_data(SWEEP);
    // SAFETY: the timespec is boxed in `serve`, which keeps it until the ring's operations are
    // cancelled and reaped (or leaks it).
    ring.push(&timeout)
}

/// `--idle-timeout`: shuts every connection that waits on a read for longer than its limit
/// (a whole request in hand, a wait, a write or the pool is ours, not the client's); the read
/// in flight completes with the EOF, and [`on_read`] counts and closes it. A sweep, as Redis
/// looks for idle clients in its cron: the clocks restart on every request and cost nothing
/// then.
fn end_overdue(conns: &mut Slab<Conn>) {
    let now = Instant::now();
    for (_, conn) in conns.iter_mut() {
        let overdue = conn
            .requests
            .as_ref()
            .and_then(|r| r.clock)
            .is_some_and(|clock| clock.overdue(now));
        if conn.reading && overdue && !conn.timed_out {
            conn.timed_out = true;
            let _ = conn.stream.shutdown(Shutdown::Both);
        }
    }
}

fn push_read(ring: &mut Ring, conn: &mut Conn, key: usize) -> anyhow::Result<()> {
    conn.reading = true;
    let read = opcode::Read::new(
        types::Fd(conn.stream.as_raw_fd()),
        conn.buf.as_mut_ptr(),
        conn.buf.len() as u32,
    )
    .build()
    .user_data(READ | key as u64);
    // SAFETY: `buf` is a boxed slice in the slab entry, which is removed only after this read
    // completes (one operation per connection at a time), so it outlives the read.
    ring.push(&read)
}

fn push_write(ring: &mut Ring, conn: &mut Conn, key: usize) -> anyhow::Result<()> {
    let rest = conn.unwritten();
    let write = opcode::Write::new(
        types::Fd(conn.stream.as_raw_fd()),
        rest.as_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data(WRITE | key as u64);
    // SAFETY: as for reads: the buffer (`buf`, or with `--work` the request at the front of
    // `input`, which nothing changes until this write completes) outlives the write, the only
    // operation in flight for it.
    ring.push(&write)
}
