//! The parent as broker of the accept-time defences, for a model whose worker processes accept
//! (`prefork`): each worker holds one end of a `SOCK_SEQPACKET` pair ([`Link`]) and asks the
//! parent, which holds the one [`Gate`] and the other end ([`Desk`]), before it serves a
//! connection; it tells the parent when the connection closes. A worker that dies has its
//! places given back when the parent reaps it. Messages are one tag byte and an address in 16
//! bytes (IPv4 mapped into IPv6); answers are one byte.

use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

use super::{Gate, Refusal};

const ADMIT: u8 = b'A';
const LEAVE: u8 = b'L';
const ADMITTED: u8 = b'a';
const OVER_LIMIT: u8 = b'o';
const BLOCKED: u8 = b'b';

/// A message: its tag, then the address.
type Message = [u8; 17];

fn message(tag: u8, ip: IpAddr) -> Message {
    let v6 = match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    };
    let mut m = [0u8; 17];
    m[0] = tag;
    m[1..].copy_from_slice(&v6.octets());
    m
}

fn address(m: &Message) -> IpAddr {
    let octets: [u8; 16] = m[1..].try_into().unwrap_or([0; 16]);
    Ipv6Addr::from(octets).to_canonical()
}

/// A worker's end: asks the parent before serving a connection.
#[derive(Debug)]
pub struct Link(OwnedFd);

/// The parent's end of one worker's [`Link`], with the addresses of that worker's live
/// connections.
#[derive(Debug)]
pub struct Desk {
    fd: OwnedFd,
    live: Vec<IpAddr>,
}

/// A new pair: the parent keeps the [`Desk`], the worker forked next takes the [`Link`] (and
/// the parent drops its copy of it once the worker is forked).
pub fn pair() -> nix::Result<(Desk, Link)> {
    let (desk, link) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((
        Desk {
            fd: desk,
            live: Vec::new(),
        },
        Link(link),
    ))
}

impl Link {
    /// Asks whether a connection from `ip` may be served; a parent that cannot answer (it is
    /// going away, and this worker with it) admits it.
    pub fn admit(&self, ip: IpAddr) -> Result<(), Refusal> {
        let fd = self.0.as_raw_fd();
        if send_all(fd, &message(ADMIT, ip)).is_err() {
            return Ok(());
        }
        let mut answer = [0u8; 1];
        loop {
            match recv(fd, &mut answer, MsgFlags::empty()) {
                Ok(1) => break,
                Err(Errno::EINTR) => {}
                _ => return Ok(()),
            }
        }
        match answer[0] {
            OVER_LIMIT => Err(Refusal::OverLimit),
            BLOCKED => Err(Refusal::Blocked),
            _ => Ok(()),
        }
    }

    /// A connection from `ip` that [`Link::admit`] admitted has closed.
    pub fn leave(&self, ip: IpAddr) {
        let _ = send_all(self.0.as_raw_fd(), &message(LEAVE, ip));
    }
}

fn send_all(fd: i32, m: &Message) -> nix::Result<()> {
    loop {
        match send(fd, m, MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

impl Desk {
    /// Answers every question the worker has sent so far; false once the worker is gone.
    pub fn serve(&mut self, gate: &Gate) -> bool {
        let fd = self.fd.as_raw_fd();
        let mut m: Message = [0; 17];
        loop {
            match recv(fd, &mut m, MsgFlags::MSG_DONTWAIT) {
                Ok(17) => {}
                // EOF: the worker's end is closed.
                Ok(0) => return false,
                // A message of another size is not ours to answer.
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return true,
                Err(_) => return false,
            }
            let ip = address(&m);
            match m[0] {
                ADMIT => {
                    let answer = match gate.decide(ip, Instant::now()) {
                        Ok(()) => {
                            self.live.push(ip);
                            ADMITTED
                        }
                        Err(Refusal::OverLimit) => OVER_LIMIT,
                        Err(Refusal::Blocked) => BLOCKED,
                    };
                    if send(
                        fd,
                        &[answer],
                        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                    )
                    .is_err()
                    {
                        return false;
                    }
                }
                LEAVE => {
                    if let Some(at) = self.live.iter().position(|&l| l == ip) {
                        self.live.swap_remove(at);
                        gate.leave(ip);
                    }
                }
                _ => {}
            }
        }
    }

    /// The worker is gone: its live connections went with it.
    pub fn release(self, gate: &Gate) {
        for ip in self.live {
            gate.leave(ip);
        }
    }
}

impl AsFd for Desk {
    /// The end the parent polls: readable when the worker has asked something.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defence::Defences;
    use std::net::Ipv4Addr;

    #[test]
    fn a_worker_asks_and_the_parent_answers_from_one_gate() {
        let gate = Gate::new(Defences {
            per_ip_max_conns: Some(1),
            ..Defences::default()
        });
        let (mut desk, link) = pair().unwrap();
        let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        let asker = std::thread::spawn(move || {
            let first = link.admit(ip);
            let second = link.admit(ip);
            link.leave(ip);
            let third = link.admit(ip);
            (first, second, third)
        });
        let mut answered = 0;
        while !asker.is_finished() && answered < 1_000 {
            desk.serve(&gate);
            std::thread::sleep(std::time::Duration::from_millis(1));
            answered += 1;
        }
        let (first, second, third) = asker.join().unwrap();
        assert_eq!(first, Ok(()));
        assert_eq!(second, Err(Refusal::OverLimit));
        assert_eq!(third, Ok(()));
        assert_eq!(desk.live, vec![ip]);
        desk.release(&gate);
        assert!(gate.decide(ip, Instant::now()).is_ok());
    }
}
