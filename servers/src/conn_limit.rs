//! What every accepted connection passes before it is served, shared by the threads or tasks
//! that serve connections: the accept-time defences ([`Gate`]: the cap per address and the IP
//! blocker) and the `--max-conns` cap.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::ServerConfig;
use crate::defence::{turn_away, Gate, Pass};

/// A count of live connections with a cap, and the accept-time defences, shared by the
/// threads or tasks that serve them.
#[derive(Clone)]
pub struct ConnLimit {
    live: Arc<AtomicUsize>,
    max: usize,
    /// `None` without accept-time defences: nothing to ask, not even the peer's address.
    gate: Option<Arc<Gate>>,
}

/// Holds one slot of a [`ConnLimit`] (and the connection's place under the cap per address);
/// both are freed when this is dropped.
pub struct ConnSlot {
    live: Arc<AtomicUsize>,
    _pass: Pass,
}

impl ConnLimit {
    /// A limit of `max` connections at once, without defences.
    pub fn new(max: usize) -> ConnLimit {
        ConnLimit {
            live: Arc::new(AtomicUsize::new(0)),
            max,
            gate: None,
        }
    }

    /// The limit and the accept-time defences `config` asks for.
    pub fn of(config: &ServerConfig) -> ConnLimit {
        let gate = config
            .defences
            .at_accept()
            .then(|| Gate::new(config.defences));
        ConnLimit {
            gate,
            ..ConnLimit::new(config.max_conns)
        }
    }

    /// Takes a slot for the connection just accepted on `socket`, or `None` when it is refused:
    /// its address is blocked (it is told so) or at its cap, or `max` connections are already
    /// being served. A refused connection is closed when the caller drops it.
    pub fn admit(&self, socket: &impl AsFd) -> Option<ConnSlot> {
        let pass = match &self.gate {
            None => Pass::free(),
            Some(gate) => match peer_ip(socket).map(|ip| gate.admit(ip)) {
                Some(Ok(pass)) => pass,
                Some(Err(refusal)) => {
                    turn_away(socket, refusal);
                    return None;
                }
                // A client gone before we could read its address: nothing to serve.
                None => return None,
            },
        };
        self.live
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnSlot {
                live: Arc::clone(&self.live),
                _pass: pass,
            })
    }
}

/// The address of the peer of a connected socket.
pub fn peer_ip(socket: &impl AsFd) -> Option<IpAddr> {
    use nix::sys::socket::{getpeername, SockaddrStorage};
    let addr: SockaddrStorage = getpeername(socket.as_fd().as_raw_fd()).ok()?;
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4).ip());
    }
    addr.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6).ip())
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}
