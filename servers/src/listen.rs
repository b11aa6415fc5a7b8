//! The listener: binding it, and the one `listening on` line that scripts wait for.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};

use anyhow::Context;
use socket2::{Domain, Protocol, Socket, Type};

/// Listen backlog: large enough that bursts of connections (churn, 1024 clients) queue in the
/// kernel instead of being refused.
pub const BACKLOG: i32 = 1024;

/// Binds a listening socket on `addr` with `SO_REUSEADDR` and [`BACKLOG`]; with `reuse_port`
/// also `SO_REUSEPORT`, so that more listeners can bind the same address and share its
/// connections.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Restarting a server must not wait for TIME_WAIT connections of the previous one.
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Prints the one `listening on <ip>:<port>` line that scripts wait for, and flushes it:
/// `addr` is the bound address (a TCP listener's or a UDP socket's).
pub fn announce(addr: io::Result<SocketAddr>) -> anyhow::Result<()> {
    let addr = addr.context("cannot read the bound address")?;
    let mut out = io::stdout().lock();
    writeln!(out, "listening on {addr}")
        .and_then(|()| out.flush())
        .context("cannot write the `listening on` line to stdout")
}
