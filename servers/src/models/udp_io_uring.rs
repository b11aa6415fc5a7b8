//! `udp-io-uring`: completion-based datagrams. One thread, one io_uring: [`SLOTS`] receives
//! are in flight at once, each with its own buffer; when one completes, the send of the same
//! buffer back to its sender is submitted, and when that completes, the slot's next receive.
//! Nothing asks whether the socket is ready, and one `io_uring_enter` submits and reaps many
//! operations.
//!
//! Should win: many datagrams in flight, where the rings batch what `udp-mio` pays two system
//! calls per datagram for.
//! Should break: one client in ping-pong (nothing to batch), and where the kernel refuses
//! io_uring (`kernel.io_uring_disabled`, seccomp): the server says so and exits 1.
//!
//! A reply waits for room in the send buffer (the socket is blocking, so the kernel queues the
//! send), and its slot receives nothing meanwhile: back-pressure is fewer receives in flight.
//! On a wildcard socket the received `IP_PKTINFO` is sent back with the reply, so that it
//! leaves from the address the client sent to.
//!
//! Run: `echo-server udp-io-uring --addr 127.0.0.1:7007`
//!
//! `unsafe` here is what the io_uring interface demands: the kernel writes into and reads from
//! our buffers and message headers after `push` returns, so each push promises they outlive
//! the operation.
#![allow(unsafe_code)]

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use anyhow::Context;
use io_uring::{opcode, types, IoUring};
use nix::libc;
use nix::sys::socket::{SockaddrLike, SockaddrStorage};

use crate::config::ServerConfig;
use crate::datagram::{
    note_recv_error, replied, socket_addr, to_echo, wildcard, Datagram, RECV_BUF,
};
use crate::signals::SignalPipe;

use super::io_uring_loop::push;

/// Receives in flight at once.
pub const SLOTS: usize = 64;

/// Submission queue entries: a receive or a send per slot, and the stop poll.
const RING_ENTRIES: u32 = 256;

/// What a completion is for: the kind in the high bits of `user_data`, the slot below.
const STOP: u64 = 1 << 32;
const RECV: u64 = 2 << 32;
const SEND: u64 = 3 << 32;
const KIND: u64 = 0xffff_ffff << 32;

/// Room for one `IP_PKTINFO` or `IPV6_PKTINFO` control message.
const CONTROL: usize = 64;

/// One receive-then-send buffer with its message header; boxed so that nothing the kernel
/// points into ever moves.
struct Slot {
    buf: Box<[u8]>,
    addr: libc::sockaddr_storage,
    control: [u8; CONTROL],
    iov: libc::iovec,
    msg: libc::msghdr,
}

/// Runs the ring until SIGINT or SIGTERM.
pub fn serve(socket: UdpSocket, _config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let mut ring = IoUring::new(RING_ENTRIES).map_err(|e| {
        anyhow::anyhow!(
            "io_uring is not available: {e} (the kernel refused io_uring_setup; \
             kernel.io_uring_disabled or a seccomp filter may forbid it)"
        )
    })?;
    let stop: UnixStream = stop.into_read_end();
    let wildcard = wildcard(&socket);
    let fd = types::Fd(socket.as_raw_fd());
    let mut slots: Vec<Box<Slot>> = (0..SLOTS).map(|_| Slot::new()).collect();

    let poll_stop = opcode::PollAdd::new(types::Fd(stop.as_raw_fd()), libc::POLLIN as u32)
        .build()
        .user_data(STOP);
    // SAFETY: a poll holds no buffer; the pipe's descriptor lives until this function returns.
    push(&mut ring, &poll_stop)?;
    for (i, slot) in slots.iter_mut().enumerate() {
        push_recv(&mut ring, fd, slot, i, wildcard)?;
    }
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
            let i = (user_data & !KIND) as usize;
            match user_data & KIND {
                STOP => return Ok(()),
                RECV => on_recv(&mut ring, fd, &mut slots[i], i, result, wildcard)?,
                SEND => {
                    replied(&sent(result));
                    push_recv(&mut ring, fd, &mut slots[i], i, wildcard)?;
                }
                _ => {}
            }
        }
    }
}

