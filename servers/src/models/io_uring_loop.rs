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
//! Run: `echo-server io-uring --addr 127.0.0.1:7007 [--max-conns N]`
//!
//! `unsafe` here is what the io_uring interface demands: the kernel writes into and reads from
//! our buffers after `push` returns, so each push promises they outlive the operation.
#![allow(unsafe_code)]

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::ptr;

use anyhow::Context;
use io_uring::{opcode, squeue, types, IoUring};
use slab::Slab;

use crate::accept::{accept_error_is_per_connection, log_accept_error, ACCEPT_BACKOFF};
use crate::config::ServerConfig;
use crate::conn_limit::{ConnLimit, ConnSlot};
use crate::echo::READ_BUF;
use crate::endings;
use crate::signals::SignalPipe;

/// Submission queue entries.
const RING_ENTRIES: u32 = 1024;

/// What a completion is for: the kind in the high bits of `user_data`, the connection below.
const ACCEPT: u64 = 1 << 32;
const STOP: u64 = 2 << 32;
const BACKOFF: u64 = 3 << 32;
const READ: u64 = 4 << 32;
const WRITE: u64 = 5 << 32;
const KIND: u64 = 0xffff_ffff << 32;

/// One client.
struct Conn {
    stream: TcpStream,
    /// Read into, then written back from; boxed so that it never moves while the kernel uses it.
    buf: Box<[u8]>,
    /// Bytes of `buf` that hold echo, and how many of them are written back.
    len: usize,
    written: usize,
    _slot: ConnSlot,
}

/// Runs the ring until SIGINT or SIGTERM.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let mut ring = new_ring(RING_ENTRIES)?;
    let stop: UnixStream = stop.into_read_end();
    let limit = ConnLimit::new(config.max_conns);
    let mut conns: Slab<Conn> = Slab::new();
    // The back-off timer's duration must live as long as a timeout may be in flight.
    let backoff = Box::new(types::Timespec::from(ACCEPT_BACKOFF));

    let poll_stop = opcode::PollAdd::new(types::Fd(stop.as_raw_fd()), nix::libc::POLLIN as u32)
        .build()
        .user_data(STOP);
    // SAFETY: a poll holds no buffer; the pipe's descriptor lives until this function returns.
    push(&mut ring, &poll_stop)?;
    push_accept(&mut ring, &listener)?;

    let mut done = Vec::new();
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("io_uring submit failed"),
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(user_data, result) in &done {
            let key = (user_data & !KIND) as usize;
            match user_data & KIND {
                STOP => return Ok(()),
                BACKOFF => push_accept(&mut ring, &listener)?,
                ACCEPT => on_accept(&mut ring, &listener, &mut conns, &limit, &backoff, result)?,
                READ => on_read(&mut ring, &mut conns, key, result)?,
                WRITE => on_write(&mut ring, &mut conns, key, result)?,
                _ => {}
            }
        }
    }
}

fn on_accept(
    ring: &mut IoUring,
    listener: &TcpListener,
    conns: &mut Slab<Conn>,
    limit: &ConnLimit,
    backoff: &types::Timespec,
    result: i32,
) -> anyhow::Result<()> {
    if result < 0 {
        let e = io::Error::from_raw_os_error(-result);
        if accept_error_is_per_connection(&e) {
            return push_accept(ring, listener);
        }
        // Out of descriptors or memory: accept again only after a pause.
        log_accept_error(&e);
        let timeout = opcode::Timeout::new(backoff).build().user_data(BACKOFF);
        // SAFETY: `backoff` is owned by `serve`, which outlives every operation of the ring.
        return push(ring, &timeout);
    }
    // SAFETY: a successful accept returned a new descriptor that nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(result) };
    push_accept(ring, listener)?;
    // Already gone: the client reset it before we took it.
    if let Err(e) = stream.peer_addr() {
        endings::ended_by(&e);
        return Ok(());
    }
    // Over the cap: dropping the stream closes it at once.
    let Some(slot) = limit.try_acquire() else {
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
    });
    push_read(ring, conn, key)
}

fn on_read(
    ring: &mut IoUring,
    conns: &mut Slab<Conn>,
    key: usize,
    result: i32,
) -> anyhow::Result<()> {
    let Some(conn) = conns.get_mut(key) else {
        return Ok(());
    };
    match result {
        // Half-close: every byte read so far is written back; close our side, then the socket.
        0 => {
            let conn = conns.remove(key);
            if let Err(e) = conn.stream.shutdown(Shutdown::Write) {
                endings::ended_by(&e);
            }
            Ok(())
        }
        n if n > 0 => {
            conn.len = n as usize;
            conn.written = 0;
            push_write(ring, conn, key)
        }
        err => {
            conns.remove(key);
            endings::ended_by(&io::Error::from_raw_os_error(-err));
            Ok(())
        }
    }
}

fn on_write(
    ring: &mut IoUring,
    conns: &mut Slab<Conn>,
    key: usize,
    result: i32,
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
        push_write(ring, conn, key)
    } else {
        push_read(ring, conn, key)
    }
}

fn push_accept(ring: &mut IoUring, listener: &TcpListener) -> anyhow::Result<()> {
    let accept = opcode::Accept::new(
        types::Fd(listener.as_raw_fd()),
        ptr::null_mut(),
        ptr::null_mut(),
    )
    .flags(nix::libc::SOCK_CLOEXEC)
    .build()
    .user_data(ACCEPT);
    // SAFETY: no address buffer is passed; the listener lives until `serve` returns.
    push(ring, &accept)
}

fn push_read(ring: &mut IoUring, conn: &mut Conn, key: usize) -> anyhow::Result<()> {
    let read = opcode::Read::new(
        types::Fd(conn.stream.as_raw_fd()),
        conn.buf.as_mut_ptr(),
        conn.buf.len() as u32,
    )
    .build()
    .user_data(READ | key as u64);
    // SAFETY: `buf` is a boxed slice in the slab entry, which is removed only after this read
    // completes (one operation per connection at a time), so it outlives the read.
    push(ring, &read)
}

fn push_write(ring: &mut IoUring, conn: &mut Conn, key: usize) -> anyhow::Result<()> {
    let rest = &conn.buf[conn.written..conn.len];
    let write = opcode::Write::new(
        types::Fd(conn.stream.as_raw_fd()),
        rest.as_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data(WRITE | key as u64);
    // SAFETY: as for reads: the buffer outlives the write, the only operation in flight for it.
    push(ring, &write)
}

/// A ring of `entries`; the error says the kernel refused io_uring and why that may be.
pub(crate) fn new_ring(entries: u32) -> anyhow::Result<IoUring> {
    IoUring::new(entries).map_err(|e| {
        anyhow::anyhow!(
            "io_uring is not available: {e} (the kernel refused io_uring_setup; \
             kernel.io_uring_disabled or a seccomp filter may forbid it)"
        )
    })
}

/// Queues an entry, flushing the submission queue to the kernel when it is full.
///
/// Callers promise that every buffer and descriptor the entry names outlives the operation.
pub(crate) fn push(ring: &mut IoUring, entry: &squeue::Entry) -> anyhow::Result<()> {
    loop {
        // SAFETY: the caller keeps what the entry points to alive until its completion.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit().context("io_uring submit failed")?;
    }
}
