//! `tokio`: tokio's multi-thread, work-stealing runtime with `--workers` worker threads; one
//! task per connection, each a plain read-then-write loop over its own buffer.
//!
//! Should win: it scales over cores like threads while a connection costs a task (about a
//! kilobyte plus its buffer) instead of a stack, and blocking-style code stays readable.
//! Should break: on one core it pays for machinery the `mio` loop does without (task wake-ups,
//! the scheduler's queues, cross-thread synchronisation); see `tokio-current-thread`.
//!
//! Run: `echo-server tokio --addr 127.0.0.1:7007 [--workers N] [--max-conns N]`

use std::net::TcpListener as StdListener;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::accept::{accept_error_is_per_connection, log_accept_error, ACCEPT_BACKOFF};
use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::echo::READ_BUF;
use crate::endings;
use crate::signals::SignalPipe;

/// How long tasks still running at shutdown may take to notice before they are dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);

/// Runs the runtime until SIGINT or SIGTERM.
pub fn serve(listener: StdListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.worker_threads(config.workers);
    serve_on(runtime, listener, config, stop)
}

/// Builds `runtime` and runs the accept loop on it until SIGINT or SIGTERM; then gives tasks
/// still running a moment before they are dropped.
pub(crate) fn serve_on(
    mut runtime: tokio::runtime::Builder,
    listener: StdListener,
    config: &ServerConfig,
    stop: SignalPipe,
) -> anyhow::Result<()> {
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let limit = ConnLimit::new(config.max_conns);
    let served = runtime.block_on(accept_loop(listener, limit, stop));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    served
}

async fn accept_loop(
    listener: StdListener,
    limit: ConnLimit,
    stop: SignalPipe,
) -> anyhow::Result<()> {
    listener
        .set_nonblocking(true)
        .context("cannot make the listener non-blocking")?;
    let listener = TcpListener::from_std(listener).context("cannot register the listener")?;
    // The stop signals' self-pipe, registered before the `listening on` line was printed.
    let stop = tokio::net::UnixStream::from_std(stop.into_read_end())
        .context("cannot register the signal pipe")?;
    loop {
        let accepted = tokio::select! {
            _ = stop.readable() => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                // Over the cap: dropping the stream closes it at once.
                let Some(slot) = limit.try_acquire() else {
                    continue;
                };
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(e) = echo(stream).await {
                        endings::ended_by(&e);
                    }
                });
            }
            // The client gave up before we took it; try the next one.
            Err(e) if accept_error_is_per_connection(&e) => {}
            // Out of descriptors or memory: keep serving, retry accepting after a pause.
            Err(e) => {
                log_accept_error(&e);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Echoes until the client half-closes, then closes our side.
async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; READ_BUF];
    loop {
        // Half-close: everything read so far has been written back.
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.shutdown().await;
        }
        // Waiting here until the client reads is the back-pressure: no read meanwhile.
        stream.write_all(&buf[..n]).await?;
    }
}
