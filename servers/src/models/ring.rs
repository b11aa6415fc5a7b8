//! The io_uring of the `io-uring` and `udp-io-uring` models ([`Ring`]): a ring that counts its
//! operations in flight, so that it can cancel them all and reap their completions before the
//! memory they point into is freed; and what the `io-uring` model's loops share: the kinds of
//! their completions, the poll on the stop signals, and accepting.
#![allow(unsafe_code)]

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::ptr;
use std::time::{Duration, Instant};

use anyhow::Context;
use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::accept::{accept_error_is_per_connection, log_accept_error};
use crate::endings;

/// What a completion is for, in the `io-uring` model's loops (echo, `--work` and `--chat`): the
/// kind in the high bits of `user_data`, the connection's key below ([`KIND`] masks the kind).
pub(crate) const ACCEPT: u64 = 1 << 32;
pub(crate) const STOP: u64 = 2 << 32;
pub(crate) const BACKOFF: u64 = 3 << 32;
pub(crate) const READ: u64 = 4 << 32;
pub(crate) const WRITE: u64 = 5 << 32;
pub(crate) const KIND: u64 = 0xffff_ffff << 32;

/// Arms a poll on `stop` (the stop signals' pipe) whose completion carries `user_data`.
pub(crate) fn push_stop_poll(
    ring: &mut Ring,
    stop: &impl AsRawFd,
    user_data: u64,
) -> anyhow::Result<()> {
    let poll = opcode::PollAdd::new(types::Fd(stop.as_raw_fd()), nix::libc::POLLIN as u32)
        .build()
        .user_data(user_data);
    // SAFETY: a poll holds no buffer; the caller keeps the pipe open until the ring's
    // operations are cancelled and reaped (its model's `serve` returns).
    ring.push(&poll)
}

/// Pushes an accept on `listener` ([`ACCEPT`]).
pub(crate) fn push_accept(ring: &mut Ring, listener: &TcpListener) -> anyhow::Result<()> {
    let accept = opcode::Accept::new(
        types::Fd(listener.as_raw_fd()),
        ptr::null_mut(),
        ptr::null_mut(),
    )
    .flags(nix::libc::SOCK_CLOEXEC)
    .build()
    .user_data(ACCEPT);
    // SAFETY: no address buffer is passed; the caller keeps the listener open until the
    // ring's operations are cancelled and reaped (its model's `serve` returns).
    ring.push(&accept)
}

/// An accept completed with `result`: the next accept is armed (at once, or after `backoff`
/// for an error that is not the connection's own, [`BACKOFF`]), and the new connection
/// returned, unless it failed or its client has already reset it (counted).
pub(crate) fn accepted(
    ring: &mut Ring,
    listener: &TcpListener,
    backoff: &types::Timespec,
    result: i32,
) -> anyhow::Result<Option<TcpStream>> {
    if result < 0 {
        let e = io::Error::from_raw_os_error(-result);
        if accept_error_is_per_connection(&e) {
            push_accept(ring, listener)?;
            return Ok(None);
        }
        // Out of descriptors or memory: accept again only after a pause.
        log_accept_error(&e);
        let timeout = opcode::Timeout::new(backoff).build().user_data(BACKOFF);
        // SAFETY: the caller's `backoff` outlives every operation of the ring.
        ring.push(&timeout)?;
        return Ok(None);
    }
    // SAFETY: a successful accept returned a new descriptor that nothing else owns.
    let stream = unsafe { TcpStream::from_raw_fd(result) };
    push_accept(ring, listener)?;
    // Already gone: the client reset it before we took it.
    if let Err(e) = stream.peer_addr() {
        endings::ended_by(&e);
        return Ok(None);
    }
    Ok(Some(stream))
}

/// The `user_data` of the cancellation [`Ring::cancel_all`] submits.
const CANCEL: u64 = u64::MAX;

/// How long a server waits on its way out for its cancelled operations to complete.
pub(crate) const CANCEL_WAIT: Duration = Duration::from_millis(500);

/// An io_uring that counts its operations in flight, so that it can cancel them all and reap
/// their completions before the memory they point into is freed: the kernel writes a read's or
/// a receive's buffer, and reads a send's, until the operation's last completion.
pub(crate) struct Ring {
    ring: IoUring,
    /// Operations pushed whose last completion has not been reaped.
    in_flight: usize,
}

