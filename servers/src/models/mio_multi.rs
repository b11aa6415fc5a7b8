//! `mio-multi`: thread per core, shared nothing. `--workers` threads each run their own mio
//! event loop (the `mio` model's loop) on their own listener; the listeners share the port
//! through `SO_REUSEPORT`, and the kernel spreads new connections over them by hash.
//!
//! Should win: many connections on many cores, with no lock, queue or wake-up shared between
//! threads: the event loop's efficiency times the number of cores.
//! Should break: a connection stays on the thread that accepted it, so an unlucky hash or a
//! few heavy clients load one core while others idle; on one core it is `mio` with extra
//! threads.
//!
//! With `--tls`, each loop drives its own connections' handshakes inline, as `mio` does. With
//! `--work`, each loop does its requests' CPU work inline, or with `--offload pool` hands it
//! to one rayon pool that all loops share.
//!
//! Run: `echo-server mio-multi --addr 127.0.0.1:7007 [--workers N] [--max-conns N] [--tls ...]`

use std::net::TcpListener;
use std::sync::Arc;
use std::thread;

use anyhow::{anyhow, Context};
use mio::{Poll, Waker};

use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::models::mio_loop::{event_loop, WorkLoop, STOP};
use crate::signals::SignalPipe;
use crate::work::Offload;

/// Runs one loop per listener (one per worker, all bound before the `listening on` line) until
/// SIGINT or SIGTERM.
pub fn serve(
    listeners: Vec<TcpListener>,
    config: &ServerConfig,
    stop: SignalPipe,
) -> anyhow::Result<()> {
    // `--max-conns` caps the process, not each loop.
    let limit = ConnLimit::new(config.max_conns);
    // One pool for every loop: `--offload-threads` bounds the server's CPU work, not a loop's.
    let pool = config.offload.map(Offload::pool).transpose()?;
    let mut loops = Vec::new();
    for listener in listeners {
        let poll = Poll::new().context("cannot create a poll")?;
        let waker = Arc::new(Waker::new(poll.registry(), STOP).context("cannot create a waker")?);
        let work_loop = WorkLoop::new(poll.registry(), config.work.is_some(), pool.as_ref())?;
        loops.push((poll, waker, listener, work_loop));
    }
    thread::scope(|s| {
        let mut workers = Vec::new();
        for (i, (poll, waker, listener, work_loop)) in loops.into_iter().enumerate() {
            let (limit, tls, work) = (limit.clone(), config.tls.clone(), config.work);
            let handle = thread::Builder::new()
                .name(format!("mio-{i}"))
                .spawn_scoped(s, move || {
                    event_loop(poll, listener, limit, tls, (work, work_loop))
                })
                .context("cannot start a loop thread")?;
            workers.push((handle, waker));
        }
        let waited = stop.wait().context("cannot wait for SIGINT/SIGTERM");
        for (_, waker) in &workers {
            // A loop that already ended has nothing to wake.
            let _ = waker.wake();
        }
        for (handle, _) in workers {
            handle
                .join()
                .map_err(|_| anyhow!("a loop thread panicked"))??;
        }
        waited
    })
}
