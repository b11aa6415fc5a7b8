//! `tokio-current-thread`: tokio's single-thread runtime. The same task-per-connection code as
//! `tokio`, but every task runs on the one thread that also drives the I/O driver: no work
//! stealing, no cross-thread wake-ups.
//!
//! Should win: the fair one-core peer of `mio`: async code as readable as `tokio`, at a cost
//! close to a hand-written event loop, with tiny per-connection memory.
//! Should break: it uses one core only, and one task that blocks stalls every client.
//!
//! Run: `echo-server tokio-current-thread --addr 127.0.0.1:7007 [--max-conns N]`

use std::net::TcpListener;
use std::time::Duration;

use anyhow::Context;

use crate::models::tokio_rt::accept_loop;
use crate::{ConnLimit, ServerConfig, SignalPipe};

/// How long tasks still running at shutdown may take before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Runs the single-thread runtime until SIGINT or SIGTERM.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let served = runtime.block_on(accept_loop(
        listener,
        ConnLimit::new(config.max_conns),
        stop,
    ));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    served
}
