//! `blocking`: the iterative server. One thread accepts a client, echoes it until it
//! half-closes, then accepts the next; every other client waits in the listen backlog.
//!
//! Should win: one client at a time, where it does the least work per message of any model
//! (a blocking read and a blocking write, no readiness calls, no hand-offs).
//! Should break: at any concurrency above one. Clients queued behind a long-lived connection
//! are starved outright, which the load generator reports as `connections_starved`.
//!
//! With `--tls`, the handshake happens in the one thread too: a client that never completes it
//! holds every other client up to the handshake timeout.
//!
//! With `--chat`, its one client is a room's only member: the rest wait in the backlog, so a
//! room never has two members at once (the starvation of echo, for shared state).
//!
//! Run: `echo-server blocking --addr 127.0.0.1:7007 [--tls --tls-cert F --tls-key F]`

use std::net::TcpListener;
use std::time::Duration;

use anyhow::Context;

use crate::accept::{Acceptor, Wake};
use crate::chat::{self, locked::Rooms};
use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::endings;
use crate::signals::SignalPipe;
use crate::tls::serve_connection;

/// How often a connection's blocking reads and writes wake to check for a stop signal while
/// the client is idle. Only idle periods pay for it: the hot path stays a plain read and write.
const STOP_TICK: Duration = Duration::from_millis(200);

/// Serves one client at a time until SIGINT or SIGTERM.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let mut acceptor =
        Acceptor::new(listener, stop, None).context("cannot set up the accept loop")?;
    // `--chat`: rooms of one member at a time, the one being served.
    let rooms = Rooms::new(config.chat.unwrap_or_default());
    // The defences asked for at accept (the cap per address, the blocker).
    let limit = ConnLimit::of(config);
    loop {
        match acceptor.wait_for_work().context("accept loop failed")? {
            Wake::Connection(stream, _) => {
                // Refused by a defence: dropping the stream closes it at once.
                let Some(_slot) = limit.admit(&stream) else {
                    continue;
                };
                let stop = || acceptor.stop().raised();
                if config.chat.is_some() {
                    chat::locked::serve_connection(stream, rooms.link(), &stop, &endings::record);
                    continue;
                }
                let tls = config.tls.as_ref();
                let work = config.work.as_ref();
                let idle = config.defences.idle_timeout;
                serve_connection(
                    stream,
                    tls,
                    (work, idle),
                    &stop,
                    Some(STOP_TICK),
                    &endings::record,
                );
            }
            Wake::Stop => return Ok(()),
            Wake::Extra => {}
        }
    }
}
