//! What the `udp-` models share: binding the socket, receiving a datagram with the address it
//! was sent to, replying from that address, the rules every model follows, and the counters
//! printed in one line at exit.
//!
//! The rules (RFC 862 over UDP: each datagram goes back to its sender):
//! - A datagram of up to [`MAX_DATAGRAM`] bytes is echoed whole; the receive buffer is one
//!   byte larger, so a truncated receive (`MSG_TRUNC`) can only be a datagram too large for
//!   IPv4. It is counted and not echoed: half an echo is not an echo.
//! - A datagram from a source port below [`LOWEST_REPLY_PORT`], or from one of the
//!   [`REFLECTOR_PORTS`] above it (SSDP, mDNS, memcached), is never echoed: those are services,
//!   and echoing to one is how two servers are made to loop or a spoofed request is reflected.
//! - A datagram from the server's own address and port is never echoed: one spoofed to come
//!   from the server itself would otherwise be echoed to itself for ever. On a wildcard socket
//!   its own addresses are the loopback ones and the one the datagram was sent to.
//! - A datagram identical to the last echo this server sent to its source, within
//!   [`LOOP_WINDOW`] of it, is dropped and counted: it is that echo coming back from another
//!   echo server, and answering it would keep the two in an endless ping-pong (one spoofed
//!   datagram between two `udp-blocking`s made 30,485 in 0.3 s). A loop comes back in
//!   microseconds; a person repeating a line, or a client whose datagrams carry sequence
//!   numbers, never sends the same bytes again that fast, so no real client is throttled.
//!   Echoes are remembered in a fixed table of [`LOOP_SLOTS`] entries shared by every thread
//!   (a hash of the source and of the bytes, and when): memory stays bounded whatever the
//!   number of sources, and a source whose entry another overwrote is caught on a later round.
//! - Replies leave from the address the client sent to: a socket bound to one address does so
//!   by itself; one bound to a wildcard asks for `IP_PKTINFO` (`IPV6_RECVPKTINFO`) and sends
//!   the reply with the received address as its source.
//! - When the socket's send buffer is full, a non-blocking model drops the reply and counts it
//!   (`dropped on send`): UDP may lose a datagram, and waiting would stop the loop from
//!   receiving for everyone else. A blocking model waits in `sendmsg`, as blocking I/O does.
//!   `udp-io-uring` waits too, holding that buffer until the send completes.
//! - Both socket buffers are asked for [`SOCKET_BUF`] bytes (the kernel caps them at
//!   `net.core.rmem_max` and `wmem_max`).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrStorage,
};
use nix::time::{clock_gettime, ClockId};
use socket2::{Domain, Protocol, Socket, Type};

use crate::errors;
use crate::signals::SignalPipe;

/// The largest UDP payload over IPv4: 65,535 − 8 (UDP header) − 20 (IP header).
pub const MAX_DATAGRAM: usize = 65_507;

/// Receive buffer of every model: one byte more than any datagram it echoes.
pub const RECV_BUF: usize = 65_536;

/// `SO_RCVBUF` and `SO_SNDBUF` asked for, bytes.
pub const SOCKET_BUF: usize = 4 << 20;

/// Datagrams from source ports below this are never echoed.
pub const LOWEST_REPLY_PORT: u16 = 1024;

/// The well-known UDP services that answer whatever reaches them, and so reflect and amplify
/// spoofed traffic: echo, daytime, qotd, chargen, time, DNS, NTP, SNMP, SSDP, mDNS, memcached.
/// Never answered; those below [`LOWEST_REPLY_PORT`] are refused with every other port there.
pub const REFLECTOR_PORTS: [u16; 11] = [7, 13, 17, 19, 37, 53, 123, 161, 1900, 5353, 11211];

/// How long an echo is remembered: the same bytes back from its destination within this long
/// are that echo coming round a loop.
pub const LOOP_WINDOW: Duration = Duration::from_millis(10);

/// Entries of the table of echoes sent (8 bytes each).
pub const LOOP_SLOTS: usize = 4096;

/// Checks `--addr` for a UDP model: a non-loopback address needs `--allow-remote`, since a
/// UDP echo server answers whoever a datagram claims to come from.
pub fn check_addr(addr: SocketAddr, allow_remote: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || allow_remote {
        return Ok(());
    }
    Err(format!(
        "--addr {addr} is not a loopback address: a UDP echo server answers any source \
         address a datagram claims, so it can be used to reflect traffic; pass --allow-remote \
         to bind it anyway"
    ))
}

