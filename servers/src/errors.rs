//! Naming I/O errors as mio does, and logging the ones that end a connection.

use std::io;
use std::net::SocketAddr;

/// `true` for the error a non-blocking call returns when it would have to wait.
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// `true` for a call cut short by a signal, to be retried.
pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// Logs an error that ended one connection. Peers that leave abruptly (reset, broken pipe)
/// are normal under load and not logged: writing a line for each would make stderr the
/// bottleneck of a churn run.
pub fn log_connection_error(peer: SocketAddr, e: &io::Error) {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {}
        _ => eprintln!("echo-server: connection {peer}: {e}"),
    }
}

/// A socket timeout shows as `WouldBlock` (EAGAIN) on Linux, `TimedOut` elsewhere.
pub fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
