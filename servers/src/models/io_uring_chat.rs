//! `io-uring` with `--chat`: the ring's one thread is the single owner of every room
//! (`chat::owner`), as the `mio` loop is, with completions instead of readiness. Every member
//! has a read in flight while it is connected, and a write whenever its queue is not empty:
//! the front of the queue, up to [`WRITE_MAX`] bytes, copied into the member's write buffer
//! (the kernel reads that buffer until the write completes, so the queue may grow meanwhile).
//! A member closed with operations in flight is shut down, which ends them, and forgotten at
//! their last completion, never while the kernel may still use its buffers.
#![allow(unsafe_code)]

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use io_uring::{opcode, types};
use slab::Slab;

use super::ring::{
    accepted, push_accept, push_stop_poll, Ring, ACCEPT, BACKOFF, CANCEL_WAIT, KIND, READ, STOP,
    WRITE,
};
use crate::accept::ACCEPT_BACKOFF;
use crate::chat::owner::{Fed, Owner};
use crate::conn_limit::{ConnLimit, ConnSlot};
use crate::echo::READ_BUF;
use crate::endings::{self, Ending};

/// The most bytes of a member's queue one write hands the kernel.
const WRITE_MAX: usize = 64 * 1024;

/// One member's socket and the buffers the kernel reads into and writes from.
struct Member {
    stream: TcpStream,
    read_buf: Box<[u8]>,
    /// What the write in flight sends; unchanged until it completes.
    write_buf: Vec<u8>,
    reading: bool,
    writing: bool,
    /// Operations in flight: the entry is removed only when none is.
    ops: u8,
    closing: bool,
    _slot: ConnSlot,
}

/// Serves the chat room on one ring until SIGINT or SIGTERM.
pub fn serve(
    listener: &TcpListener,
    stop: &UnixStream,
    limit: &ConnLimit,
    queue: usize,
) -> anyhow::Result<()> {
    let mut ring = Ring::new(1024)?;
    let backoff = Box::new(types::Timespec::from(ACCEPT_BACKOFF));
    let mut chat = Chat {
        members: Slab::new(),
        owner: Owner::new(queue),
    };
    let served = chat.run(&mut ring, listener, stop, limit, &backoff);
    // As the echo loop: buffers are freed only once the kernel is done with them.
    if !ring.cancel_all(CANCEL_WAIT) {
        std::mem::forget(chat);
        std::mem::forget(backoff);
    }
    served
}

struct Chat {
    members: Slab<Member>,
    owner: Owner,
}

