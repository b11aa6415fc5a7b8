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
use crate::datagram::serve_blocking;
use crate::signals::SignalPipe;

/// Serves on the sibling sockets (one per `--workers`, all bound before the `listening on`
/// line) until SIGINT or SIGTERM.
pub fn serve(
    sockets: Vec<UdpSocket>,
    _config: &ServerConfig,
    stop: SignalPipe,
) -> anyhow::Result<()> {
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
