//! Defences against hostile clients, off unless asked for: the idle timeout of `--work`
//! connections ([`IdleClock`]), the cap on connections from one address and the tutorial's IP
//! blocker, both decided at accept by a [`Gate`].
//!
//! - `--idle-timeout DUR` (with `--work`): a connection must complete a request within DUR of
//!   its first byte, and send one within DUR when none is in flight (from its accept, or from
//!   its last answer); else it is closed and counted as an idle timeout. Each model keeps the
//!   clock its own way: a socket wait with a deadline (blocking models), the runtime's timer
//!   (tokio, async-std, smol), a sweep of the loop's connections (mio, io_uring).
//! - `--per-ip-max-conns N`: a connection beyond N live ones from its address is closed at once.
//! - `--block-after N --block-window DUR [--block-for DUR]`: the tutorial's `IPBlocker` with a
//!   window. The N-th connection attempt from one address within DUR blocks the address for
//!   `--block-for` (60 s by default): that attempt, and every attempt while the block lasts,
//!   receives exactly [`BLOCKED_LINE`] and is closed. Attempts while blocked do not extend it.
//!
//! The blocker is checked before the cap, so that a blocked attempt never counts as a live
//! connection. Every refusal and idle timeout is counted ([`Ending::Blocked`],
//! [`Ending::OverPerIpLimit`], [`Ending::IdleTimeout`]) for the `limits:` line at exit.
//!
//! A [`Gate`] lives in one process. Threads and tasks share it behind an `Arc`; the forking
//! models keep it in the parent: `fork-per-client`'s parent accepts, so it asks the gate itself
//! and frees a child's place when it reaps the child; `prefork`'s workers accept, so they ask
//! the parent over a socket of their own ([`crate::defence::broker`]), the parent being the
//! broker that holds the one gate. Counts are therefore exact across threads and processes.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::endings::{self, Ending};

pub mod broker;

/// What a blocked client receives before it is closed: the tutorial's words, one line.
pub const BLOCKED_LINE: &[u8] = b"You have been blocked due to too many attempts.\n";

/// How long a blocked address stays blocked unless `--block-for` says otherwise.
pub const DEFAULT_BLOCK_FOR: Duration = Duration::from_secs(60);

/// The tutorial's IP blocker: `after` attempts within `window` block the address for
/// `block_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRule {
    /// The attempt that blocks (at least 1).
    pub after: u32,
    /// The window the attempts are counted in.
    pub window: Duration,
    /// How long the block lasts.
    pub block_for: Duration,
}

/// The defences a server was started with; [`Defences::default`] is none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Defences {
    /// `--idle-timeout`: see [`IdleClock`].
    pub idle_timeout: Option<Duration>,
    /// `--per-ip-max-conns`: live connections allowed from one address.
    pub per_ip_max_conns: Option<usize>,
    /// `--block-after`, `--block-window`, `--block-for`.
    pub block: Option<BlockRule>,
}

