//! How connections ended: unclean endings are counted by kind and reported in one line when
//! the server exits, never with a line per connection (under load that would make stderr the
//! bottleneck, and a client that resets is not the server's fault).
//!
//! Counting is per process. Forked children hand their counts to the parent: a
//! `fork-per-client` child says how its one connection ended in its exit status
//! ([`Ending::exit_code`]), a `prefork` worker writes one byte per ending into a pipe
//! ([`ChildEndings`]) that the parent drains.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::unistd::{pipe, read, write};

/// How a connection ended other than cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client reset the connection (`ECONNRESET`, `ECONNABORTED`, `ENOTCONN`).
    Reset,
    /// A write after the client had closed (`EPIPE`).
    BrokenPipe,
    /// The client went away after its EOF while echo was still owed to it.
    EofMidMessage,
    /// Anything else.
    Other,
}

impl Ending {
    /// Every kind, in the order of the summary line.
    pub const ALL: [Ending; 4] = [
        Ending::Reset,
        Ending::BrokenPipe,
        Ending::EofMidMessage,
        Ending::Other,
    ];

    /// The kind of an error that ended a connection.
    pub fn of(e: &io::Error) -> Ending {
        match e.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected => Ending::Reset,
            io::ErrorKind::BrokenPipe => Ending::BrokenPipe,
            io::ErrorKind::UnexpectedEof => Ending::EofMidMessage,
            _ => Ending::Other,
        }
    }

    /// The name in the summary line.
    pub fn name(self) -> &'static str {
        match self {
            Ending::Reset => "reset",
            Ending::BrokenPipe => "broken pipe",
            Ending::EofMidMessage => "eof mid-message",
            Ending::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The exit status of a forked child whose one connection ended this way (0 is clean, 1 a
    /// child that could not start).
    pub fn exit_code(self) -> i32 {
        10 + self.index() as i32
    }

    /// The ending a child's exit status reports, if it reports one.
    pub fn from_exit_code(code: i32) -> Option<Ending> {
        Ending::ALL.into_iter().find(|e| e.exit_code() == code)
    }

    fn byte(self) -> u8 {
        b'0' + self.index() as u8
    }

    fn from_byte(byte: u8) -> Option<Ending> {
        Ending::ALL.into_iter().find(|e| e.byte() == byte)
    }
}

/// This process's counts, by [`Ending::index`].
static COUNTS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// Counts one unclean ending.
pub fn count(ending: Ending) {
    COUNTS[ending.index()].fetch_add(1, Ordering::Relaxed);
}

/// Counts the error that ended a connection.
pub fn ended_by(e: &io::Error) {
    count(Ending::of(e));
}

/// Counts the error that ended a connection whose client had half-closed while echo was still
/// owed to it: a client that then resets or closes left mid-message.
pub fn ended_with_echo_owed(e: &io::Error) {
    count(match Ending::of(e) {
        Ending::Reset | Ending::BrokenPipe => Ending::EofMidMessage,
        other => other,
    });
}

/// How many endings of this kind were counted.
pub fn counted(ending: Ending) -> u64 {
    COUNTS[ending.index()].load(Ordering::Relaxed)
}

/// The line a server prints at exit, e.g.
/// `echo-server: unclean endings: 3 reset, 0 broken pipe, 0 eof mid-message, 0 other`.
pub fn summary() -> String {
    summary_of(Ending::ALL.map(counted))
}

/// The summary line for these counts, in the order of [`Ending::ALL`]; `summary_of([0; 4])` is
/// what a server whose every connection ended cleanly prints.
pub fn summary_of(counts: [u64; 4]) -> String {
    let parts: Vec<String> = Ending::ALL
        .iter()
        .zip(counts)
        .map(|(e, n)| format!("{n} {}", e.name()))
        .collect();
    format!("echo-server: unclean endings: {}", parts.join(", "))
}

/// A pipe from long-lived forked workers to their parent: a worker writes one byte per
/// unclean ending, the parent drains the pipe into its own counts.
pub struct ChildEndings {
    read_end: OwnedFd,
    write_end: OwnedFd,
}

impl ChildEndings {
    /// A new pipe; both ends non-blocking, so that a worker never waits on the parent.
    pub fn new() -> nix::Result<ChildEndings> {
        let (read_end, write_end) = pipe()?;
        for end in [&read_end, &write_end] {
            fcntl(end, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        }
        Ok(ChildEndings {
            read_end,
            write_end,
        })
    }

    /// In a worker: reports the error that ended a connection. A full pipe (the parent has
    /// 64 KiB of unread endings) loses the count rather than stall the worker.
    pub fn ended_by(&self, e: &io::Error) {
        while let Err(Errno::EINTR) = write(&self.write_end, &[Ending::of(e).byte()]) {}
    }

    /// In the parent: counts every ending the workers have reported so far.
    pub fn collect(&self) {
        let mut buf = [0u8; 4096];
        loop {
            match read(&self.read_end, &mut buf) {
                Ok(0) => return,
                Ok(n) => buf[..n]
                    .iter()
                    .filter_map(|&b| Ending::from_byte(b))
                    .for_each(count),
                Err(Errno::EINTR) => {}
                // EAGAIN: drained.
                Err(_) => return,
            }
        }
    }

    /// The end the parent polls.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.read_end.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named_by_kind() {
        let kind = |k: io::ErrorKind| Ending::of(&io::Error::from(k));
        assert_eq!(kind(io::ErrorKind::ConnectionReset), Ending::Reset);
        assert_eq!(kind(io::ErrorKind::NotConnected), Ending::Reset);
        assert_eq!(kind(io::ErrorKind::BrokenPipe), Ending::BrokenPipe);
        assert_eq!(kind(io::ErrorKind::UnexpectedEof), Ending::EofMidMessage);
        assert_eq!(kind(io::ErrorKind::PermissionDenied), Ending::Other);
    }

    #[test]
    fn exit_codes_and_pipe_bytes_round_trip() {
        for e in Ending::ALL {
            assert_eq!(Ending::from_exit_code(e.exit_code()), Some(e));
            assert_eq!(Ending::from_byte(e.byte()), Some(e));
        }
        assert_eq!(Ending::from_exit_code(0), None);
        assert_eq!(Ending::from_exit_code(1), None);
    }

    #[test]
    fn workers_endings_reach_the_parents_counts() {
        let pipe = ChildEndings::new().unwrap();
        let before = counted(Ending::BrokenPipe);
        pipe.ended_by(&io::Error::from(io::ErrorKind::BrokenPipe));
        pipe.ended_by(&io::Error::from(io::ErrorKind::BrokenPipe));
        pipe.collect();
        assert_eq!(counted(Ending::BrokenPipe), before + 2);
        assert!(summary().contains(" broken pipe, "), "{}", summary());
    }
}
