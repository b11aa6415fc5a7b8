//! `smol`: a task per connection on smol's executor (`async-executor`), run by `--workers`
//! threads; sockets are `async-io`'s `Async<TcpStream>` on its epoll reactor.
//!
//! Should win: the same shape as `tokio` (readable async code, a task per connection, small
//! memory per connection) from a much smaller runtime.
//! Should break: the reactor is one thread of its own that wakes the executor threads, so a
//! message can cost a cross-thread wake-up that `mio` and `tokio-current-thread` avoid.
//!
//! Run: `echo-server smol --addr 127.0.0.1:7007 [--workers N] [--max-conns N]`

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;

use anyhow::Context;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::{Async, Executor};

use crate::accept::{accept_error_is_per_connection, log_accept_error, ACCEPT_BACKOFF};
use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::echo::READ_BUF;
use crate::endings;
use crate::signals::SignalPipe;

/// Runs the executor on `--workers` threads until SIGINT or SIGTERM.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let listener = Async::new(listener).context("cannot register the listener")?;
    let stop = Async::new(stop.into_read_end()).context("cannot register the signal pipe")?;
    let executor = Executor::new();
    let limit = ConnLimit::new(config.max_conns);
    let (done, finished) = smol::channel::bounded::<()>(1);
    thread::scope(|s| {
        // Worker threads run tasks until the accept loop ends (the channel closes).
        for i in 1..config.workers {
            let (executor, finished) = (&executor, finished.clone());
            thread::Builder::new()
                .name(format!("smol-{i}"))
                .spawn_scoped(s, move || smol::block_on(executor.run(finished.recv())))
                .context("cannot start an executor thread")?;
        }
        let served = smol::block_on(executor.run(accept_loop(&executor, &listener, &stop, &limit)));
        drop(done);
        served
    })
}

async fn accept_loop(
    executor: &Executor<'_>,
    listener: &Async<TcpListener>,
    stop: &Async<UnixStream>,
    limit: &ConnLimit,
) -> anyhow::Result<()> {
    loop {
        let accepted = smol::future::or(async { Some(listener.accept().await) }, async {
            // Readable: a stop signal's byte is waiting.
            let _ = stop.readable().await;
            None
        })
        .await;
        match accepted {
            None => return Ok(()),
            Some(Ok((stream, _))) => {
                // Over the cap: dropping the stream closes it at once.
                let Some(slot) = limit.try_acquire() else {
                    continue;
                };
                executor
                    .spawn(async move {
                        let _slot = slot;
                        if let Err(e) = echo(stream).await {
                            endings::ended_by(&e);
                        }
                    })
                    .detach();
            }
            // The client gave up before we took it; try the next one.
            Some(Err(e)) if accept_error_is_per_connection(&e) => {}
            // Out of descriptors or memory: keep serving, retry accepting after a pause.
            Some(Err(e)) => {
                log_accept_error(&e);
                smol::Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Echoes until the client half-closes, then closes our side.
async fn echo(mut stream: Async<TcpStream>) -> std::io::Result<()> {
    stream.get_ref().set_nodelay(true)?;
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.get_ref().shutdown(std::net::Shutdown::Write);
        }
        // Waiting here until the client reads is the back-pressure: no read meanwhile.
        stream.write_all(&buf[..n]).await?;
    }
}
