//! `async-std`: a task per connection on async-std's global runtime (its executor threads plus
//! a reactor thread).
//!
//! async-std is discontinued upstream in favour of smol (its authors point users there); it
//! is kept here for comparison, since much code still runs on it.
//!
//! Should win: like `tokio` and `smol`: readable async code and a small task per connection.
//! Should break: its thread count is the runtime's own choice (one per CPU; `--workers` sets
//! it through `ASYNC_STD_THREAD_COUNT` before the runtime starts), and wake-ups cross threads.
//!
//! With `--work`, a request's CPU work runs inside its task on an executor thread (with
//! `--offload pool`, on async-std's blocking pool, `spawn_blocking`, bounded to
//! `--offload-threads`), its wait is an async-std sleep.
//!
//! With `--chat`, as `smol`: a lock per room, taken by the sender's task for its fan-out into
//! every member's mailbox.
//!
//! Run: `echo-server async-std --addr 127.0.0.1:7007 [--workers N] [--max-conns N] [--work
//! [--offload pool]]`

use std::net::TcpListener as StdListener;

use std::time::Duration;

use anyhow::Context;
use async_std::io::{ReadExt, WriteExt};
use async_std::net::{TcpListener, TcpStream};
use async_std::os::unix::net::UnixStream;

use crate::accept::{accept_error_is_per_connection, log_accept_error, ACCEPT_BACKOFF};
use crate::chat::tasks::{Chat, Rooms};
use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::echo::READ_BUF;
use crate::endings::{self, Ending};
use crate::signals::SignalPipe;
use crate::work::Work;

/// Runs the runtime until SIGINT or SIGTERM; the process then exits, dropping the tasks.
pub fn serve(listener: StdListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    // The runtime reads this once, when it starts (on the first task below); nothing else runs
    // yet, so setting the variable cannot race with a reader.
    std::env::set_var("ASYNC_STD_THREAD_COUNT", config.workers.to_string());
    let limit = ConnLimit::of(config);
    if let Some(threads) = config.offload.and_then(std::num::NonZeroUsize::new) {
        // async-std's `spawn_blocking` runs on the `blocking` crate's one pool.
        blocking::set_max_blocking_threads(threads);
    }
    let idle = config.defences.idle_timeout;
    let work = config
        .work
        .map(|work| (work, config.offload.is_some(), idle));
    let chat = config.chat.map(|queue| (Rooms::locked(), queue));
    async_std::task::block_on(accept_loop(listener, stop, limit, (work, chat)))
}

/// `--work`: the calibrated work, whether its CPU work goes to the blocking pool
/// (`--offload pool`), and `--idle-timeout`.
type Requests = (Work, bool, Option<Duration>);

async fn accept_loop(
    listener: StdListener,
    stop: SignalPipe,
    limit: ConnLimit,
    (work, chat): (Option<Requests>, Option<Chat>),
) -> anyhow::Result<()> {
    listener
        .set_nonblocking(true)
        .context("cannot make the listener non-blocking")?;
    let listener = TcpListener::from(listener);
    let mut stop = UnixStream::from(stop.into_read_end());
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            // A stop signal's byte, or the pipe closing, ends the loop.
            let _ = stop.read(&mut [0u8; 16]).await;
            None
        });
        match accepted.await {
            None => return Ok(()),
            Some(Ok((stream, _))) => {
                // Refused (a defence) or over the cap: dropping the stream closes it at once.
                let Some(slot) = limit.admit(&stream) else {
                    continue;
                };
                let chat = chat.clone();
                async_std::task::spawn(async move {
                    let _slot = slot;
                    let served = match (work, chat) {
                        (_, Some((rooms, queue))) => serve_member(stream, rooms, queue).await,
                        (Some(work), None) => serve_requests(stream, work).await,
                        (None, None) => echo(stream).await.map_err(|e| Ending::of(&e)),
                    };
                    if let Err(ending) = served {
                        endings::count(ending);
                    }
                });
            }
            // The client gave up before we took it; try the next one.
            Some(Err(e)) if accept_error_is_per_connection(&e) => {}
            // Out of descriptors or memory: keep serving, retry accepting after a pause.
            Some(Err(e)) => {
                log_accept_error(&e);
                async_std::task::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// `--chat`: serves one member until it leaves (then closes our side) or is closed.
async fn serve_member(stream: TcpStream, rooms: Rooms, queue: usize) -> Result<(), Ending> {
    stream.set_nodelay(true).map_err(|e| Ending::of(&e))?;
    crate::chat::limit_send_buffer(&stream);
    crate::chat::tasks::serve_futures(&stream, &stream, rooms, queue).await?;
    let closed = stream.shutdown(std::net::Shutdown::Write);
    closed.map_err(|e| Ending::of(&e))
}

/// `--work`: serves requests until the client half-closes, then closes our side; `pooled`:
/// their CPU work on the blocking pool.
async fn serve_requests(
    mut stream: TcpStream,
    (work, pooled, idle): Requests,
) -> Result<(), Ending> {
    use crate::work::serve_futures;
    use async_std::task::{sleep, spawn_blocking};
    stream.set_nodelay(true).map_err(|e| Ending::of(&e))?;
    let served = match pooled {
        true => {
            let burn = |ns| spawn_blocking(move || work.burn(ns, &|| false));
            serve_futures(&mut stream, burn, sleep, idle).await
        }
        false => {
            let burn = |ns| {
                work.burn(ns, &|| false);
                std::future::ready(())
            };
            serve_futures(&mut stream, burn, sleep, idle).await
        }
    };
    let served = served.and_then(|()| {
        stream
            .shutdown(std::net::Shutdown::Write)
            .map_err(|e| Ending::of(&e))
    });
    // Counted before `stream` closes: a client that sees it closed finds it counted.
    if let Err(ending) = served {
        endings::count(ending);
    }
    Ok(())
}

/// Echoes until the client half-closes, then closes our side.
async fn echo(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return stream.shutdown(std::net::Shutdown::Write);
        }
        // Waiting here until the client reads is the back-pressure: no read meanwhile.
        stream.write_all(&buf[..n]).await?;
    }
}
