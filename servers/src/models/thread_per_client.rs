//! `thread-per-client`: the accept loop hands every connection to a new OS thread, which
//! echoes it with blocking reads and writes and exits when the client leaves.
//!
//! Should win: moderate concurrency with simple code; the kernel schedules the threads, so a
//! slow client never holds up another.
//! Should break: at thousands of connections (a stack and a kernel task per client: memory per
//! connection and context switches climb) and under churn, where a thread is created and torn
//! down for every connection (~17 µs each).
//!
//! With `--tls`, each thread also does its client's handshake, so handshakes run in parallel
//! and the kernel preempts them: one client's handshake never delays another's echo.
//!
//! With `--chat`, the rooms are shared behind locks (`chat::locked`: a `Mutex` over the map of
//! rooms to join and leave, a `Mutex` per room held by the sender's thread for its fan-out
//! into every member's mailbox); each member's own thread writes its own socket, woken by an
//! eventfd, so a slow member holds up nobody.
//!
//! Run: `echo-server thread-per-client --addr 127.0.0.1:7007 [--max-conns N] [--tls ...]`

use std::net::TcpListener;
use std::sync::Arc;
use std::thread;

use anyhow::Context;

use crate::accept::{Acceptor, Wake};
use crate::chat::{self, locked::Rooms};
use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::endings;
use crate::signals::SignalPipe;
use crate::tls::serve_connection;

/// Serves each connection on its own thread until SIGINT or SIGTERM. On stop the process
/// exits, which closes the connections the threads still hold.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let mut acceptor =
        Acceptor::new(listener, stop, None).context("cannot set up the accept loop")?;
    let limit = ConnLimit::of(config);
    let rooms = Rooms::new(config.chat.unwrap_or_default());
    loop {
        match acceptor.wait_for_work().context("accept loop failed")? {
            Wake::Connection(stream, peer) => {
                // Refused (a defence) or over the cap: dropping the stream closes it at once.
                let Some(slot) = limit.admit(&stream) else {
                    continue;
                };
                let (tls, work) = (config.tls.clone(), config.work);
                let idle = config.defences.idle_timeout;
                let rooms = config.chat.map(|_| Arc::clone(&rooms));
                let spawned =
                    thread::Builder::new()
                        .name(format!("conn {peer}"))
                        .spawn(move || {
                            let _slot = slot;
                            if let Some(rooms) = rooms {
                                let link = rooms.link();
                                let record = &endings::record;
                                return chat::locked::serve_connection(
                                    stream,
                                    link,
                                    &|| false,
                                    record,
                                );
                            }
                            serve_connection(
                                stream,
                                tls.as_ref(),
                                (work.as_ref(), idle),
                                &|| false,
                                None,
                                &endings::record,
                            );
                        });
                // Out of threads (EAGAIN) or memory: this client is dropped, the server lives.
                if let Err(e) = spawned {
                    eprintln!("echo-server: cannot spawn a thread for {peer}: {e}");
                }
            }
            Wake::Stop => return Ok(()),
            Wake::Extra => {}
        }
    }
}