impl Slot {
    fn new() -> Box<Slot> {
        // SAFETY: all-zero bytes are a valid `sockaddr_storage`, `iovec` and `msghdr` (null
        // pointers, zero lengths); the pointers are set before each use.
        let (addr, iov, msg) =
            unsafe { (std::mem::zeroed(), std::mem::zeroed(), std::mem::zeroed()) };
        Box::new(Slot {
            buf: vec![0u8; RECV_BUF].into_boxed_slice(),
            addr,
            control: [0; CONTROL],
            iov,
            msg,
        })
    }

    /// Points the header at this slot's own buffer, address and (on a wildcard socket)
    /// control space, `len` bytes of the buffer.
    fn aim(&mut self, len: usize, control_len: usize) {
        self.iov.iov_base = self.buf.as_mut_ptr().cast();
        self.iov.iov_len = len;
        self.msg.msg_name = std::ptr::addr_of_mut!(self.addr).cast();
        self.msg.msg_iov = &mut self.iov;
        self.msg.msg_iovlen = 1;
        self.msg.msg_control = if control_len > 0 {
            self.control.as_mut_ptr().cast()
        } else {
            std::ptr::null_mut()
        };
        self.msg.msg_controllen = control_len;
        self.msg.msg_flags = 0;
    }
}

/// A receive on `slot`, into its whole buffer.
fn push_recv(
    ring: &mut IoUring,
    fd: types::Fd,
    slot: &mut Slot,
    i: usize,
    wildcard: bool,
) -> anyhow::Result<()> {
    slot.aim(RECV_BUF, if wildcard { CONTROL } else { 0 });
    slot.msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let recv = opcode::RecvMsg::new(fd, &mut slot.msg)
        .build()
        .user_data(RECV | i as u64);
    // SAFETY: the slot is boxed and owned by `serve`, which outlives every operation; it has
    // this one operation in flight until its completion.
    push(ring, &recv)
}

/// A receive completed: send the datagram back, or receive again.
fn on_recv(
    ring: &mut IoUring,
    fd: types::Fd,
    slot: &mut Slot,
    i: usize,
    result: i32,
    wildcard: bool,
) -> anyhow::Result<()> {
    if result < 0 {
        note_recv_error(&io::Error::from_raw_os_error(-result));
        return push_recv(ring, fd, slot, i, wildcard);
    }
    let len = result as usize;
    let namelen = slot.msg.msg_namelen;
    // SAFETY: the kernel wrote a socket address of `namelen` bytes into `addr`.
    let from =
        unsafe { SockaddrStorage::from_raw(std::ptr::addr_of!(slot.addr).cast(), Some(namelen)) }
            .and_then(|a| socket_addr(&a));
    let Some(from) = from else {
        return push_recv(ring, fd, slot, i, wildcard);
    };
    let dg = Datagram {
        len,
        from,
        to: None,
        truncated: slot.msg.msg_flags & libc::MSG_TRUNC != 0,
    };
    if !to_echo(&dg) {
        return push_recv(ring, fd, slot, i, wildcard);
    }
    // The received control message, sent back, names the address the client sent to.
    let control_len = slot.msg.msg_controllen;
    slot.aim(len, control_len);
    let send = opcode::SendMsg::new(fd, &slot.msg)
        .build()
        .user_data(SEND | i as u64);
    // SAFETY: as for the receive: the slot outlives the send, its one operation in flight.
    push(ring, &send)
}

/// A send's result as `sendmsg` would return it.
fn sent(result: i32) -> io::Result<usize> {
    if result < 0 {
        Err(io::Error::from_raw_os_error(-result))
    } else {
        Ok(result as usize)
    }
}
