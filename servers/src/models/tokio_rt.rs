//! `tokio`: tokio's multi-thread, work-stealing runtime with `--workers` worker threads; one
//! task per connection, each a plain read-then-write loop over its own buffer.
//!
//! Should win: it scales over cores like threads while a connection costs a task (about a
//! kilobyte plus its buffer) instead of a stack, and blocking-style code stays readable.
//! Should break: on one core it pays for machinery the `mio` loop does without (task wake-ups,
//! the scheduler's queues, cross-thread synchronisation); see `tokio-current-thread`.
//!
//! With `--tls` (tokio-rustls), a handshake runs inside its connection's task: on one worker
//! thread a burst of handshakes delays the other tasks by their CPU time, with more workers
//! the other threads keep echoing.
//!
//! With `--work`, a request's CPU work runs inside its task on a worker thread (the other
//! workers steal the tasks queued behind it; with `--offload pool`, on tokio's blocking pool,
//! `spawn_blocking`, bounded to `--offload-threads` by `max_blocking_threads`), its wait is a
//! tokio sleep.
//!
//! With `--chat`, each room is a task, the single owner of its members (`chat::tasks`): a
//! member's task sends its messages to the room's task over a channel, and the room's task
//! queues each for every member in the order it received them. Rooms cross threads as
//! messages, with no lock held during a fan-out; each member's task writes its own socket.
//!
//! Run: `echo-server tokio --addr 127.0.0.1:7007 [--workers N] [--max-conns N] [--tls ... |
//! --work]`

use std::net::TcpListener as StdListener;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::accept::{accept_error_is_per_connection, log_accept_error, ACCEPT_BACKOFF};
use crate::chat::tasks::{Chat, Rooms};
use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::echo::READ_BUF;
use crate::endings::{self, Ending};
use crate::signals::SignalPipe;
use crate::tls::{self, Tls};
use crate::work::Work;

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
    if let Some(threads) = config.offload {
        runtime.max_blocking_threads(threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let limit = ConnLimit::of(config);
    let protocol = Protocol {
        tls: config.tls.clone(),
        work: config.work,
        pooled: config.offload.is_some(),
        idle: config.defences.idle_timeout,
        chat: config.chat.map(|queue| (Rooms::tasks(), queue)),
    };
    let served = runtime.block_on(accept_loop(listener, limit, stop, protocol));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    served
}

async fn accept_loop(
    listener: StdListener,
    limit: ConnLimit,
    stop: SignalPipe,
    protocol: Protocol,
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
                // Refused (a defence) or over the cap: dropping the stream closes it at once.
                let Some(slot) = limit.admit(&stream) else {
                    continue;
                };
                let protocol = protocol.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Err(ending) = serve_connection(stream, protocol).await {
                        endings::count(ending);
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

/// What every connection is served with: TLS, or requests with a cost, or plain echo.
#[derive(Clone)]
struct Protocol {
    tls: Option<Tls>,
    work: Option<Work>,
    /// `--offload pool`: requests' CPU work on the blocking pool.
    pooled: bool,
    /// `--idle-timeout`: how long a request may take to arrive.
    idle: Option<std::time::Duration>,
    /// `--chat`: the rooms (a task each) and the queue per member.
    chat: Option<Chat>,
}

/// Serves one connection (TLS: handshake first, under its timeout, counted as it completes;
/// `--work`: request by request); the ending, when unclean.
async fn serve_connection(mut stream: TcpStream, protocol: Protocol) -> Result<(), Ending> {
    stream.set_nodelay(true).map_err(|e| Ending::of(&e))?;
    if let Some((rooms, queue)) = protocol.chat {
        crate::chat::limit_send_buffer(&stream);
        let (reader, writer) = stream.split();
        return crate::chat::tasks::serve_tokio(reader, writer, rooms, queue).await;
    }
    if let Some(work) = &protocol.work {
        // Counted before `stream` closes: a client that sees it closed finds it counted.
        if let Err(ending) =
            crate::work::serve_tokio(&mut stream, work, protocol.pooled, protocol.idle).await
        {
            endings::count(ending);
        }
        return Ok(());
    }
    let Some(tls) = protocol.tls else {
        return echo(&mut stream).await.map_err(|e| Ending::of(&e));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
    let handshake = acceptor.accept_with(stream, tls::limit_buffers);
    let mut stream = match tokio::time::timeout(tls.handshake_timeout(), handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(_)) => return Err(Ending::HandshakeFailed),
        Err(_) => return Err(Ending::HandshakeTimeout),
    };
    // Counted now: a client that has its echo finds its handshake counted.
    if let Some(handshake) = tls::handshake_of(stream.get_ref().1) {
        endings::count_handshake(handshake);
    }
    echo(&mut stream).await.map_err(|e| tls::ending_of(&e))
}

/// Echoes until the client half-closes, then closes our side (TLS: `close_notify` first).
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> std::io::Result<()> {
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
