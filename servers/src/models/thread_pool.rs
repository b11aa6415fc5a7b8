//! `thread-pool`: the accept loop hands each connection to a fixed pool of `--workers` threads
//! (a rayon `ThreadPool`); a worker echoes its connection with blocking I/O until the client
//! leaves, then takes the next one from the pool's queue.
//!
//! Should win: bounded resources. Threads are made once, so churn pays no thread creation, and
//! memory and context switches stay flat however many clients come.
//! Should break: with more clients than workers, the rest wait in the queue until a worker is
//! free; long-lived connections starve the others (that is the property to show, not a bug).
//!
//! With `--tls`, a worker does its client's handshake too; a client that never completes one
//! holds its worker up to the handshake timeout.
//!
//! With `--chat`, a worker serves one member for as long as it stays, sharing the rooms as
//! `thread-per-client` does (a lock per room); members beyond the pool wait in the queue and
//! are starved, as in echo.
//!
//! Run: `echo-server thread-pool --addr 127.0.0.1:7007 [--workers N] [--max-conns N] [--tls ...]`

use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Context;

use crate::accept::{Acceptor, Wake};
use crate::chat::{self, locked::Rooms};
use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::endings;
use crate::signals::SignalPipe;
use crate::tls::serve_connection;

/// Serves connections on the pool until SIGINT or SIGTERM; then the process exits, which
/// closes the connections the workers hold and those still queued.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.workers)
        .thread_name(|i| format!("pool-{i}"))
        .build()
        .context("cannot start the thread pool")?;
    let mut acceptor =
        Acceptor::new(listener, stop, None).context("cannot set up the accept loop")?;
    let limit = ConnLimit::of(config);
    let rooms = Rooms::new(config.chat.unwrap_or_default());
    loop {
        match acceptor.wait_for_work().context("accept loop failed")? {
            Wake::Connection(stream, _) => {
                // Refused (a defence) or over the cap (queued ones count): dropping the stream closes it at once.
                let Some(slot) = limit.admit(&stream) else {
                    continue;
                };
                let (tls, work) = (config.tls.clone(), config.work);
                let idle = config.defences.idle_timeout;
                let rooms = config.chat.map(|_| Arc::clone(&rooms));
                pool.spawn(move || {
                    let _slot = slot;
                    if let Some(rooms) = rooms {
                        let (link, record) = (rooms.link(), &endings::record);
                        return chat::locked::serve_connection(stream, link, &|| false, record);
                    }
                    let (tls, work) = (tls.as_ref(), work.as_ref());
                    serve_connection(stream, tls, (work, idle), &|| false, None, &endings::record);
                });
            }
            Wake::Stop => return Ok(()),
            Wake::Extra => {}
        }
    }
}