/// Binds a UDP socket on `addr` with both buffers asked for [`SOCKET_BUF`]; with
/// `reuse_port`, `SO_REUSEPORT` so that sibling sockets can bind the same address; on a
/// wildcard address, with the received destination address reported ([`wildcard`]).
pub fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_recv_buffer_size(SOCKET_BUF)?;
    socket.set_send_buffer_size(SOCKET_BUF)?;
    socket.bind(&addr.into())?;
    let socket: UdpSocket = socket.into();
    if wildcard(&socket) {
        match addr {
            SocketAddr::V4(_) => setsockopt(&socket, sockopt::Ipv4PacketInfo, &true)?,
            SocketAddr::V6(_) => setsockopt(&socket, sockopt::Ipv6RecvPacketInfo, &true)?,
        }
    }
    Ok(socket)
}

/// Whether `socket` is bound to a wildcard address, so that a reply must name its source.
pub fn wildcard(socket: &UdpSocket) -> bool {
    socket.local_addr().is_ok_and(|a| a.ip().is_unspecified())
}

/// One received datagram.
#[derive(Debug, Clone, Copy)]
pub struct Datagram {
    /// Bytes received (at most the buffer's length).
    pub len: usize,
    /// Who sent it.
    pub from: SocketAddr,
    /// The local address it was sent to, on a wildcard socket.
    pub to: Option<IpAddr>,
    /// Whether it was larger than the buffer (`MSG_TRUNC`).
    pub truncated: bool,
}

/// Receives one datagram into `buf`, with its destination address on a `wildcard` socket.
pub fn recv(socket: &impl AsFd, buf: &mut [u8], wildcard: bool) -> io::Result<Datagram> {
    // Room for the destination address only where it is asked for: no allocation per datagram
    // on a socket bound to one address (`Vec::new` allocates nothing).
    let mut space = if wildcard {
        nix::cmsg_space!(nix::libc::in6_pktinfo)
    } else {
        Vec::new()
    };
    let mut iov = [IoSliceMut::new(buf)];
    let control = wildcard.then_some(&mut space[..]);
    let fd = socket.as_fd().as_raw_fd();
    let msg = recvmsg::<SockaddrStorage>(fd, &mut iov, control, MsgFlags::empty())?;
    let from = msg
        .address
        .and_then(|a| socket_addr(&a))
        .ok_or_else(|| io::Error::other("a datagram without a source address"))?;
    let to = if wildcard {
        destination(msg.cmsgs()?)
    } else {
        None
    };
    Ok(Datagram {
        len: msg.bytes,
        from,
        to,
        truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
    })
}

/// The local address a datagram was sent to, from its `IP_PKTINFO` or `IPV6_PKTINFO`.
pub fn destination(cmsgs: impl Iterator<Item = ControlMessageOwned>) -> Option<IpAddr> {
    cmsgs.fold(None, |to, cmsg| match cmsg {
        ControlMessageOwned::Ipv4PacketInfo(info) => {
            Some(IpAddr::V4(u32::from_be(info.ipi_addr.s_addr).into()))
        }
        ControlMessageOwned::Ipv6PacketInfo(info) => {
            Some(IpAddr::V6(info.ipi6_addr.s6_addr.into()))
        }
        _ => to,
    })
}

/// The loop of the readiness models: makes `socket` non-blocking, waits in a mio `Poll` on it
/// and on the stop signals' pipe, and calls `readable` at each edge of the socket until a stop
/// signal arrives. `readable` must take everything the socket holds (the edge does not come
/// again for what is left).
pub fn serve_readable(
    socket: &UdpSocket,
    stop: SignalPipe,
    mut readable: impl FnMut(&UdpSocket),
) -> anyhow::Result<()> {
    const SOCKET: Token = Token(0);
    const STOP: Token = Token(1);
    socket
        .set_nonblocking(true)
        .context("cannot make the socket non-blocking")?;
    let mut poll = Poll::new().context("cannot create the poll")?;
    let fd = socket.as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&fd), SOCKET, Interest::READABLE)
        .context("cannot register the socket")?;
    let mut stop = mio::net::UnixStream::from_std(stop.into_read_end());
    poll.registry()
        .register(&mut stop, STOP, Interest::READABLE)
        .context("cannot register the signal pipe")?;
    let mut events = Events::with_capacity(8);
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if errors::interrupted(&e) => continue,
            Err(e) => return Err(e).context("poll failed"),
        }
        for event in &events {
            match event.token() {
                STOP => return Ok(()),
                _ => readable(socket),
            }
        }
    }
}

