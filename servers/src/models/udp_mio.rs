//! `udp-mio`: one thread, one mio `Poll`, one non-blocking socket. When the socket becomes
//! readable the loop receives and echoes datagrams until the socket has none left; a reply
//! that finds the send buffer full is dropped and counted, so that the loop never waits.
//!
//! Should win: beside other work on one thread (timers, TCP connections), where a blocking
//! receive would stall everything else.
//! Should break: against `udp-blocking` alone it only adds a readiness call per wake-up; and
//! it still pays two system calls per datagram, which `udp-mmsg` batches.
//!
//! Run: `echo-server udp-mio --addr 127.0.0.1:7007`

use std::net::UdpSocket;
use std::os::fd::AsRawFd;

use anyhow::Context;
use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::config::ServerConfig;
use crate::datagram::{note_recv_error, recv, replied, reply, to_echo, wildcard, RECV_BUF};
use crate::errors::{interrupted, would_block};
use crate::signals::SignalPipe;

const SOCKET: Token = Token(0);
const STOP: Token = Token(1);

/// Echoes datagrams until SIGINT or SIGTERM.
pub fn serve(socket: UdpSocket, _config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    socket
        .set_nonblocking(true)
        .context("cannot make the socket non-blocking")?;
    let mut poll = Poll::new().context("cannot create the poll")?;
    let fd = socket.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), SOCKET, Interest::READABLE)
        .context("cannot register the socket")?;
    let mut stop = UnixStream::from_std(stop.into_read_end());
    poll.registry()
        .register(&mut stop, STOP, Interest::READABLE)
        .context("cannot register the signal pipe")?;
    let wildcard = wildcard(&socket);
    let mut buf = vec![0u8; RECV_BUF];
    let mut events = Events::with_capacity(8);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if interrupted(&e) => continue,
            Err(e) => return Err(e).context("poll failed"),
        }
        for event in &events {
            match event.token() {
                STOP => return Ok(()),
                _ => echo_all(&socket, &mut buf, wildcard),
            }
        }
    }
}

/// Receives and echoes until the socket has nothing left (its readiness is edge-triggered).
fn echo_all(socket: &UdpSocket, buf: &mut [u8], wildcard: bool) {
    loop {
        match recv(socket, buf, wildcard) {
            Ok(dg) if to_echo(&dg) => replied(&reply(socket, &buf[..dg.len], &dg)),
            Ok(_) => {}
            Err(e) if would_block(&e) => return,
            Err(e) if interrupted(&e) => {}
            Err(e) => note_recv_error(&e),
        }
    }
}
