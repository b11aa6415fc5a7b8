//! `udp-tokio`: tokio's multi-thread runtime with `--workers` worker threads and as many tasks,
//! all receiving from the one socket; each task echoes the datagram it received. A reply that
//! finds the send buffer full is dropped and counted, as in `udp-mio`.
//!
//! Should win: where datagrams share a program with other async work, at little cost in code.
//! Should break: one socket is one receive queue: the tasks take turns at it, and every turn
//! pays the runtime's wake-ups and readiness bookkeeping that `udp-mio` does without.
//!
//! Run: `echo-server udp-tokio --addr 127.0.0.1:7007 [--workers N]`

use std::net::UdpSocket as StdSocket;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::Interest;
use tokio::net::UdpSocket;

use crate::config::ServerConfig;
use crate::datagram::{note_recv_error, recv, replied, reply, wildcard, Rules, RECV_BUF};
use crate::errors::{interrupted, would_block};
use crate::signals::SignalPipe;

/// How long tasks may take to notice the shutdown before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Runs the runtime until SIGINT or SIGTERM.
pub fn serve(socket: StdSocket, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let tasks = config.workers;
    let served = runtime.block_on(async move {
        socket
            .set_nonblocking(true)
            .context("cannot make the socket non-blocking")?;
        let wildcard = wildcard(&socket);
        let rules = Rules::of(&socket).context("cannot read the bound address")?;
        let socket = Arc::new(UdpSocket::from_std(socket).context("cannot register the socket")?);
        let stop = tokio::net::UnixStream::from_std(stop.into_read_end())
            .context("cannot register the signal pipe")?;
        for _ in 0..tasks {
            tokio::spawn(echo(Arc::clone(&socket), rules, wildcard));
        }
        stop.readable()
            .await
            .context("cannot wait for a stop signal")
    });
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    served
}

/// Receives a datagram and echoes it, for ever.
async fn echo(socket: Arc<UdpSocket>, rules: Rules, wildcard: bool) {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let received = socket
            .async_io(Interest::READABLE, || recv(&*socket, &mut buf, wildcard))
            .await;
        match received {
            Ok(dg) if rules.to_echo(&dg, &buf[..dg.len]) => {
                let sent =
                    socket.try_io(Interest::WRITABLE, || reply(&*socket, &buf[..dg.len], &dg));
                replied(&sent);
            }
            Ok(_) => {}
            Err(e) if would_block(&e) || interrupted(&e) => {}
            Err(e) => note_recv_error(&e),
        }
    }
}