/// The standard address of a socket address from the kernel, if it is IPv4 or IPv6.
pub fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

/// Sends `data` back to `dg.from`, from `dg.to` when the socket is a wildcard.
pub fn reply(socket: &impl AsFd, data: &[u8], dg: &Datagram) -> io::Result<usize> {
    let fd = socket.as_fd().as_raw_fd();
    let iov = [IoSlice::new(data)];
    let dest = SockaddrStorage::from(dg.from);
    let flags = MsgFlags::empty();
    let sent = match dg.to {
        None => sendmsg(fd, &iov, &[], flags, Some(&dest)),
        Some(IpAddr::V4(ip)) => {
            let info = pktinfo_v4(ip);
            let control = [ControlMessage::Ipv4PacketInfo(&info)];
            sendmsg(fd, &iov, &control, flags, Some(&dest))
        }
        Some(IpAddr::V6(ip)) => {
            let info = pktinfo_v6(ip);
            let control = [ControlMessage::Ipv6PacketInfo(&info)];
            sendmsg(fd, &iov, &control, flags, Some(&dest))
        }
    };
    Ok(sent?)
}

/// How often a blocking receive wakes to check for a stop signal while no datagram comes.
pub const STOP_TICK: Duration = Duration::from_millis(200);

/// The loop of the blocking models: receive a datagram, echo it, until `stopped`. Errors end
/// nothing: one belongs to one datagram (or to an earlier reply's ICMP error).
pub fn serve_blocking(socket: &UdpSocket, stopped: &dyn Fn() -> bool) -> io::Result<()> {
    socket.set_read_timeout(Some(STOP_TICK))?;
    let rules = Rules::of(socket)?;
    let wildcard = wildcard(socket);
    let mut buf = vec![0u8; RECV_BUF];
    while !stopped() {
        match recv(socket, &mut buf, wildcard) {
            Ok(dg) if rules.to_echo(&dg, &buf[..dg.len]) => {
                replied(&reply(socket, &buf[..dg.len], &dg))
            }
            Ok(_) => {}
            // Nothing came within the tick: look at the stop flag again.
            Err(e) if errors::timed_out(&e) || errors::interrupted(&e) => {}
            Err(e) => note_recv_error(&e),
        }
    }
    Ok(())
}

/// `IP_PKTINFO` asking for `ip` as the source address.
pub fn pktinfo_v4(ip: std::net::Ipv4Addr) -> nix::libc::in_pktinfo {
    nix::libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: nix::libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        ipi_addr: nix::libc::in_addr { s_addr: 0 },
    }
}

/// `IPV6_PKTINFO` asking for `ip` as the source address.
pub fn pktinfo_v6(ip: std::net::Ipv6Addr) -> nix::libc::in6_pktinfo {
    nix::libc::in6_pktinfo {
        ipi6_addr: nix::libc::in6_addr {
            s6_addr: ip.octets(),
        },
        ipi6_ifindex: 0,
    }
}

/// What the models did, for the one line at exit; shared by all their threads.
static RECEIVED: AtomicU64 = AtomicU64::new(0);
static ECHOED: AtomicU64 = AtomicU64::new(0);
static TRUNCATED: AtomicU64 = AtomicU64::new(0);
static LOW_PORT: AtomicU64 = AtomicU64::new(0);
static REFLECTOR_PORT: AtomicU64 = AtomicU64::new(0);
static FROM_ITSELF: AtomicU64 = AtomicU64::new(0);
static LOOP_REPEATS: AtomicU64 = AtomicU64::new(0);
static DROPPED_ON_SEND: AtomicU64 = AtomicU64::new(0);
static SEND_ERRORS: AtomicU64 = AtomicU64::new(0);
static RECV_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Counts a failed receive other than "nothing to read".
pub fn note_recv_error(_e: &io::Error) {
    RECV_ERRORS.fetch_add(1, Ordering::Relaxed);
}