impl Ring {
    /// A ring of `entries`; the error says the kernel refused io_uring and why that may be.
    pub(crate) fn new(entries: u32) -> anyhow::Result<Ring> {
        let ring = IoUring::new(entries).map_err(|e| {
            anyhow::anyhow!(
                "io_uring is not available: {e} (the kernel refused io_uring_setup; \
                 kernel.io_uring_disabled or a seccomp filter may forbid it)"
            )
        })?;
        Ok(Ring { ring, in_flight: 0 })
    }

    /// Queues an entry, flushing the submission queue to the kernel when it is full.
    ///
    /// Callers promise that every buffer and descriptor the entry names outlives the
    /// operation.
    pub(crate) fn push(&mut self, entry: &squeue::Entry) -> anyhow::Result<()> {
        loop {
            // SAFETY: the caller keeps what the entry points to alive until its completion.
            if unsafe { self.ring.submission().push(entry) }.is_ok() {
                self.in_flight += 1;
                return Ok(());
            }
            self.ring.submit().context("io_uring submit failed")?;
        }
    }

    /// Submits what is queued, waits for a completion (through a signal's interruption) and
    /// takes every completion ready into `done`, as [`Ring::reap`] does.
    pub(crate) fn complete(&mut self, done: &mut Vec<(u64, i32, u32)>) -> anyhow::Result<()> {
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("io_uring submit failed"),
            }
        }
        self.reap(done);
        Ok(())
    }

    /// The completions ready, into `done` as `(user_data, result, flags)`; an operation is
    /// over at its last completion (a multishot one posts several).
    fn reap(&mut self, done: &mut Vec<(u64, i32, u32)>) {
        done.clear();
        for c in self.ring.completion() {
            if !cqueue::more(c.flags()) {
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            done.push((c.user_data(), c.result(), c.flags()));
        }
    }

    /// Cancels every operation in flight and reaps their completions, for at most `limit`.
    /// True when none is left, so that the kernel touches no memory of ours any more; false
    /// when that cannot be made sure of (a kernel before 5.19 cannot cancel them all at once,
    /// or one did not end in time): the caller must then leak what they point into.
    pub(crate) fn cancel_all(&mut self, limit: Duration) -> bool {
        if self.in_flight == 0 {
            return true;
        }
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(CANCEL);
        // A cancellation names no buffer.
        if self.push(&cancel).is_err() {
            return false;
        }
        let deadline = Instant::now() + limit;
        let mut done = Vec::new();
        while self.in_flight > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let timeout = types::Timespec::from(left);
            let args = types::SubmitArgs::new().timespec(&timeout);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(nix::libc::ETIME) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
            self.reap(&mut done);
            let refused = |&(user_data, result, _): &(u64, i32, u32)| {
                user_data == CANCEL && result == -nix::libc::EINVAL
            };
            if done.iter().any(refused) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    use super::*;

    /// Any `user_data` but [`CANCEL`]'s.
    const READ: u64 = 1;

    #[test]
    fn cancel_all_ends_every_operation_so_that_the_kernel_writes_no_buffer_after_it() {
        let mut ring = match Ring::new(8) {
            Ok(ring) => ring,
            Err(e) => {
                eprintln!("skipped: {e}");
                return;
            }
        };
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let mut buf = vec![0u8; 64].into_boxed_slice();
        let read = opcode::Read::new(types::Fd(ours.as_raw_fd()), buf.as_mut_ptr(), 64)
            .build()
            .user_data(READ);
        // The buffer outlives the read: `cancel_all` ends it below, before `buf` drops.
        ring.push(&read).unwrap();
        ring.ring.submit().unwrap();
        assert!(
            ring.cancel_all(Duration::from_secs(2)),
            "a read still in flight"
        );
        // No read is armed any more: what the peer sends now stays in the socket for us, and
        // the buffer the kernel was given stays as it was.
        peer.write_all(b"too late").unwrap();
        ours.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = [0u8; 8];
        (&ours).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"too late");
        assert!(
            buf.iter().all(|&b| b == 0),
            "the kernel wrote the buffer after cancel_all"
        );
        assert!(
            ring.cancel_all(Duration::from_secs(2)),
            "nothing left to cancel"
        );
    }
}
