//! Source addresses (`--source-addrs`): loadgen's connections spread over several local
//! addresses. Toward one server every connection of one source address needs its own port,
//! and once a churn of connections has left every port of `ip_local_port_range` in TIME_WAIT
//! (loadgen closes first), each `connect` walks them all for a free one: that search, not the
//! server, was most of churn's cost. Over 254 source addresses each holds 1/254th of them.
//!
//! Unless told otherwise, a loopback IPv4 target is reached from 127.1.0.1–127.1.0.254 (the
//! whole of 127/8 is this host's; 127.0.0.2 and up are left to other clients), in turn; any
//! other target from the address the kernel picks. Each socket is bound with
//! `IP_BIND_ADDRESS_NO_PORT`, so that the kernel still picks its port at connect time.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The addresses a loopback IPv4 target is reached from unless `--source-addrs` says.
pub const LOOPBACK_SPREAD: &str = "127.1.0.1-127.1.0.254";

/// The most addresses a list or a block may name.
pub const MAX_ADDRS: usize = 1 << 16;

/// `--source-addrs`, as given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SourceAddrs {
    /// Not given: [`LOOPBACK_SPREAD`] toward a loopback IPv4 target, the kernel's choice
    /// otherwise.
    #[default]
    Auto,
    /// `none`: the address the kernel picks, for every target.
    Kernel,
    /// A comma-separated list or a CIDR block, as given, and its addresses.
    Given {
        /// As given.
        spec: String,
        /// Its addresses, in order.
        addrs: Vec<IpAddr>,
    },
}

/// What the JSON report says of the source addresses: `null` when the kernel picked them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    /// The addresses, as given or as chosen (`127.1.0.1-127.1.0.254`).
    pub spec: String,
    /// How many.
    pub count: usize,
}

/// The addresses a run's connections come from, taken in turn.
#[derive(Debug)]
pub struct Sources {
    /// As given or chosen.
    pub spec: String,
    /// The addresses.
    pub addrs: Vec<IpAddr>,
    next: AtomicUsize,
}