/// What becomes of a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Echoed.
    Echo,
    /// Larger than the buffer: not echoed.
    Truncated,
    /// From a port below [`LOWEST_REPLY_PORT`].
    ServicePort,
    /// From one of the [`REFLECTOR_PORTS`] above it.
    ReflectorPort,
    /// From the server's own address and port.
    FromItself,
    /// The last echo sent to its source, back within [`LOOP_WINDOW`].
    LoopRepeat,
}

/// The rules of one socket (see the module's documentation).
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// The address the socket is bound to.
    local: SocketAddr,
}

impl Rules {
    /// The rules of a bound `socket`.
    pub fn of(socket: &UdpSocket) -> io::Result<Rules> {
        Ok(Rules {
            local: socket.local_addr()?,
        })
    }

    /// Counts a received datagram, whose bytes are `payload`, and says whether to echo it; an
    /// echo it allows is remembered as sent.
    pub fn to_echo(&self, dg: &Datagram, payload: &[u8]) -> bool {
        let verdict = self.judge(dg, payload, &SENT, micros());
        RECEIVED.fetch_add(1, Ordering::Relaxed);
        let counter = match verdict {
            Verdict::Echo => return true,
            Verdict::Truncated => &TRUNCATED,
            Verdict::ServicePort => &LOW_PORT,
            Verdict::ReflectorPort => &REFLECTOR_PORT,
            Verdict::FromItself => &FROM_ITSELF,
            Verdict::LoopRepeat => &LOOP_REPEATS,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// The verdict on a datagram received `now` (µs), with `sent` the echoes remembered.
    fn judge(&self, dg: &Datagram, payload: &[u8], sent: &SentEchoes, now: u32) -> Verdict {
        let port = dg.from.port();
        if dg.truncated {
            Verdict::Truncated
        } else if port < LOWEST_REPLY_PORT {
            Verdict::ServicePort
        } else if REFLECTOR_PORTS.contains(&port) {
            Verdict::ReflectorPort
        } else if self.is_own(dg) {
            Verdict::FromItself
        } else if !sent.remember(dg.from, payload, now) {
            Verdict::LoopRepeat
        } else {
            Verdict::Echo
        }
    }

    /// Whether a datagram comes from this socket's own address and port.
    fn is_own(&self, dg: &Datagram) -> bool {
        let (from, local) = (dg.from.ip(), self.local.ip());
        dg.from.port() == self.local.port()
            && (from == local
                || (local.is_unspecified() && (from.is_loopback() || Some(from) == dg.to)))
    }
}

/// The echoes sent lately, one entry per slot: a hash of the destination and the bytes in
/// the high half, the time sent (µs, wrapping) in the low half.
struct SentEchoes {
    slots: [AtomicU64; LOOP_SLOTS],
}

/// The echoes every thread of this server sent.
static SENT: SentEchoes = SentEchoes::new();

impl SentEchoes {
    const fn new() -> SentEchoes {
        SentEchoes {
            slots: [const { AtomicU64::new(0) }; LOOP_SLOTS],
        }
    }

    /// Remembers an echo of `payload` to `to` at `now`, unless it is the echo last sent there
    /// within [`LOOP_WINDOW`]: then it is a loop's, and this says false.
    fn remember(&self, to: SocketAddr, payload: &[u8], now: u32) -> bool {
        let place = address_hash(to);
        let slot = &self.slots[place as usize % LOOP_SLOTS];
        // Never 0, so that an empty slot matches nothing.
        let key = (bytes_hash(place, payload) >> 32) as u32 | 1;
        let last = slot.load(Ordering::Relaxed);
        let window = LOOP_WINDOW.as_micros() as u32;
        if (last >> 32) as u32 == key && now.wrapping_sub(last as u32) < window {
            return false;
        }
        slot.store(u64::from(key) << 32 | u64::from(now), Ordering::Relaxed);
        true
    }
}

/// Microseconds of the kernel's coarse monotonic clock, wrapping every 71 minutes (only
/// differences count). Coarse: it moves in steps of a scheduler tick (1 to 4 ms), so the
/// window is 10 ms give or take a tick; it costs a third of a precise reading, and it is read
/// for every datagram.
fn micros() -> u32 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE) {
        Ok(t) => (t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000) as u32,
        // Linux has had this clock since 2.6.32: not reached.
        Err(_) => 0,
    }
}

