//! How connections ended, and how their TLS handshakes went: unclean endings and handshakes are
//! counted by kind and reported in one line each when the server exits, never with a line per
//! connection (under load that would make stderr the bottleneck, and a client that resets is
//! not the server's fault).
//!
//! Counting is per process. Forked children hand their counts to the parent: a
//! `fork-per-client` child or a `prefork` worker writes one byte per ending and per handshake
//! into a pipe ([`ChildEndings`]) that the parent drains.

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
    /// TLS: the client closed the TCP connection without a `close_notify` alert first.
    NoCloseNotify,
    /// TLS: no complete handshake within the handshake timeout.
    HandshakeTimeout,
    /// TLS: the handshake failed (not TLS, a fatal alert, or the client left during it).
    HandshakeFailed,
    /// `--work`: a request that does not open with `EBW1`.
    BadMagic,
    /// `--work`: a request whose length is below its header or above 1 MiB.
    BadLength,
    /// `--work`: a request that asks for more CPU or a longer wait than the caps allow.
    OverCap,
    /// `--chat`: a frame that breaks the chat protocol.
    BadFrame,
    /// `--chat`: a member too slow to take its deliveries, disconnected when its queue would
    /// pass `--chat-queue`.
    SlowMember,
    /// `--idle-timeout`: a request not completed, or none sent, within the limit.
    IdleTimeout,
    /// `--per-ip-max-conns`: refused at accept, its address already at the cap.
    OverPerIpLimit,
    /// `--block-after`: refused at accept with the blocked line, its address blocked.
    Blocked,
}

impl Ending {
    /// The kinds any connection can end with, in the order of the summary line.
    pub const ALL: [Ending; 4] = [
        Ending::Reset,
        Ending::BrokenPipe,
        Ending::EofMidMessage,
        Ending::Other,
    ];

    /// The kinds only a TLS connection ends with, in the order of the TLS summary line.
    pub const TLS: [Ending; 3] = [
        Ending::HandshakeTimeout,
        Ending::HandshakeFailed,
        Ending::NoCloseNotify,
    ];

    /// The requests `--work` refuses, each closing its connection, in the order of the work
    /// summary line.
    pub const WORK: [Ending; 3] = [Ending::BadMagic, Ending::BadLength, Ending::OverCap];

    /// What the defences closed or refused, in the order of the limits summary line.
    pub const LIMITS: [Ending; 3] = [Ending::IdleTimeout, Ending::OverPerIpLimit, Ending::Blocked];

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
            Ending::NoCloseNotify => "eof without close_notify",
            Ending::HandshakeTimeout => "handshake timeouts",
            Ending::HandshakeFailed => "handshake failures",
            Ending::BadMagic => "bad magic",
            Ending::BadLength => "length out of range",
            Ending::OverCap => "cost over the caps",
            Ending::BadFrame => "bad frames",
            Ending::SlowMember => "slow members dropped",
            Ending::IdleTimeout => "idle timeouts",
            Ending::OverPerIpLimit => "over per-address limit",
            Ending::Blocked => "blocked",
        }
    }

    /// This ending, for a connection whose client had half-closed while echo was still owed to
    /// it: a client that then resets or closes left mid-message.
    pub fn with_echo_owed(self) -> Ending {
        match self {
            Ending::Reset | Ending::BrokenPipe => Ending::EofMidMessage,
            other => other,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How a TLS handshake that completed went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// A full handshake: key exchange and a certificate signature.
    Full,
    /// A resumed session (a ticket the server issued earlier).
    Resumed,
}

impl Handshake {
    fn index(self) -> usize {
        Ending::Blocked.index() + 1 + self as usize
    }
}

/// What serving one connection leaves to count: its handshake (TLS only) and its ending, when
/// it did not end cleanly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The TLS handshake, when one completed.
    pub handshake: Option<Handshake>,
    /// The unclean ending, if any.
    pub ending: Option<Ending>,
}

impl Outcome {
    /// One byte per count, for the pipe from forked children.
    fn bytes(&self) -> impl Iterator<Item = u8> {
        let handshake = self.handshake.map(Handshake::index);
        let ending = self.ending.map(Ending::index);
        handshake.into_iter().chain(ending).map(|i| b'0' + i as u8)
    }
}

/// Slots in [`COUNTS`]: every [`Ending`], then every [`Handshake`].
const SLOTS: usize = 17;

/// This process's counts, by [`Ending::index`] and [`Handshake::index`].
static COUNTS: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];