impl Defences {
    /// Whether anything is decided at accept (the cap per address or the blocker).
    pub fn at_accept(&self) -> bool {
        self.per_ip_max_conns.is_some() || self.block.is_some()
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address already has `--per-ip-max-conns` live connections.
    OverLimit,
    /// Its address is blocked.
    Blocked,
}

impl Refusal {
    /// The ending it is counted as.
    pub fn ending(self) -> Ending {
        match self {
            Refusal::OverLimit => Ending::OverPerIpLimit,
            Refusal::Blocked => Ending::Blocked,
        }
    }
}

/// What one address has done.
#[derive(Debug, Default)]
struct Address {
    /// Live connections admitted.
    live: usize,
    /// Attempts within the window, oldest first (at most `after` of them).
    attempts: VecDeque<Instant>,
    /// Blocked until then.
    blocked_until: Option<Instant>,
}

impl Address {
    /// Whether this entry still says anything: a live connection, a block, or an attempt that
    /// may still count.
    fn matters(&self, now: Instant, window: Duration) -> bool {
        self.live > 0
            || self.blocked_until.is_some_and(|until| now < until)
            || self
                .attempts
                .back()
                .is_some_and(|&at| now.saturating_duration_since(at) < window)
    }
}

/// Addresses kept before the table is swept of those that no longer matter.
const SWEEP_AT: usize = 4096;

/// The accept-time defences of one process: the count of live connections per address and the
/// blocker's attempts and blocks. Decisions and counts are made under one lock.
#[derive(Debug)]
pub struct Gate {
    rules: Defences,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    addresses: HashMap<IpAddr, Address>,
    /// Size at which the table is next swept.
    sweep_at: usize,
}

impl Gate {
    /// A gate with `rules`, shared by the threads or tasks of one process.
    pub fn new(rules: Defences) -> Arc<Gate> {
        Arc::new(Gate {
            rules,
            table: Mutex::new(Table {
                addresses: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        })
    }

    /// Decides on an attempt from `ip`, counting a refusal: `Ok` admits it as one more live
    /// connection of `ip` (to be given back with [`Gate::leave`]).
    pub fn decide(&self, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if !self.rules.at_accept() {
            return Ok(());
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let verdict = table.decide(&self.rules, ip, now);
        drop(table);
        if let Err(refusal) = verdict {
            endings::count(refusal.ending());
        }
        verdict
    }

    /// A connection from `ip` that [`Gate::decide`] admitted has closed.
    pub fn leave(&self, ip: IpAddr) {
        if self.rules.per_ip_max_conns.is_none() {
            return;
        }
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(address) = table.addresses.get_mut(&ip) {
            address.live = address.live.saturating_sub(1);
        }
    }

    /// Admits an attempt from `ip` or refuses it ([`Gate::decide`]); an admitted one holds a
    /// [`Pass`] that gives its place back when dropped.
    pub fn admit(self: &Arc<Gate>, ip: IpAddr) -> Result<Pass, Refusal> {
        self.decide(ip, Instant::now())?;
        let gate = self.rules.per_ip_max_conns.map(|_| (Arc::clone(self), ip));
        Ok(Pass(gate))
    }
}

impl Table {
    fn decide(&mut self, rules: &Defences, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if self.addresses.len() >= self.sweep_at {
            let window = rules.block.map_or(Duration::ZERO, |b| b.window);
            self.addresses.retain(|_, a| a.matters(now, window));
            // Sweep again only once the table has doubled, so that sweeps stay rare.
            self.sweep_at = (self.addresses.len() * 2).max(SWEEP_AT);
        }
        let address = self.addresses.entry(ip).or_default();
        if let Some(rule) = rules.block {
            match address.blocked_until {
                Some(until) if now < until => return Err(Refusal::Blocked),
                Some(_) => address.blocked_until = None,
                None => {}
            }
            while address
                .attempts
                .front()
                .is_some_and(|&at| now.saturating_duration_since(at) >= rule.window)
            {
                address.attempts.pop_front();
            }
            address.attempts.push_back(now);
            if address.attempts.len() >= rule.after as usize {
                address.attempts.clear();
                address.blocked_until = Some(now + rule.block_for);
                return Err(Refusal::Blocked);
            }
        }
        if let Some(max) = rules.per_ip_max_conns {
            if address.live >= max {
                return Err(Refusal::OverLimit);
            }
            address.live += 1;
        }
        Ok(())
    }
}

/// An admitted connection's place in its [`Gate`], given back when dropped.
#[derive(Debug)]
pub struct Pass(Option<(Arc<Gate>, IpAddr)>);

impl Pass {
    /// The pass of a server without accept-time defences.
    pub fn free() -> Pass {
        Pass(None)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        if let Some((gate, ip)) = self.0.take() {
            gate.leave(ip);
        }
    }
}

/// Tells a refused client why, where there is something to say: a blocked client receives
/// [`BLOCKED_LINE`] (one small write on a fresh socket, which never waits), then our side is
/// shut. The caller closes the socket by dropping it.
pub fn turn_away(socket: &impl AsFd, refusal: Refusal) {
    use nix::sys::socket::{send, shutdown, MsgFlags, Shutdown};
    if refusal == Refusal::Blocked {
        let fd = socket.as_fd().as_raw_fd();
        let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
        // A client already gone cannot be told; it is counted all the same.
        let _ = send(fd, BLOCKED_LINE, flags);
        let _ = shutdown(fd, Shutdown::Write);
    }
}

/// `--idle-timeout` for one `--work` connection: how long it may take to send a request, and
/// since when it has been taking it.
#[derive(Debug, Clone, Copy)]
pub struct IdleClock {
    limit: Duration,
    /// When the connection was accepted or last answered, or when the request it is sending
    /// began (its first byte).
    since: Instant,
}

impl IdleClock {
    /// A clock for a connection accepted now, with `limit` when there is one.
    pub fn start(limit: Option<Duration>) -> Option<IdleClock> {
        limit.map(|limit| IdleClock {
            limit,
            since: Instant::now(),
        })
    }

    /// A request began (its first byte arrived, or an earlier answer left its bytes first in
    /// line), or a request was answered: the connection has `limit` from now.
    pub fn restart(&mut self, now: Instant) {
        self.since = now;
    }

    /// When the connection must have sent what it owes by.
    pub fn deadline(&self) -> Instant {
        self.since + self.limit
    }

    /// Whether the connection has taken longer than its limit.
    pub fn overdue(&self, now: Instant) -> bool {
        now >= self.deadline()
    }
}

/// Restarts `clock` from now, where there is one (without `--idle-timeout` there is none).
pub fn restart(clock: &mut Option<IdleClock>) {
    if let Some(clock) = clock {
        clock.restart(Instant::now());
    }
}

/// How often a loop that keeps its connections' clocks itself looks for those overdue: a
/// connection is closed at most this long after its deadline.
pub const SWEEP: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

    fn rules(per_ip: Option<usize>, block: Option<(u32, u64, u64)>) -> Defences {
        Defences {
            idle_timeout: None,
            per_ip_max_conns: per_ip,
            block: block.map(|(after, window, block_for)| BlockRule {
                after,
                window: Duration::from_millis(window),
                block_for: Duration::from_millis(block_for),
            }),
        }
    }

    #[test]
    fn the_cap_counts_live_connections_per_address() {
        let gate = Gate::new(rules(Some(2), None));
        let over = endings::counted(Ending::OverPerIpLimit);
        let first = gate.admit(A).unwrap();
        let second = gate.admit(A).unwrap();
        assert_eq!(gate.admit(A).unwrap_err(), Refusal::OverLimit);
        // Another address has its own count.
        let other = gate.admit(B).unwrap();
        drop(first);
        let third = gate.admit(A).unwrap();
        assert_eq!(gate.admit(A).unwrap_err(), Refusal::OverLimit);
        assert!(endings::counted(Ending::OverPerIpLimit) >= over + 2);
        drop((second, third, other));
    }

    #[test]
    fn the_nth_attempt_within_the_window_blocks_for_block_for() {
        let gate = Gate::new(rules(None, Some((3, 1_000, 5_000))));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(gate.decide(A, at(0)), Ok(()));
        assert_eq!(gate.decide(A, at(10)), Ok(()));
        assert_eq!(gate.decide(A, at(20)), Err(Refusal::Blocked));
        // Blocked for 5 s from the third attempt, whoever else comes.
        assert_eq!(gate.decide(B, at(30)), Ok(()));
        assert_eq!(gate.decide(A, at(4_999)), Err(Refusal::Blocked));
        // Over: counting starts again.
        assert_eq!(gate.decide(A, at(5_020)), Ok(()));
        assert_eq!(gate.decide(A, at(5_030)), Ok(()));
        // Attempts spread wider than the window never block.
        assert_eq!(gate.decide(A, at(6_100)), Ok(()));
        assert_eq!(gate.decide(A, at(7_200)), Ok(()));
        assert_eq!(gate.decide(A, at(8_300)), Ok(()));
    }

    #[test]
    fn a_blocked_attempt_takes_no_place_under_the_cap() {
        let gate = Gate::new(rules(Some(1), Some((2, 1_000, 60_000))));
        let now = Instant::now();
        assert_eq!(gate.decide(A, now), Ok(()));
        assert_eq!(gate.decide(A, now), Err(Refusal::Blocked));
        gate.leave(A);
        assert_eq!(gate.decide(B, now), Ok(()));
        assert_eq!(gate.decide(B, now), Err(Refusal::Blocked));
    }

    #[test]
    fn the_table_forgets_addresses_that_no_longer_matter() {
        let gate = Gate::new(rules(None, Some((1_000, 10, 10))));
        let t0 = Instant::now();
        for i in 0..SWEEP_AT as u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            gate.decide(ip, t0).unwrap();
        }
        // The table is full, and its addresses' attempts are out of the window by now.
        gate.decide(A, t0 + Duration::from_secs(1)).unwrap();
        let table = gate.table.lock().unwrap();
        assert_eq!(table.addresses.len(), 1);
    }

    #[test]
    fn an_idle_clock_runs_from_its_last_restart() {
        let mut clock = IdleClock::start(Some(Duration::from_millis(100))).unwrap();
        let t0 = clock.since;
        assert!(!clock.overdue(t0 + Duration::from_millis(99)));
        assert!(clock.overdue(t0 + Duration::from_millis(100)));
        clock.restart(t0 + Duration::from_millis(80));
        assert!(!clock.overdue(t0 + Duration::from_millis(150)));
        assert!(IdleClock::start(None).is_none());
    }
}
