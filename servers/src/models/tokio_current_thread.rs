//! `tokio-current-thread`: tokio's single-thread runtime. The same task-per-connection code as
//! `tokio`, but every task runs on the one thread that also drives the I/O driver: no work
//! stealing, no cross-thread wake-ups.
//!
//! Should win: the fair one-core peer of `mio`: async code as readable as `tokio`, at a cost
//! close to a hand-written event loop, with tiny per-connection memory.
//! Should break: it uses one core only, and one task that blocks stalls every client.
//!
//! With `--tls`, every handshake runs on the one thread, inline with every other client's echo.
//! With `--work`, so does every request's CPU work, unless `--offload pool` hands it to
//! tokio's blocking pool (`spawn_blocking`, bounded to `--offload-threads`). With `--chat`,
//! as `tokio`: a task per room, the one owner of its members, all on the one thread.
//!
//! Run: `echo-server tokio-current-thread --addr 127.0.0.1:7007 [--max-conns N] [--tls ...]`

use std::net::TcpListener;

use crate::config::ServerConfig;
use crate::models::tokio_rt::serve_on;
use crate::signals::SignalPipe;

/// Runs the single-thread runtime until SIGINT or SIGTERM.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    serve_on(
        tokio::runtime::Builder::new_current_thread(),
        listener,
        config,
        stop,
    )
}
