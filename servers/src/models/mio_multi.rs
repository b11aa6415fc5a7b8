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
//! With `--chat`, each loop owns the rooms whose number modulo the loops is its own, and a
//! member whose `J` names a room of another loop is moved to that loop (its socket and the
//! bytes read after its `J`, over a channel and the loop's waker) before it joins: a room
//! lives on one thread, with no lock, and rooms spread over the cores; one large room is one
//! core's work.
//!
//! Run: `echo-server mio-multi --addr 127.0.0.1:7007 [--workers N] [--max-conns N] [--tls ...]`

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use anyhow::{anyhow, Context};
use mio::{Poll, Waker};

use crate::chat::{
    self,
    owner::{Handoff, Owner},
};
use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::models::mio_loop::{chat_listener, event_loop, WorkLoop, STOP};
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
    let limit = ConnLimit::of(config);
    if let Some(queue) = config.chat {
        return serve_chat(listeners, limit, queue, stop);
    }
    // One pool for every loop: `--offload-threads` bounds the server's CPU work, not a loop's.
    let pool = config.offload.map(Offload::pool).transpose()?;
    let mut loops = Vec::new();
    for listener in listeners {
        let poll = Poll::new().context("cannot create a poll")?;
        let waker = Arc::new(Waker::new(poll.registry(), STOP).context("cannot create a waker")?);
        let work_loop = WorkLoop::new(poll.registry(), config.work.is_some(), pool.as_ref())?
            .idle_timeout(config.defences.idle_timeout);
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

/// `--chat`: a loop per listener, each the owner of the rooms whose number modulo the loops is
/// its own; a member accepted by one loop whose `J` names another's room is moved there, its
/// socket and the bytes read after its `J`, over a channel and the loop's waker.
fn serve_chat(
    listeners: Vec<TcpListener>,
    limit: ConnLimit,
    queue: usize,
    stop: SignalPipe,
) -> anyhow::Result<()> {
    let stopped = AtomicBool::new(false);
    let mut polls = Vec::new();
    let (mut senders, mut inboxes) = (Vec::new(), Vec::new());
    for _ in &listeners {
        let poll = Poll::new().context("cannot create a poll")?;
        let waker = Arc::new(Waker::new(poll.registry(), STOP).context("cannot create a waker")?);
        let (tx, rx) = mpsc::channel();
        senders.push((tx, waker));
        inboxes.push(rx);
        polls.push(poll);
    }
    let loops = listeners.len();
    thread::scope(|s| {
        let mut handles = Vec::new();
        let work = listeners.into_iter().zip(polls).zip(inboxes).enumerate();
        for (index, ((listener, poll), inbox)) in work {
            let listener = chat_listener(listener)?;
            let handoff = Handoff {
                index,
                loops: senders.clone(),
                inbox,
            };
            let owns = move |room| chat::owner::loop_of(loops, room) == index;
            let owner = (Owner::of(queue, Box::new(owns)), Some(handoff));
            let (limit, stopped) = (Some(limit.clone()), &stopped);
            let stopped = move || stopped.load(Ordering::Acquire);
            let handle = thread::Builder::new()
                .name(format!("mio-{index}"))
                .spawn_scoped(s, move || {
                    chat::owner::run(poll, listener, limit, owner, &stopped)
                })
                .context("cannot start a loop thread")?;
            handles.push(handle);
        }
        let waited = stop.wait().context("cannot wait for SIGINT/SIGTERM");
        stopped.store(true, Ordering::Release);
        for (_, waker) in &senders {
            let _ = waker.wake();
        }
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow!("a loop thread panicked"))?
                .context("chat loop failed")?;
        }
        waited
    })
}
