//! `thread-per-client`: the accept loop hands every connection to a new OS thread, which
//! echoes it with blocking reads and writes and exits when the client leaves.
//!
//! Should win: moderate concurrency with simple code; the kernel schedules the threads, so a
//! slow client never holds up another.
//! Should break: at thousands of connections (a stack and a kernel task per client: memory per
//! connection and context switches climb) and under churn, where a thread is created and torn
//! down for every connection (~17 µs each).
//!
//! Run: `echo-server thread-per-client --addr 127.0.0.1:7007 [--max-conns N]`

use std::net::TcpListener;
use std::thread;

use anyhow::Context;

use crate::accept::{Acceptor, Wake};
use crate::config::ServerConfig;
use crate::conn_limit::ConnLimit;
use crate::echo::echo_blocking;
use crate::endings;
use crate::signals::SignalPipe;

/// Serves each connection on its own thread until SIGINT or SIGTERM. On stop the process
/// exits, which closes the connections the threads still hold.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    let mut acceptor =
        Acceptor::new(listener, stop, None).context("cannot set up the accept loop")?;
    let limit = ConnLimit::new(config.max_conns);
    loop {
        match acceptor.wait_for_work().context("accept loop failed")? {
            Wake::Connection(mut stream, peer) => {
                // Over the cap: dropping the stream closes it at once.
                let Some(slot) = limit.try_acquire() else {
                    continue;
                };
                let spawned =
                    thread::Builder::new()
                        .name(format!("conn {peer}"))
                        .spawn(move || {
                            let _slot = slot;
                            if let Err(e) = echo_blocking(&mut stream, &|| false) {
                                endings::ended_by(&e);
                            }
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
