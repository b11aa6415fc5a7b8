//! The blocking echo loop of the thread and process models, and the bounds on what any model
//! buffers per connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

use crate::errors::{interrupted, timed_out};

/// Bytes read from a socket at once by the models that own one buffer per connection.
pub const READ_BUF: usize = 16 * 1024;

/// Upper bound on echo bytes a model may hold for one connection before it stops reading from
/// it. A client that sends but never reads is thereby back-pressured through TCP.
pub const MAX_PENDING: usize = 64 * 1024;

/// A stream whose write side can be closed while its read side stays open: TCP's
/// `shutdown(Write)`, or for TLS a `close_notify` and then that.
pub trait HalfClose {
    /// Closes the write side.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl HalfClose for TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl HalfClose for mio::net::TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl HalfClose for mio::net::UnixStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

/// Echoes everything the peer sends, in order, until it half-closes; then closes our side.
///
/// Blocking I/O with one buffer: a chunk is written back whole before the next read, so a
/// client that never reads fills the socket buffers and is back-pressured by TCP. `stop` is
/// asked between chunks and whenever a read or write times out (a model may set
/// `SO_RCVTIMEO`/`SO_SNDTIMEO` as a tick to notice a stop signal while a client is idle).
pub fn echo_blocking<S>(stream: &mut S, stop: &dyn Fn() -> bool) -> io::Result<()>
where
    S: Read + Write + HalfClose,
{
    let mut buf = [0u8; READ_BUF];
    while !stop() {
        let n = match stream.read(&mut buf) {
            // Half-close: every byte read so far has been written back.
            Ok(0) => return stream.shutdown_write(),
            Ok(n) => n,
            // A signal, or the tick of a read timeout: ask `stop` again.
            Err(e) if interrupted(&e) || timed_out(&e) => continue,
            Err(e) => return Err(e),
        };
        write_all_until(stream, &buf[..n], stop)?;
    }
    Ok(())
}

/// `write_all`, except that a write timeout asks `stop` instead of failing (a plain
/// `write_all` would lose count of what a partial write already sent).
pub fn write_all_until(
    stream: &mut impl Write,
    mut buf: &[u8],
    stop: &dyn Fn() -> bool,
) -> io::Result<()> {
    while !buf.is_empty() {
        match stream.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if interrupted(&e) => {}
            // The peer is not reading; the caller sees `stop` on its next turn.
            Err(e) if timed_out(&e) && stop() => return Ok(()),
            Err(e) if timed_out(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The environment variable of [`test_spin`].
pub const TEST_SPIN_ENV: &str = "ECHO_SERVER_TEST_SPIN_NS";

/// A test hook, not a feature: with `ECHO_SERVER_TEST_SPIN_NS=N` in its environment, the
/// `mio` model busy-waits N ns before each echo, a stand-in for a change that costs CPU per
/// message (echobench's tests check that `echobench diff` calls it a regression). Unset, it
/// costs one relaxed load per echo.
pub fn test_spin() {
    static SPIN_NS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let ns = *SPIN_NS.get_or_init(|| {
        std::env::var(TEST_SPIN_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    });
    if ns > 0 {
        let start = std::time::Instant::now();
        let spin = std::time::Duration::from_nanos(ns);
        while start.elapsed() < spin {
            std::hint::spin_loop();
        }
    }
}