fn count_slot(slot: usize) {
    if let Some(counter) = COUNTS.get(slot) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts one unclean ending.
pub fn count(ending: Ending) {
    count_slot(ending.index());
}

/// Counts one completed TLS handshake.
pub fn count_handshake(handshake: Handshake) {
    count_slot(handshake.index());
}

/// Counts what serving one connection left to count.
pub fn record(outcome: &Outcome) {
    outcome.bytes().for_each(count_byte);
}

fn count_byte(byte: u8) {
    count_slot(usize::from(byte.wrapping_sub(b'0')));
}

/// Counts the error that ended a connection.
pub fn ended_by(e: &io::Error) {
    count(Ending::of(e));
}

/// How many endings of this kind were counted.
pub fn counted(ending: Ending) -> u64 {
    COUNTS[ending.index()].load(Ordering::Relaxed)
}

/// How many handshakes of this kind were counted.
pub fn handshakes(handshake: Handshake) -> u64 {
    COUNTS[handshake.index()].load(Ordering::Relaxed)
}

/// The line a TLS server prints at exit before [`summary`], e.g. `echo-server: tls: 120 full
/// handshakes, 80 resumed, 0 handshake timeouts, 1 handshake failures, 0 eof without
/// close_notify`.
pub fn tls_summary() -> String {
    format!(
        "echo-server: tls: {} full handshakes, {} resumed, {}",
        handshakes(Handshake::Full),
        handshakes(Handshake::Resumed),
        each_counted(&Ending::TLS)
    )
}

/// The line a `--work` server prints at exit before [`summary`]: the requests it refused, e.g.
/// `echo-server: work: 1 bad magic, 0 length out of range, 2 cost over the caps`.
pub fn work_summary() -> String {
    format!("echo-server: work: {}", each_counted(&Ending::WORK))
}

/// The line a server with defences prints at exit before [`summary`], e.g.
/// `echo-server: limits: 3 idle timeouts, 60 over per-address limit, 1800 blocked`.
pub fn limits_summary() -> String {
    format!("echo-server: limits: {}", each_counted(&Ending::LIMITS))
}

/// `kinds` with their counts, as the exit lines list them: `1 bad magic, 0 length out of range`.
fn each_counted(kinds: &[Ending]) -> String {
    let counts: Vec<String> = kinds
        .iter()
        .map(|&e| format!("{} {}", counted(e), e.name()))
        .collect();
    counts.join(", ")
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

/// A pipe from forked children to their parent: a child writes one byte per unclean ending and
/// per TLS handshake, the parent drains the pipe into its own counts.
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

    /// In a child: reports what serving one connection left to count. A full pipe (the parent
    /// has 64 KiB of unread counts) loses them rather than stall the child.
    pub fn report(&self, outcome: &Outcome) {
        let bytes: Vec<u8> = outcome.bytes().collect();
        if !bytes.is_empty() {
            while let Err(Errno::EINTR) = write(&self.write_end, &bytes) {}
        }
    }

    /// In the parent: counts every ending the workers have reported so far.
    pub fn collect(&self) {
        let mut buf = [0u8; 4096];
        loop {
            match read(&self.read_end, &mut buf) {
                Ok(0) => return,
                Ok(n) => buf[..n].iter().copied().for_each(count_byte),
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
    fn every_count_has_its_own_slot() {
        let mut slots: Vec<usize> = Ending::ALL
            .iter()
            .chain(&Ending::TLS)
            .chain(&Ending::WORK)
            .chain(&[Ending::BadFrame, Ending::SlowMember])
            .chain(&Ending::LIMITS)
            .map(|e| e.index())
            .collect();
        slots.extend([Handshake::Full.index(), Handshake::Resumed.index()]);
        slots.sort_unstable();
        slots.dedup();
        assert_eq!(slots, (0..SLOTS).collect::<Vec<_>>());
    }

    #[test]
    fn childrens_endings_and_handshakes_reach_the_parents_counts() {
        let pipe = ChildEndings::new().unwrap();
        let (pipes, resumed) = (counted(Ending::BrokenPipe), handshakes(Handshake::Resumed));
        let broken = Outcome {
            handshake: None,
            ending: Some(Ending::BrokenPipe),
        };
        pipe.report(&broken);
        pipe.report(&broken);
        pipe.report(&Outcome {
            handshake: Some(Handshake::Resumed),
            ending: None,
        });
        pipe.collect();
        assert_eq!(counted(Ending::BrokenPipe), pipes + 2);
        assert_eq!(handshakes(Handshake::Resumed), resumed + 1);
        assert!(summary().contains(" broken pipe, "), "{}", summary());
        assert!(tls_summary().contains(" resumed, "), "{}", tls_summary());
    }
}