impl Chat {
    fn run(
        &mut self,
        ring: &mut Ring,
        listener: &TcpListener,
        stop: &UnixStream,
        limit: &ConnLimit,
        backoff: &types::Timespec,
    ) -> anyhow::Result<()> {
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
                    ACCEPT => self.accepted(ring, listener, limit, backoff, result)?,
                    READ => self.read_done(ring, key, result)?,
                    WRITE => self.write_done(ring, key, result)?,
                    _ => {}
                }
            }
            // Every queue that grew gets its write; every member too slow is closed.
            loop {
                let (dirty, dropped) = (self.owner.take_dirty(), self.owner.take_dropped());
                if dirty.is_empty() && dropped.is_empty() {
                    break;
                }
                for key in dropped {
                    self.close(key, Some(Ending::SlowMember));
                }
                for key in dirty {
                    self.flush(ring, key)?;
                }
            }
        }
    }

    fn accepted(
        &mut self,
        ring: &mut Ring,
        listener: &TcpListener,
        limit: &ConnLimit,
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
        crate::chat::limit_send_buffer(&stream);
        let key = self.members.insert(Member {
            stream,
            read_buf: vec![0u8; READ_BUF].into_boxed_slice(),
            write_buf: Vec::new(),
            reading: true,
            writing: false,
            ops: 0,
            closing: false,
            _slot: slot,
        });
        self.owner.add(key);
        self.push_read(ring, key)
    }

    fn read_done(&mut self, ring: &mut Ring, key: usize, result: i32) -> anyhow::Result<()> {
        let Some(member) = self.members.get_mut(key) else {
            return Ok(());
        };
        member.ops -= 1;
        if member.closing {
            self.forget_if_idle(key);
            return Ok(());
        }
        match result {
            0 => {
                member.reading = false;
                self.owner.leave(key);
                self.flush(ring, key)
            }
            n if n > 0 => {
                let bytes = &member.read_buf[..n as usize];
                match self.owner.received(key, bytes) {
                    Fed::Taken => self.push_read(ring, key),
                    Fed::Refused(ending) => {
                        self.close(key, Some(ending));
                        Ok(())
                    }
                    // One owner owns every room.
                    Fed::Elsewhere(_) => {
                        self.close(key, Some(Ending::Other));
                        Ok(())
                    }
                }
            }
            err => {
                self.close(key, Some(Ending::of(&io::Error::from_raw_os_error(-err))));
                Ok(())
            }
        }
    }

    fn write_done(&mut self, ring: &mut Ring, key: usize, result: i32) -> anyhow::Result<()> {
        let Some(member) = self.members.get_mut(key) else {
            return Ok(());
        };
        member.ops -= 1;
        member.writing = false;
        if member.closing {
            self.forget_if_idle(key);
            return Ok(());
        }
        if result <= 0 {
            let e = match result {
                0 => io::ErrorKind::WriteZero.into(),
                err => io::Error::from_raw_os_error(-err),
            };
            self.close(key, Some(Ending::of(&e)));
            return Ok(());
        }
        if let Some(out) = self.owner.outbox(key) {
            out.advance(result as usize);
        }
        self.flush(ring, key)
    }

    /// Starts the next write of member `key`'s queue, unless one is in flight; a member that
    /// has left and has everything it was owed is closed.
    fn flush(&mut self, ring: &mut Ring, key: usize) -> anyhow::Result<()> {
        let (Some(member), Some(out)) = (self.members.get_mut(key), self.owner.outbox(key)) else {
            return Ok(());
        };
        if member.writing || member.closing {
            return Ok(());
        }
        if out.is_empty() {
            if !member.reading {
                if let Err(e) = member.stream.shutdown(Shutdown::Write) {
                    endings::ended_by(&e);
                }
                self.close(key, None);
            }
            return Ok(());
        }
        member.write_buf = out.front_bytes(WRITE_MAX);
        let write = opcode::Write::new(
            types::Fd(member.stream.as_raw_fd()),
            member.write_buf.as_ptr(),
            member.write_buf.len() as u32,
        )
        .build()
        .user_data(WRITE | key as u64);
        member.writing = true;
        member.ops += 1;
        // SAFETY: `write_buf` is not touched until this write completes (`writing`), and the
        // slab entry holding it is removed only when no operation of it is in flight.
        ring.push(&write)
    }

    fn push_read(&mut self, ring: &mut Ring, key: usize) -> anyhow::Result<()> {
        let Some(member) = self.members.get_mut(key) else {
            return Ok(());
        };
        let read = opcode::Read::new(
            types::Fd(member.stream.as_raw_fd()),
            member.read_buf.as_mut_ptr(),
            member.read_buf.len() as u32,
        )
        .build()
        .user_data(READ | key as u64);
        member.ops += 1;
        // SAFETY: `read_buf` is boxed in the slab entry, removed only when no operation of it
        // is in flight; one read at a time.
        ring.push(&read)
    }

    /// Closes member `key`: out of its room, counted, its socket shut down so that whatever
    /// is in flight ends; forgotten at the last completion.
    fn close(&mut self, key: usize, ending: Option<Ending>) {
        self.owner.remove(key);
        if let Some(ending) = ending {
            endings::count(ending);
        }
        if let Some(member) = self.members.get_mut(key) {
            member.closing = true;
            let _ = member.stream.shutdown(Shutdown::Both);
        }
        self.forget_if_idle(key);
    }

    fn forget_if_idle(&mut self, key: usize) {
        if self
            .members
            .get(key)
            .is_some_and(|m| m.closing && m.ops == 0)
        {
            self.members.remove(key);
        }
    }
}