impl SourceAddrs {
    /// Parses `none`, `ADDR,ADDR,...` or `ADDR/PREFIX` (every host address of the block: a
    /// /24 gives .1 to .254).
    pub fn parse(text: &str) -> Result<SourceAddrs, String> {
        let text = text.trim();
        if text == "none" {
            return Ok(SourceAddrs::Kernel);
        }
        let addrs = match text.split_once('/') {
            Some((base, prefix)) => block(base, prefix)?,
            None => text
                .split(',')
                .map(|a| {
                    a.trim()
                        .parse::<IpAddr>()
                        .map_err(|_| format!("'{a}' is not an IP address"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        if addrs.len() > MAX_ADDRS {
            return Err(format!("{} addresses, more than {MAX_ADDRS}", addrs.len()));
        }
        if let Some(a) = addrs
            .iter()
            .find(|a| a.is_unspecified() || a.is_multicast())
        {
            return Err(format!("{a} cannot be a source address"));
        }
        if addrs.iter().any(IpAddr::is_ipv4) && addrs.iter().any(IpAddr::is_ipv6) {
            return Err("IPv4 and IPv6 addresses mixed".to_owned());
        }
        Ok(SourceAddrs::Given {
            spec: text.to_owned(),
            addrs,
        })
    }

    /// The addresses to reach `target` from; `None`: the kernel picks. The error, for
    /// addresses given, says why they cannot be used: another family than the target's, or
    /// not this host's.
    pub fn resolve(&self, target: SocketAddr) -> Result<Option<Sources>, String> {
        match self {
            SourceAddrs::Kernel => Ok(None),
            SourceAddrs::Auto => {
                let loopback_v4 = matches!(target.ip(), IpAddr::V4(ip) if ip.is_loopback());
                let addrs: Vec<IpAddr> = (1..=254)
                    .map(|i| IpAddr::V4(Ipv4Addr::new(127, 1, 0, i)))
                    .collect();
                // A host whose loopback does not take 127.1.0.1 keeps the kernel's choice.
                Ok((loopback_v4 && bindable(addrs[0]).is_ok())
                    .then(|| Sources::new(LOOPBACK_SPREAD, addrs)))
            }
            SourceAddrs::Given { spec, addrs } => {
                if addrs[0].is_ipv4() != target.is_ipv4() {
                    return Err(format!(
                        "--source-addrs {spec}: not of the target's address family ({target})"
                    ));
                }
                if let Some((a, e)) = addrs
                    .iter()
                    .find_map(|&a| bindable(a).err().map(|e| (a, e)))
                {
                    return Err(format!(
                        "--source-addrs {spec}: {a} is not an address of this host ({e})"
                    ));
                }
                Ok(Some(Sources::new(spec, addrs.clone())))
            }
        }
    }
}

/// Every host address of the block `base/prefix`.
fn block(base: &str, prefix: &str) -> Result<Vec<IpAddr>, String> {
    let bad = || format!("'{base}/{prefix}' is not an IPv4 block (ADDR/PREFIX)");
    let base: Ipv4Addr = base.parse().map_err(|_| bad())?;
    let prefix: u32 = prefix.parse().ok().filter(|&p| p <= 32).ok_or_else(bad)?;
    let size = 1u64 << (32 - prefix);
    if size > (MAX_ADDRS as u64) * 2 {
        return Err(format!(
            "{base}/{prefix} holds more than {MAX_ADDRS} addresses"
        ));
    }
    let first = u32::from(base) & !((size - 1) as u32);
    // Blocks of more than two addresses leave out their network and broadcast addresses.
    let hosts = match size {
        1 | 2 => 0..size,
        _ => 1..size - 1,
    };
    Ok(hosts
        .map(|i| IpAddr::V4(Ipv4Addr::from(first + i as u32)))
        .collect())
}

/// Whether a socket can be bound to `addr` (port 0): it is this host's.
fn bindable(addr: IpAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::for_address((addr, 0).into()), Type::STREAM, None)?;
    no_port(&socket);
    socket.bind(&SocketAddr::new(addr, 0).into())
}

/// Leaves the port to `connect` (`IP_BIND_ADDRESS_NO_PORT`): bound to an address, the socket
/// would otherwise take a port of its own at `bind`, whatever the destination.
fn no_port(socket: &Socket) {
    let _ = nix::sys::socket::setsockopt(
        socket,
        nix::sys::socket::sockopt::IpBindAddressNoPort,
        &true,
    );
}

impl Sources {
    fn new(spec: &str, addrs: Vec<IpAddr>) -> Sources {
        Sources {
            spec: spec.to_owned(),
            addrs,
            next: AtomicUsize::new(0),
        }
    }

    /// The next address, in turn.
    pub fn next(&self) -> IpAddr {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.addrs[i % self.addrs.len()]
    }

    /// What the JSON report says of them.
    pub fn report(&self) -> SourceReport {
        SourceReport {
            spec: self.spec.clone(),
            count: self.addrs.len(),
        }
    }
}

/// Starts a non-blocking TCP connect to `target`, from the next of `sources` when there are
/// any (the kernel picks the port at connect time).
pub fn connect(sources: Option<&Sources>, target: SocketAddr) -> io::Result<std::net::TcpStream> {
    connect_from(sources.map(Sources::next), target).map(Into::into)
}

/// Starts a non-blocking TCP connect to `target`, from `from` when given (the kernel picks
/// the port at connect time); the socket, for options set before the connect completes.
pub fn connect_from(from: Option<IpAddr>, target: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    if let Some(from) = from {
        no_port(&socket);
        socket.bind(&SocketAddr::new(from, 0).into())?;
    }
    match socket.connect(&SockAddr::from(target)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(socket)
}

/// A UDP socket's local address toward `target`: the next of `sources`, or any.
pub fn udp_local(sources: Option<&Sources>, target: SocketAddr) -> SocketAddr {
    match (sources, target) {
        (Some(s), _) => SocketAddr::new(s.next(), 0),
        (None, SocketAddr::V4(_)) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (None, SocketAddr::V6(_)) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_blocks_and_none_parse_and_bad_ones_say_why() {
        assert_eq!(SourceAddrs::parse("none"), Ok(SourceAddrs::Kernel));
        let Ok(SourceAddrs::Given { addrs, .. }) = SourceAddrs::parse("10.0.0.1, 10.0.0.2") else {
            panic!("a list");
        };
        assert_eq!(addrs.len(), 2);
        let Ok(SourceAddrs::Given { addrs, spec }) = SourceAddrs::parse("127.1.0.0/24") else {
            panic!("a block");
        };
        assert_eq!(spec, "127.1.0.0/24");
        assert_eq!(addrs.len(), 254);
        assert_eq!(addrs[0].to_string(), "127.1.0.1");
        assert_eq!(addrs[253].to_string(), "127.1.0.254");
        let one = SourceAddrs::parse("10.1.2.3/32").unwrap();
        assert!(matches!(one, SourceAddrs::Given { addrs, .. } if addrs.len() == 1));
        for bad in [
            "",
            "x",
            "10.0.0.1,",
            "10.0.0.0/33",
            "10.0.0.0/8",
            "0.0.0.0",
            "::1,127.0.0.1",
        ] {
            assert!(SourceAddrs::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_loopback_target_is_reached_from_many_addresses_unless_told_otherwise() {
        let v4: SocketAddr = "127.0.0.1:7".parse().unwrap();
        let auto = SourceAddrs::Auto.resolve(v4).unwrap().expect("spread");
        assert_eq!(
            (auto.spec.as_str(), auto.addrs.len()),
            (LOOPBACK_SPREAD, 254)
        );
        assert_eq!(auto.next().to_string(), "127.1.0.1");
        assert_eq!(auto.next().to_string(), "127.1.0.2");
        let v6: SocketAddr = "[::1]:7".parse().unwrap();
        assert!(SourceAddrs::Auto.resolve(v6).unwrap().is_none());
        let elsewhere: SocketAddr = "10.0.0.1:7".parse().unwrap();
        assert!(SourceAddrs::Auto.resolve(elsewhere).unwrap().is_none());
        assert!(SourceAddrs::Kernel.resolve(v4).unwrap().is_none());
        let foreign = SourceAddrs::parse("192.0.2.7").unwrap();
        let err = foreign.resolve(v4).unwrap_err();
        assert!(
            err.contains("192.0.2.7 is not an address of this host"),
            "{err}"
        );
        let family = SourceAddrs::parse("::1").unwrap();
        assert!(family.resolve(v4).unwrap_err().contains("address family"));
    }
}
