//! `udp-io-uring`: completion-based datagrams. One thread, one io_uring, and one multishot
//! receive (`IORING_OP_RECVMSG` with `IORING_RECV_MULTISHOT`) that keeps posting a completion
//! per datagram, each in a buffer the kernel takes from a pool of [`BUFFERS`] we provided.
//! The echo is sent from that buffer (`IORING_OP_SENDMSG`), and when the send completes the
//! buffer goes back to the pool. Nothing asks whether the socket is ready, and one
//! `io_uring_enter` submits and reaps many operations.
//!
//! Should win: many datagrams in flight, where the rings batch what `udp-mio` pays two system
//! calls per datagram for.
//! Should break: one client in ping-pong (nothing to batch), and where the kernel refuses
//! io_uring (`kernel.io_uring_disabled`, seccomp) or multishot receives (before Linux 6.0):
//! the server says so and exits 1.
//!
//! Why one multishot receive and not many single ones: several receives waiting on one socket
//! are all woken by each datagram, and those that lose the race are handed to io_uring's
//! worker threads, which then block in `recvmsg` (seen: 48 `iou-wrk` threads for one client).
//!
//! A reply waits for room in the send buffer (the socket is blocking, so the kernel queues the
//! send), and its buffer receives nothing meanwhile: back-pressure is a smaller pool; when the
//! pool is empty the receive ends (`ENOBUFS`) and is made again once a buffer is back. On a
//! wildcard socket the received `IP_PKTINFO` is sent back with the reply, so that it leaves
//! from the address the client sent to.
//!
//! Run: `echo-server udp-io-uring --addr 127.0.0.1:7007`
//!
//! `unsafe` here is what the io_uring interface demands: the kernel writes into and reads from
//! our buffers and message headers after `push` returns, so each push promises they outlive
//! the operation. On the way out the receive and the sends still in flight are cancelled and
//! reaped before the pool is freed.
#![allow(unsafe_code)]

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use anyhow::Context;
use io_uring::{cqueue, opcode, squeue, types};
use nix::libc;
use nix::sys::socket::{SockaddrLike, SockaddrStorage};

use crate::config::ServerConfig;
use crate::datagram::{note_recv_error, replied, socket_addr, wildcard, Datagram, Rules, RECV_BUF};
use crate::signals::SignalPipe;

use super::ring::{push_stop_poll, Ring, CANCEL_WAIT};

/// Buffers in the pool the multishot receive takes from: datagrams held at once.
pub const BUFFERS: u16 = 64;

/// The pool's buffer group.
const GROUP: u16 = 0;

/// Submission queue entries: a send and a buffer's return per buffer, the receive, the stop.
const RING_ENTRIES: u32 = 256;

/// What a completion is for: the kind in the high bits of `user_data`, the buffer below.
const STOP: u64 = 1 << 32;
const RECV: u64 = 2 << 32;
const SEND: u64 = 3 << 32;
const PROVIDE: u64 = 4 << 32;
const KIND: u64 = 0xffff_ffff << 32;

/// Room for the sender's address and one `IP_PKTINFO` or `IPV6_PKTINFO` control message.
const NAME: usize = std::mem::size_of::<libc::sockaddr_storage>();
const CONTROL: usize = 64;

/// One buffer: the kernel's `io_uring_recvmsg_out` header, the name, the control message
/// and the datagram.
const BUF_LEN: usize = 16 + NAME + CONTROL + RECV_BUF;

/// Everything the kernel points into, allocated once and never moved: the buffers, the
/// receive's message header, and one send header per buffer.
struct Pool {
    rules: Rules,
    bytes: Box<[u8]>,
    recv_msg: Box<libc::msghdr>,
    sends: Box<[Send]>,
}

/// A send's message header and its one `iovec`.
struct Send {
    iov: libc::iovec,
    msg: libc::msghdr,
}

/// Runs the ring until SIGINT or SIGTERM.
pub fn serve(socket: UdpSocket, _config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let mut ring = Ring::new(RING_ENTRIES)?;
    let stop: UnixStream = stop.into_read_end();
    let rules = Rules::of(&socket).context("cannot read the bound address")?;
    let mut pool = Pool::new(rules, wildcard(&socket));
    let served = run(&mut ring, &mut pool, &socket, &stop);
    // The receive writes into the pool and the sends read from it until they are cancelled
    // and reaped; where that cannot be made sure of, the pool is leaked (the process is
    // ending), never freed under the kernel.
    if !ring.cancel_all(CANCEL_WAIT) {
        std::mem::forget(pool);
    }
    served
}

/// The loop: completions in, echoes and buffers out, until the stop signal's poll completes.
fn run(
    ring: &mut Ring,
    pool: &mut Pool,
    socket: &UdpSocket,
    stop: &UnixStream,
) -> anyhow::Result<()> {
    let fd = types::Fd(socket.as_raw_fd());
    push_stop_poll(ring, stop, STOP)?;
    pool.provide(ring, 0, BUFFERS)?;
    pool.receive(ring, fd)?;
    let mut receiving = true;
    let mut done = Vec::new();
    loop {
        ring.complete(&mut done)?;
        for &(user_data, result, flags) in &done {
            let bid = (user_data & !KIND) as u16;
            match user_data & KIND {
                STOP => return Ok(()),
                RECV => {
                    receiving = cqueue::more(flags);
                    if -result == libc::EINVAL || -result == libc::EOPNOTSUPP {
                        anyhow::bail!(
                            "io_uring refused a multishot receive ({}): Linux 6.0 or later is needed",
                            io::Error::from_raw_os_error(-result)
                        );
                    }
                    pool.on_recv(ring, fd, result, flags)?;
                }
                SEND => {
                    replied(&sent(result));
                    pool.provide(ring, bid, 1)?;
                }
                PROVIDE if result < 0 => {
                    anyhow::bail!(
                        "io_uring refused a receive buffer: {}",
                        io::Error::from_raw_os_error(-result)
                    )
                }
                _ => {}
            }
        }
        // The receive ended (its pool ran dry, or an error): make it again.
        if !receiving {
            pool.receive(ring, fd)?;
            receiving = true;
        }
    }
}

