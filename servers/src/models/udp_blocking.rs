//! `udp-blocking`: the tutorials' `udpSerSock.py`. One thread, one blocking socket: receive a
//! datagram, send it back to its sender, receive the next. There is no accept and no
//! connection: one socket serves every client, a datagram at a time.
//!
//! Should win: one client in ping-pong, where a blocking receive and a blocking send are the
//! least work a datagram can cost (no readiness calls, no hand-offs).
//! Should break: under many clients it stays one core and two system calls per datagram, and
//! whatever arrives while it sends waits in the socket's receive buffer, or is dropped there.
//!
//! Run: `echo-server udp-blocking --addr 127.0.0.1:7007`

use std::net::UdpSocket;

use anyhow::Context;

use crate::config::ServerConfig;
use crate::datagram::serve_blocking;
use crate::signals::SignalPipe;

/// Echoes datagrams until SIGINT or SIGTERM.
pub fn serve(socket: UdpSocket, _config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    serve_blocking(&socket, &|| stop.raised()).context("cannot receive on the socket")
}
