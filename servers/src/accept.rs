//! Accepting connections: the poll-driven accept loop of the blocking-style models
//! ([`Acceptor`]), and which accept errors need a back-off.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::endings;
use crate::errors::would_block;
use crate::signals::SignalPipe;

/// Pause after an accept error such as `EMFILE`, so that a server out of descriptors does not
/// spin on a listener that stays readable.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// `true` for an accept error that concerns only the connection being accepted (it was reset
/// or refused before we took it): the next accept may succeed at once, no back-off needed.
pub fn accept_error_is_per_connection(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ECONNABORTED | Errno::EPROTO | Errno::EPERM | Errno::EINTR)
    )
}

/// Logs an accept error; see [`accept_error_is_per_connection`] for which need a back-off.
pub fn log_accept_error(e: &io::Error) {
    eprintln!("echo-server: accept: {e}");
}

/// What [`Acceptor::wait_for_work`] woke up for.
pub enum Wake {
    /// A new connection, already set up with `TCP_NODELAY`.
    Connection(TcpStream, SocketAddr),
    /// The extra signal pipe fired (e.g. `SIGCHLD` for a forking model); it has been drained.
    Extra,
    /// SIGINT or SIGTERM: stop accepting.
    Stop,
}

/// The accept loop of the blocking-style models: `poll` on the listener and the signal pipes,
/// so that a stop signal is seen at once while no client is being served.
pub struct Acceptor {
    listener: TcpListener,
    stop: SignalPipe,
    extra: Option<SignalPipe>,
}

impl Acceptor {
    /// Watches `listener` and the stop signals, plus `extra` when given.
    pub fn new(
        listener: TcpListener,
        stop: SignalPipe,
        extra: Option<SignalPipe>,
    ) -> io::Result<Acceptor> {
        // Non-blocking, so that a connection reset between poll and accept cannot block us.
        listener.set_nonblocking(true)?;
        Ok(Acceptor {
            listener,
            stop,
            extra,
        })
    }

    /// The stop signals, for a model that checks them while serving a client.
    pub fn stop(&self) -> &SignalPipe {
        &self.stop
    }

    /// The extra signal pipe, for a model that waits on it after the accept loop.
    pub fn extra(&self) -> Option<&SignalPipe> {
        self.extra.as_ref()
    }

    /// Blocks until there is a connection, a stop signal, or the extra signal.
    pub fn wait_for_work(&mut self) -> io::Result<Wake> {
        loop {
            if self.stop.raised() {
                return Ok(Wake::Stop);
            }
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    // On Linux an accepted socket does not inherit O_NONBLOCK: it blocks.
                    if let Err(e) = stream.set_nodelay(true) {
                        endings::ended_by(&e);
                        continue;
                    }
                    return Ok(Wake::Connection(stream, peer));
                }
                // Nothing to accept: wait below.
                Err(e) if would_block(&e) => {}
                // The client gave up before we took it; try the next one.
                Err(e) if accept_error_is_per_connection(&e) => continue,
                // Out of descriptors or memory: survive, and retry after a pause.
                Err(e) => {
                    log_accept_error(&e);
                    std::thread::sleep(ACCEPT_BACKOFF);
                    continue;
                }
            }
            if let Some(wake) = self.poll_once()? {
                return Ok(wake);
            }
        }
    }

    /// Polls until something is ready; `Some` for a signal, `None` when the listener is.
    fn poll_once(&self) -> io::Result<Option<Wake>> {
        let mut fds = vec![
            PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.stop.as_fd(), PollFlags::POLLIN),
        ];
        if let Some(extra) = &self.extra {
            fds.push(PollFd::new(extra.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            // A signal interrupted poll: its pipe says which.
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready = |fd: &PollFd| fd.any().unwrap_or(false);
        if ready(&fds[1]) || self.stop.raised() {
            return Ok(Some(Wake::Stop));
        }
        if let Some(extra) = self
            .extra
            .as_ref()
            .filter(|_| fds.get(2).is_some_and(ready))
        {
            extra.drain();
            return Ok(Some(Wake::Extra));
        }
        Ok(None)
    }
}
