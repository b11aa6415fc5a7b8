//! Naming I/O errors as mio does.

use std::io;

/// `true` for the error a non-blocking call returns when it would have to wait.
pub fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// `true` for a call cut short by a signal, to be retried.
pub fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// A socket timeout shows as `WouldBlock` (EAGAIN) on Linux, `TimedOut` elsewhere.
pub fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
