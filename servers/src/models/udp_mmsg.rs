//! `udp-mmsg`: one thread, one non-blocking socket, and datagrams moved in batches:
//! `recvmmsg` takes up to [`BATCH`] datagrams in one system call, `sendmmsg` sends their
//! echoes in one more. The loop waits in mio's `Poll` when the socket is empty; a reply that
//! finds the send buffer full is dropped and counted, with the rest of its batch.
//!
//! Should win: many datagrams in flight (many clients, or pipelined ones), where two system
//! calls serve a whole batch instead of two per datagram: less CPU per datagram.
//! Should break: one client in ping-pong, where every batch holds one datagram and the
//! batching only adds bookkeeping; and it is Linux-only.
//!
//! Run: `echo-server udp-mmsg --addr 127.0.0.1:7007`

use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, UdpSocket};
use std::os::fd::AsRawFd;

use anyhow::Context;
use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage,
};

use crate::config::ServerConfig;
use crate::datagram::{
    destination, dropped_on_send, echoed, note_recv_error, pktinfo_v4, pktinfo_v6, replied,
    serve_readable, socket_addr, wildcard, Datagram, Rules, RECV_BUF,
};
use crate::signals::SignalPipe;

/// Datagrams moved by one `recvmmsg` or `sendmmsg`.
pub const BATCH: usize = 32;

/// Echoes datagrams until SIGINT or SIGTERM.
pub fn serve(socket: UdpSocket, _config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let rules = Rules::of(&socket).context("cannot read the bound address")?;
    let mut batches = Batches::new(rules, wildcard(&socket));
    serve_readable(&socket, stop, |socket| batches.echo_all(socket))
}

/// The buffers and message headers of one batch, allocated once.
struct Batches {
    bufs: Vec<Vec<u8>>,
    /// What to echo: the buffer each datagram is in, and the datagram.
    received: Vec<(usize, Datagram)>,
    recv_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
    rules: Rules,
    wildcard: bool,
}

impl Batches {
    fn new(rules: Rules, wildcard: bool) -> Batches {
        let control = || wildcard.then(|| nix::cmsg_space!(nix::libc::in6_pktinfo));
        Batches {
            bufs: (0..BATCH).map(|_| vec![0u8; RECV_BUF]).collect(),
            received: Vec::with_capacity(BATCH),
            recv_headers: MultiHeaders::preallocate(BATCH, control()),
            send_headers: MultiHeaders::preallocate(BATCH, control()),
            rules,
            wildcard,
        }
    }

    /// Receives and echoes batches until the socket is empty. A short batch means it was
    /// empty when the kernel filled it, and anything later raises a new edge.
    fn echo_all(&mut self, socket: &UdpSocket) {
        loop {
            match self.receive(socket) {
                Ok(n) => {
                    self.send(socket);
                    if n < BATCH {
                        return;
                    }
                }
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => {}
                Err(e) => note_recv_error(&e.into()),
            }
        }
    }

    /// One `recvmmsg`: fills `received` with what to echo; returns how many datagrams came.
    fn receive(&mut self, socket: &UdpSocket) -> nix::Result<usize> {
        self.received.clear();
        let n = self.receive_batch(socket)?;
        // Judged once the batch is read (the buffers are ours again), with each one's bytes.
        let (bufs, rules) = (&self.bufs, &self.rules);
        self.received
            .retain(|(i, dg)| rules.to_echo(dg, &bufs[*i][..dg.len]));
        Ok(n)
    }

    /// The `recvmmsg` itself: every datagram that came, with its sender, into `received`.
    fn receive_batch(&mut self, socket: &UdpSocket) -> nix::Result<usize> {
        let mut iovs: Vec<[IoSliceMut; 1]> =
            self.bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
        let flags = MsgFlags::MSG_DONTWAIT;
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.recv_headers,
            iovs.iter_mut(),
            flags,
            None,
        )?;
        let mut n = 0;
        for (i, msg) in results.enumerate() {
            n += 1;
            let Some(from) = msg.address.as_ref().and_then(socket_addr) else {
                continue;
            };
            let to = match msg.cmsgs() {
                Ok(cmsgs) if self.wildcard => destination(cmsgs),
                _ => None,
            };
            self.received.push((
                i,
                Datagram {
                    len: msg.bytes,
                    from,
                    to,
                    truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
                },
            ));
        }
        Ok(n)
    }

    /// Sends the echoes of `received`, with one `sendmmsg` per run of datagrams sent to the
    /// same local address (one run, unless the socket is a wildcard).
    fn send(&mut self, socket: &UdpSocket) {
        let received = std::mem::take(&mut self.received);
        for run in received.chunk_by(|a, b| a.1.to == b.1.to) {
            self.send_run(socket, run);
        }
        self.received = received;
    }

    /// Sends one run; when the send buffer fills, the rest of the run is dropped.
    fn send_run(&mut self, socket: &UdpSocket, run: &[(usize, Datagram)]) {
        let mut done = 0;
        while done < run.len() {
            let rest = &run[done..];
            let slices: Vec<[IoSlice; 1]> = rest
                .iter()
                .map(|(i, dg)| [IoSlice::new(&self.bufs[*i][..dg.len])])
                .collect();
            let addrs: Vec<Option<SockaddrStorage>> = rest
                .iter()
                .map(|(_, dg)| Some(SockaddrStorage::from(dg.from)))
                .collect();
            let v4;
            let v6;
            let control: Vec<ControlMessage> = match rest[0].1.to {
                None => Vec::new(),
                Some(IpAddr::V4(ip)) => {
                    v4 = pktinfo_v4(ip);
                    vec![ControlMessage::Ipv4PacketInfo(&v4)]
                }
                Some(IpAddr::V6(ip)) => {
                    v6 = pktinfo_v6(ip);
                    vec![ControlMessage::Ipv6PacketInfo(&v6)]
                }
            };
            let fd = socket.as_raw_fd();
            let flags = MsgFlags::MSG_DONTWAIT;
            match sendmmsg(fd, &mut self.send_headers, &slices, &addrs, &control, flags) {
                Ok(results) => {
                    let sent = results.count().max(1);
                    echoed(sent);
                    done += sent;
                }
                Err(Errno::EAGAIN) => {
                    dropped_on_send(rest.len());
                    return;
                }
                Err(Errno::EINTR) => {}
                // The first message failed alone (later ones would have been sent): skip it.
                Err(e) => {
                    replied(&Err(e.into()));
                    done += 1;
                }
            }
        }
    }
}