/// One step of the tables' hash (a multiply-rotate mix; not for adversaries, for equality).
fn mix(hash: u64, word: u64) -> u64 {
    (hash ^ word)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(29)
}

fn address_hash(a: SocketAddr) -> u64 {
    let bits = match a.ip() {
        IpAddr::V4(ip) => u128::from(u32::from(ip)),
        IpAddr::V6(ip) => u128::from(ip),
    };
    let hash = mix(mix(1, bits as u64), (bits >> 64) as u64);
    mix(hash, u64::from(a.port()))
}

fn bytes_hash(seed: u64, bytes: &[u8]) -> u64 {
    let mut hash = mix(seed, bytes.len() as u64);
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        hash = mix(hash, u64::from_le_bytes(w));
    }
    let mut rest = [0u8; 8];
    rest[..words.remainder().len()].copy_from_slice(words.remainder());
    // A last multiply spreads the final word into the high half, which the key keeps.
    mix(hash, u64::from_le_bytes(rest)).wrapping_mul(0xD6E8_FEB8_6659_FD93)
}

/// Counts how a reply went: sent, dropped because the send buffer was full, or failed.
pub fn replied(outcome: &io::Result<usize>) {
    let counter = match outcome {
        Ok(_) => &ECHOED,
        Err(e) if crate::errors::would_block(e) => &DROPPED_ON_SEND,
        Err(_) => &SEND_ERRORS,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Counts `n` replies sent at once (`sendmmsg`, io_uring).
pub fn echoed(n: usize) {
    ECHOED.fetch_add(n as u64, Ordering::Relaxed);
}

/// Counts `n` replies dropped because the send buffer was full.
pub fn dropped_on_send(n: usize) {
    DROPPED_ON_SEND.fetch_add(n as u64, Ordering::Relaxed);
}

/// The line printed at exit: what was received and what became of it.
pub fn summary() -> String {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    format!(
        "udp: {} datagrams received, {} echoed, {} truncated, {} from ports below {}, \
         {} from reflector ports, {} from itself, \
         {} loop repeats dropped, \
         {} dropped on send (buffer full), {} send errors, {} receive errors",
        get(&RECEIVED),
        get(&ECHOED),
        get(&TRUNCATED),
        get(&LOW_PORT),
        LOWEST_REPLY_PORT,
        get(&REFLECTOR_PORT),
        get(&FROM_ITSELF),
        get(&LOOP_REPEATS),
        get(&DROPPED_ON_SEND),
        get(&SEND_ERRORS),
        get(&RECV_ERRORS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(from: &str, truncated: bool) -> Datagram {
        Datagram {
            len: 1,
            from: from.parse().unwrap(),
            to: None,
            truncated,
        }
    }

    fn rules(local: &str) -> Rules {
        Rules {
            local: local.parse().unwrap(),
        }
    }

    #[test]
    fn services_reflectors_and_truncated_datagrams_are_not_echoed_and_are_counted() {
        let rules = rules("127.0.0.1:7007");
        let sent = SentEchoes::new();
        let judge =
            |from: &str, truncated: bool| rules.judge(&datagram(from, truncated), b"x", &sent, 0);
        assert_eq!(judge("127.0.0.1:7", false), Verdict::ServicePort);
        assert_eq!(judge("127.0.0.1:1023", false), Verdict::ServicePort);
        for port in [1900, 5353, 11211] {
            let from = format!("127.0.0.1:{port}");
            assert_eq!(judge(&from, false), Verdict::ReflectorPort, "{port}");
        }
        assert_eq!(judge("127.0.0.1:40000", true), Verdict::Truncated);
        assert_eq!(judge("127.0.0.1:1024", false), Verdict::Echo);
        // The counters of the exit line (the only test that moves them).
        for (from, truncated) in [("127.0.0.1:7", false), ("127.0.0.1:5353", false)] {
            assert!(!rules.to_echo(&datagram(from, truncated), b"y"));
        }
        assert!(!rules.to_echo(&datagram("127.0.0.1:40000", true), b"y"));
        assert!(!rules.to_echo(&datagram("127.0.0.1:7007", false), b"y"));
        assert!(rules.to_echo(&datagram("127.0.0.1:40001", false), b"y"));
        assert!(!rules.to_echo(&datagram("127.0.0.1:40001", false), b"y"));
        let line = summary();
        for said in [
            "6 datagrams received",
            "1 truncated",
            "1 from ports below 1024",
            "1 from reflector ports",
            "1 from itself",
            "1 loop repeats dropped",
        ] {
            assert!(line.contains(said), "{said}: {line}");
        }
    }

    #[test]
    fn a_datagram_from_the_servers_own_address_is_not_echoed() {
        let sent = SentEchoes::new();
        let bound = rules("127.0.0.1:7007");
        let judge = |rules: &Rules, dg: &Datagram| rules.judge(dg, b"x", &sent, 0);
        assert_eq!(
            judge(&bound, &datagram("127.0.0.1:7007", false)),
            Verdict::FromItself
        );
        // Another address with the same port is another socket.
        assert_eq!(
            judge(&bound, &datagram("127.0.0.2:7007", false)),
            Verdict::Echo
        );
        let wildcard = rules("0.0.0.0:7007");
        assert_eq!(
            judge(&wildcard, &datagram("127.0.0.9:7007", false)),
            Verdict::FromItself
        );
        let mut to_itself = datagram("192.0.2.1:7007", false);
        to_itself.to = Some("192.0.2.1".parse().unwrap());
        assert_eq!(judge(&wildcard, &to_itself), Verdict::FromItself);
        to_itself.to = Some("192.0.2.2".parse().unwrap());
        assert_eq!(judge(&wildcard, &to_itself), Verdict::Echo);
    }

    #[test]
    fn the_same_bytes_back_within_the_loop_window_are_a_loop_and_later_are_a_client() {
        let rules = rules("127.0.0.1:7007");
        let sent = SentEchoes::new();
        let peer = datagram("127.0.0.1:40000", false);
        let window = LOOP_WINDOW.as_micros() as u32;
        let judge = |bytes: &[u8], now| rules.judge(&peer, bytes, &sent, now);
        assert_eq!(judge(b"ping", 1_000), Verdict::Echo);
        // The echo back from another echo server, microseconds later: dropped.
        assert_eq!(judge(b"ping", 1_050), Verdict::LoopRepeat);
        // Other bytes, or another source, are other datagrams.
        assert_eq!(judge(b"pong", 1_060), Verdict::Echo);
        let other = datagram("127.0.0.1:40001", false);
        assert_eq!(rules.judge(&other, b"pong", &sent, 1_070), Verdict::Echo);
        // The same line again after the window (a person, a retry): echoed.
        assert_eq!(judge(b"pong", 1_060 + window), Verdict::Echo);
        // The clock wrapping around changes nothing.
        assert_eq!(judge(b"wrap", u32::MAX - 10), Verdict::Echo);
        assert_eq!(judge(b"wrap", 20), Verdict::LoopRepeat);
        assert_eq!(judge(b"wrap", 20 + window + 10), Verdict::Echo);
    }

    #[test]
    fn only_loopback_binds_without_allow_remote() {
        let addr = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(check_addr(addr("127.0.0.1:0"), false).is_ok());
        assert!(check_addr(addr("[::1]:0"), false).is_ok());
        let refused = check_addr(addr("0.0.0.0:7"), false).unwrap_err();
        assert!(refused.contains("--allow-remote"), "{refused}");
        assert!(check_addr(addr("0.0.0.0:7"), true).is_ok());
    }

    #[test]
    fn a_wildcard_socket_replies_from_the_address_it_was_sent_to() {
        let server = bind("0.0.0.0:0".parse().unwrap(), false).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // 127.0.0.2 is loopback too: the reply must come from it, not from 127.0.0.1.
        client.send_to(b"hi", ("127.0.0.2", port)).unwrap();
        let mut buf = [0u8; 16];
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let dg = recv(&server, &mut buf, true).unwrap();
        assert_eq!(dg.to, Some("127.0.0.2".parse().unwrap()));
        reply(&server, &buf[..dg.len], &dg).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"hi");
        assert_eq!(from, SocketAddr::from(([127, 0, 0, 2], port)));
    }
}
