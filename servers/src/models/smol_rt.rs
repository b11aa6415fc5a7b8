//! `smol`: a task per connection on smol's executor (`async-executor`), run by `--workers`
//! threads; sockets are `async-io`'s `Async<TcpStream>` on its epoll reactor.
//!
//! Should win: the same shape as `tokio` (readable async code, a task per connection, small
//! memory per connection) from a much smaller runtime.
//! Should break: the reactor is one thread of its own that wakes the executor threads, so a
//! message can cost a cross-thread wake-up that `mio` and `tokio-current-thread` avoid.
//!
//! With `--tls` (futures-rustls), a handshake runs inside its connection's task, on whichever
//! executor thread polls it.
//!
//! With `--work`, a request's CPU work runs inside its task on an executor thread (with
//! `--offload pool`, on the `blocking` crate's pool, `unblock`, bounded to
//! `--offload-threads`), its wait is an `async-io` timer.
//!
//! With `--chat`, the rooms are shared behind a lock each (`chat::tasks`, a `std::sync::Mutex`
//! never held across an `.await`): a sender's task queues its message into every member's
//! mailbox under the room's lock, and each member's task writes its own socket.
//!
//! Run: `echo-server smol --addr 127.0.0.1:7007 [--workers N] [--max-conns N] [--tls ... |
//! --work]`

use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::thread;

use std::time::Duration;

use anyhow::Context;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::{Async, Executor};

use crate::accept::{accept_error_is_per_connection, log_accept_error, ACCEPT_BACKOFF};
use crate::chat::tasks::{Chat, Rooms};
use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::echo::READ_BUF;
use crate::endings::{self, Ending};
use crate::signals::SignalPipe;
use crate::tls::{self, Tls};
use crate::work::Work;

/// Runs the executor on `--workers` threads until SIGINT or SIGTERM.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let listener = Async::new(listener).context("cannot register the listener")?;
    let stop = Async::new(stop.into_read_end()).context("cannot register the signal pipe")?;
    let executor = Executor::new();
    let limit = ConnLimit::of(config);
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
        if let Some(threads) = config.offload.and_then(std::num::NonZeroUsize::new) {
            blocking::set_max_blocking_threads(threads);
        }
        let idle = config.defences.idle_timeout;
        let work = config
            .work
            .map(|work| (work, config.offload.is_some(), idle));
        let chat = config.chat.map(|queue| (Rooms::locked(), queue));
        let protocol = (config.tls.as_ref(), work, chat);
        let served = smol::block_on(
            executor.run(accept_loop(&executor, &listener, &stop, &limit, protocol)),
        );
        drop(done);
        served
    })
}

/// `--work`: the calibrated work, whether its CPU work goes to the blocking pool
/// (`--offload pool`), and `--idle-timeout`.
type Requests = (Work, bool, Option<Duration>);

async fn accept_loop(
    executor: &Executor<'_>,
    listener: &Async<TcpListener>,
    stop: &Async<UnixStream>,
    limit: &ConnLimit,
    (tls, work, chat): (Option<&Tls>, Option<Requests>, Option<Chat>),
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
                // Refused (a defence) or over the cap: dropping the stream closes it at once.
                let Some(slot) = limit.admit(&stream) else {
                    continue;
                };
                let tls = tls.cloned();
                let chat = chat.clone();
                executor
                    .spawn(async move {
                        let _slot = slot;
                        let served = match (work, chat) {
                            (_, Some((rooms, queue))) => serve_member(stream, rooms, queue).await,
                            (Some(work), None) => serve_requests(stream, work).await,
                            (None, None) => serve_connection(stream, tls).await,
                        };
                        if let Err(ending) = served {
                            endings::count(ending);
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

/// `--chat`: serves one member, its reads and writes on the one socket, until it leaves (then
/// closes our side) or is closed.
async fn serve_member(stream: Async<TcpStream>, rooms: Rooms, queue: usize) -> Result<(), Ending> {
    stream
        .get_ref()
        .set_nodelay(true)
        .map_err(|e| Ending::of(&e))?;
    crate::chat::limit_send_buffer(stream.get_ref());
    crate::chat::tasks::serve_futures(&stream, &stream, rooms, queue).await?;
    let closed = stream.get_ref().shutdown(std::net::Shutdown::Write);
    closed.map_err(|e| Ending::of(&e))
}

/// `--work`: serves requests until the client half-closes, then closes our side; `pooled`:
/// their CPU work on the blocking pool.
async fn serve_requests(
    mut stream: Async<TcpStream>,
    (work, pooled, idle): Requests,
) -> Result<(), Ending> {
    use crate::work::serve_futures;
    let tcp = |e: std::io::Error| Ending::of(&e);
    stream.get_ref().set_nodelay(true).map_err(tcp)?;
    let sleep = |wait| async move {
        smol::Timer::after(wait).await;
    };
    let served = match pooled {
        true => {
            let burn = |ns| smol::unblock(move || work.burn(ns, &|| false));
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
            .get_ref()
            .shutdown(std::net::Shutdown::Write)
            .map_err(tcp)
    });
    // Counted before `stream` closes: a client that sees it closed finds it counted.
    if let Err(ending) = served {
        endings::count(ending);
    }
    Ok(())
}

/// Serves one connection (TLS: handshake first, under its timeout, counted as it completes);
/// the ending, when unclean.
async fn serve_connection(mut stream: Async<TcpStream>, tls: Option<Tls>) -> Result<(), Ending> {
    stream
        .get_ref()
        .set_nodelay(true)
        .map_err(|e| Ending::of(&e))?;
    let half_close = |tcp: &TcpStream| tcp.shutdown(std::net::Shutdown::Write);
    let Some(tls) = tls else {
        let served = echo(&mut stream).await;
        return served
            .and_then(|()| half_close(stream.get_ref()))
            .map_err(|e| Ending::of(&e));
    };
    let acceptor = futures_rustls::TlsAcceptor::from(tls.config());
    let handshake = smol::future::or(
        async { Some(acceptor.accept_with(stream, tls::limit_buffers).await) },
        async {
            smol::Timer::after(tls.handshake_timeout()).await;
            None
        },
    );
    let mut stream = match handshake.await {
        Some(Ok(stream)) => stream,
        Some(Err(_)) => return Err(Ending::HandshakeFailed),
        None => return Err(Ending::HandshakeTimeout),
    };
    // Counted now: a client that has its echo finds its handshake counted.
    if let Some(handshake) = tls::handshake_of(stream.get_ref().1) {
        endings::count_handshake(handshake);
    }
    // `close`: the `close_notify`, flushed; then the TCP half-close.
    let served = match echo(&mut stream).await {
        Ok(()) => stream.close().await,
        Err(e) => Err(e),
    }
    .and_then(|()| half_close(stream.get_ref().0.get_ref()));
    served.map_err(|e| tls::ending_of(&e))
}

/// Echoes until the client half-closes (TLS: its `close_notify`); the caller closes our side.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        // Waiting here until the client reads is the back-pressure: no read meanwhile.
        stream.write_all(&buf[..n]).await?;
    }
}