impl Pool {
    fn new(rules: Rules, wildcard: bool) -> Pool {
        // SAFETY: all-zero bytes are a valid `msghdr` and `iovec` (null pointers, zero
        // lengths); the pointers are set before each use.
        let (mut recv_msg, iov, msg): (Box<libc::msghdr>, libc::iovec, libc::msghdr) = unsafe {
            (
                Box::new(std::mem::zeroed()),
                std::mem::zeroed(),
                std::mem::zeroed(),
            )
        };
        recv_msg.msg_namelen = NAME as libc::socklen_t;
        recv_msg.msg_controllen = if wildcard { CONTROL } else { 0 };
        Pool {
            rules,
            bytes: vec![0u8; BUF_LEN * usize::from(BUFFERS)].into_boxed_slice(),
            recv_msg,
            sends: (0..BUFFERS).map(|_| Send { iov, msg }).collect(),
        }
    }

    /// Hands `n` buffers from number `first` on to the kernel's pool.
    fn provide(&mut self, ring: &mut Ring, first: u16, n: u16) -> anyhow::Result<()> {
        let at = usize::from(first) * BUF_LEN;
        let addr = self.bytes[at..].as_mut_ptr();
        let provide = opcode::ProvideBuffers::new(addr, BUF_LEN as i32, n, GROUP, first)
            .build()
            .user_data(PROVIDE | u64::from(first));
        // SAFETY: the buffers belong to `self.bytes`, which `serve` owns until it returns, and
        // the kernel alone writes them until a completion hands one back.
        ring.push(&provide)
    }

    /// The multishot receive, taking its buffers from the pool.
    fn receive(&mut self, ring: &mut Ring, fd: types::Fd) -> anyhow::Result<()> {
        let recv = opcode::RecvMsgMulti::new(fd, &*self.recv_msg, GROUP)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT)
            .user_data(RECV);
        // SAFETY: the header is boxed and owned by `serve`; the kernel reads its lengths only.
        ring.push(&recv)
    }

    /// A datagram arrived (or the receive failed): send it back from its buffer, or return
    /// the buffer when it is not to be echoed.
    fn on_recv(
        &mut self,
        ring: &mut Ring,
        fd: types::Fd,
        result: i32,
        flags: u32,
    ) -> anyhow::Result<()> {
        let Some(bid) = cqueue::buffer_select(flags) else {
            // No buffer taken: an error, or the pool ran dry (ENOBUFS), which is no error.
            if result < 0 && -result != libc::ENOBUFS {
                note_recv_error(&io::Error::from_raw_os_error(-result));
            }
            return Ok(());
        };
        let at = usize::from(bid) * BUF_LEN;
        let len = usize::try_from(result).unwrap_or(0).min(BUF_LEN);
        let Ok(out) = types::RecvMsgOut::parse(&self.bytes[at..at + len], &self.recv_msg) else {
            return self.provide(ring, bid, 1);
        };
        let name = out.name_data();
        // SAFETY: the kernel wrote a socket address of `name.len()` bytes there.
        let from = unsafe {
            SockaddrStorage::from_raw(name.as_ptr().cast(), Some(name.len() as libc::socklen_t))
        }
        .and_then(|a| socket_addr(&a));
        let Some(from) = from else {
            return self.provide(ring, bid, 1);
        };
        let payload = out.payload_data();
        let dg = Datagram {
            len: payload.len(),
            from,
            to: None,
            truncated: out.is_payload_truncated(),
        };
        if !self.rules.to_echo(&dg, payload) {
            return self.provide(ring, bid, 1);
        }
        // The received control message, sent back, names the address the client sent to.
        let control = out.control_data();
        let (name, payload, control) = (
            (name.as_ptr(), name.len()),
            (payload.as_ptr(), payload.len()),
            (control.as_ptr(), control.len()),
        );
        let send = &mut self.sends[usize::from(bid)];
        send.iov.iov_base = payload.0.cast_mut().cast();
        send.iov.iov_len = payload.1;
        send.msg.msg_name = name.0.cast_mut().cast();
        send.msg.msg_namelen = name.1 as libc::socklen_t;
        send.msg.msg_iov = &mut send.iov;
        send.msg.msg_iovlen = 1;
        send.msg.msg_control = if control.1 > 0 {
            control.0.cast_mut().cast()
        } else {
            std::ptr::null_mut()
        };
        send.msg.msg_controllen = control.1;
        let op = opcode::SendMsg::new(fd, &send.msg)
            .build()
            .user_data(SEND | u64::from(bid));
        // SAFETY: the header and the buffer it points into are owned by `serve` and not reused
        // until this send completes (the buffer returns to the pool only then).
        ring.push(&op)
    }
}

/// A send's result as `sendmsg` would return it.
fn sent(result: i32) -> io::Result<usize> {
    if result < 0 {
        Err(io::Error::from_raw_os_error(-result))
    } else {
        Ok(result as usize)
    }
}
