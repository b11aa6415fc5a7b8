//! `udp-reuseport`: `--workers` threads, each with its own blocking socket bound to the same
//! address with `SO_REUSEPORT`. The kernel spreads datagrams over the sockets by a hash of the
//! sender's address and port, so each client's datagrams always reach the same worker, and
//! the workers share nothing.
//!
//! Should win: many clients on many cores, where one socket's single receive queue (and one
//! thread draining it) is the bottleneck of `udp-blocking`.
//! Should break: a few clients, or one busy one: the hash puts a client on one worker, so
//! one client never gets more than one core, and an unlucky hash leaves workers idle while
//! another has two busy clients.
//!
//! Run: `echo-server udp-reuseport --addr 127.0.0.1:7007 [--workers N]`

use std::net::UdpSocket;

use anyhow::Context;

use crate::config::ServerConfig;
use crate::datagram::{bind, serve_blocking};
use crate::signals::SignalPipe;

/// Serves on `socket` and `--workers` − 1 sibling sockets until SIGINT or SIGTERM.
pub fn serve(socket: UdpSocket, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    // Port 0 has become a port: the siblings bind the one the first socket got.
    let addr = socket
        .local_addr()
        .context("cannot read the bound address")?;
    let mut sockets = vec![socket];
    for _ in 1..config.workers.max(1) {
        let sibling = bind(addr, true)
            .with_context(|| format!("cannot bind another socket to --addr {addr}"))?;
        sockets.push(sibling);
    }
    let stopped = || stop.raised();
    std::thread::scope(|s| {
        let workers: Vec<_> = sockets
            .iter()
            .map(|socket| s.spawn(|| serve_blocking(socket, &stopped)))
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(served) => served.context("cannot receive on a worker's socket")?,
                Err(_) => anyhow::bail!("a worker thread panicked"),
            }
        }
        Ok(())
    })
}
