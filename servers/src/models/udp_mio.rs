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

use anyhow::Context;

use crate::config::ServerConfig;
use crate::datagram::{
    note_recv_error, recv, replied, reply, serve_readable, wildcard, Rules, RECV_BUF,
};
use crate::errors::{interrupted, would_block};
use crate::signals::SignalPipe;

/// Echoes datagrams until SIGINT or SIGTERM.
pub fn serve(socket: UdpSocket, _config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let rules = Rules::of(&socket).context("cannot read the bound address")?;
    let wildcard = wildcard(&socket);
    let mut buf = vec![0u8; RECV_BUF];
    serve_readable(&socket, stop, |socket| {
        echo_all(socket, &rules, &mut buf, wildcard)
    })
}

/// Receives and echoes until the socket has nothing left (its readiness is edge-triggered).
fn echo_all(socket: &UdpSocket, rules: &Rules, buf: &mut [u8], wildcard: bool) {
    loop {
        match recv(socket, buf, wildcard) {
            Ok(dg) if rules.to_echo(&dg, &buf[..dg.len]) => {
                replied(&reply(socket, &buf[..dg.len], &dg))
            }
            Ok(_) => {}
            Err(e) if would_block(&e) => return,
            Err(e) if interrupted(&e) => {}
            Err(e) => note_recv_error(&e),
        }
    }
}
