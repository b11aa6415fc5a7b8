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

/// What the `listening on` line starts with.
const LISTENING_ON: &str = "listening on ";

/// The `listening on <ip>:<port>` line for `addr`, without its newline: what [`announce`]
/// prints, and what `echobench serve --report` relays for a server on another host.
pub fn listening_line(addr: SocketAddr) -> String {
    format!("{LISTENING_ON}{addr}")
}

/// The address a [`listening_line`] names; `None` for any other line. White space around
/// the line (its newline) is ignored.
pub fn parse_listening(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix(LISTENING_ON)?.parse().ok()
}

/// Whether `line` says it is a `listening on` line, readable by [`parse_listening`] or not:
/// a server's claim to be ready, which the reader then judges.
pub fn claims_listening(line: &str) -> bool {
    line.starts_with(LISTENING_ON)
}

/// Prints the one `listening on <ip>:<port>` line that scripts wait for, and flushes it:
/// `addr` is the bound address (a TCP listener's or a UDP socket's).
pub fn announce(addr: io::Result<SocketAddr>) -> anyhow::Result<()> {
    let addr = addr.context("cannot read the bound address")?;
    let mut out = io::stdout().lock();
    writeln!(out, "{}", listening_line(addr))
        .and_then(|()| out.flush())
        .context("cannot write the `listening on` line to stdout")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_names_its_address_back() {
        for addr in ["127.0.0.1:7007", "[::1]:40000", "0.0.0.0:1"] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(parse_listening(&listening_line(addr)), Some(addr));
            assert_eq!(
                parse_listening(&format!("{}\r\n", listening_line(addr))),
                Some(addr)
            );
        }
        assert!(claims_listening("listening on nowhere"));
        assert!(!claims_listening("listening at 127.0.0.1:1"));
        for other in [
            "",
            "listening on",
            "listening on nowhere",
            "listening at 127.0.0.1:1",
        ] {
            assert_eq!(parse_listening(other), None, "{other:?}");
        }
    }
}
