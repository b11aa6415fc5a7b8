//! The stop signals (`SIGINT`, `SIGTERM`), and any other a model waits for, as a self-pipe that
//! an event loop can poll.

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// A self-pipe that becomes readable when one of the registered signals arrives, plus a flag
/// that stays set once it has.
///
/// The handler only writes a byte (async-signal-safe); the model's loop sees the pipe in its
/// `poll` set or checks [`SignalPipe::raised`].
pub struct SignalPipe {
    read_end: UnixStream,
    raised: Arc<AtomicBool>,
}

impl SignalPipe {
    /// Registers `signals` (e.g. `SIGINT`, `SIGTERM`) to wake this pipe.
    pub fn register(signals: &[std::ffi::c_int]) -> io::Result<SignalPipe> {
        let (read_end, write_end) = UnixStream::pair()?;
        read_end.set_nonblocking(true)?;
        let raised = Arc::new(AtomicBool::new(false));
        for &signal in signals {
            // The pipe first: a signal that arrives between the two registrations still wakes
            // whoever polls the pipe.
            signal_hook::low_level::pipe::register(signal, write_end.try_clone()?)?;
            signal_hook::flag::register(signal, Arc::clone(&raised))?;
        }
        Ok(SignalPipe { read_end, raised })
    }

    /// The stop signals: `SIGINT` and `SIGTERM`.
    pub fn stop_signals() -> io::Result<SignalPipe> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        SignalPipe::register(&[SIGINT, SIGTERM])
    }

    /// Whether a registered signal has arrived since start-up.
    pub fn raised(&self) -> bool {
        self.raised.load(Ordering::Relaxed)
    }

    /// Empties the pipe so that a level-triggered poll stops reporting it.
    pub fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.read_end).read(&mut buf), Ok(n) if n > 0) {}
    }

    /// Blocks until a registered signal arrives (or has arrived).
    pub fn wait(&self) -> io::Result<()> {
        while !self.raised() {
            match poll(
                &mut [PollFd::new(self.read_end.as_fd(), PollFlags::POLLIN)],
                PollTimeout::NONE,
            ) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The read end, for a model that registers it with its own event loop.
    pub fn into_read_end(self) -> UnixStream {
        self.read_end
    }
}

impl AsFd for SignalPipe {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read_end.as_fd()
    }
}
