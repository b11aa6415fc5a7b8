//! `prefork`: `--workers` processes are forked up front (Apache prefork, gunicorn's sync
//! workers). Each worker blocks in `accept` on the shared listener, echoes that one client to
//! EOF, then accepts the next; the kernel wakes one waiting worker per connection. The parent
//! only supervises: it restarts a worker that dies, and on SIGTERM ends and reaps them all.
//!
//! Should win: no fork per connection (churn pays only accept), isolation between workers, and
//! simple blocking code.
//! Should break: concurrency is capped at the number of workers, like a thread pool whose
//! threads are processes: clients beyond it wait in the backlog, and memory is a process per
//! worker.
//!
//! `--max-conns` below `--workers` is enforced across processes with a pipe holding one token
//! per allowed connection: a worker that finds none closes its new connection at once.
//!
//! The defences at accept (`--per-ip-max-conns`, `--block-after`) are decided by the parent
//! as broker: a worker asks it over a socket pair of its own before it serves a connection,
//! and tells it when the connection closes (`defence::broker`), so the counts per address are
//! exact across workers; a worker that dies has its places given back when it is reaped.
//! Idle timeouts are counted by the workers through the endings pipe.
//!
//! With `--tls`, a worker does its client's handshake too (a client that never completes one
//! holds its worker up to the handshake timeout); the TLS configuration and its session-ticket
//! keys are made before the first fork, so every worker resumes every other's sessions.
//!
//! With `--chat`, a worker serves one member for as long as it stays, linked to the rooms'
//! hub process as `fork-per-client`'s children are (`chat::hub`); members beyond the workers
//! wait in the backlog and are starved.
//!
//! Run: `echo-server prefork --addr 127.0.0.1:7007 [--workers N] [--max-conns N] [--tls ...]`
#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::TcpListener;
use std::os::fd::{AsFd, OwnedFd};

use anyhow::Context;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::{getpid, pipe, read, write, ForkResult, Pid};
use signal_hook::consts::SIGCHLD;

use crate::accept::{accept_error_is_per_connection, log_accept_error, ACCEPT_BACKOFF};
use crate::chat::{self, hub::HubHandle};
use crate::config::ServerConfig;
use crate::conn_limit::peer_ip;
use crate::defence::broker::{self, Desk, Link};
use crate::defence::{turn_away, Gate};
use crate::endings::{ChildEndings, Ending, Outcome};
use crate::models::fork_per_client::{
    become_child, end_children, ensure_single_threaded, fork_holding_signals, reap, start_hub,
    stop_hub,
};
use crate::signals::SignalPipe;
use crate::tls::serve_connection;

/// Forks the workers, keeps their number up until SIGINT or SIGTERM, then ends them.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    ensure_single_threaded("prefork")?;
    let sigchld = SignalPipe::register(&[SIGCHLD]).context("cannot watch SIGCHLD")?;
    // Workers block in accept; the parent never accepts.
    listener
        .set_nonblocking(false)
        .context("cannot make the listener blocking")?;
    let tokens = (config.max_conns < config.workers)
        .then(|| Tokens::new(config.max_conns))
        .transpose()
        .context("cannot create the --max-conns token pipe")?;
    let endings = ChildEndings::new().context("cannot create the endings pipe")?;
    let parent = getpid();
    let hub = config.chat.map(|_| start_hub(parent)).transpose()?;
    let mut workers = HashSet::new();
    // The defences at accept: the parent holds the one gate and answers each worker at its
    // desk (`defence::broker`).
    let gate = config
        .defences
        .at_accept()
        .then(|| Gate::new(config.defences));
    let mut desks: HashMap<Pid, Desk> = HashMap::new();
    while !stop.raised() {
        // Start (or restart) workers up to the count.
        while workers.len() < config.workers {
            let hub = hub.as_ref().map(|(hub, _)| hub);
            let pair = match gate.is_some().then(broker::pair).transpose() {
                Ok(pair) => pair,
                Err(e) => {
                    eprintln!("echo-server: cannot open a worker's link to the parent: {e}");
                    std::thread::sleep(ACCEPT_BACKOFF);
                    break;
                }
            };
            let (desk, link) = pair.unzip();
            let shared = (tokens.as_ref(), link.as_ref());
            match spawn_worker(&listener, shared, (&endings, hub), parent, config) {
                Ok(pid) => {
                    workers.insert(pid);
                    // The worker's end is the worker's alone: ours closes here.
                    drop(link);
                    if let Some(desk) = desk {
                        desks.insert(pid, desk);
                    }
                }
                Err(e) => {
                    eprintln!("echo-server: cannot fork a worker: {e}");
                    std::thread::sleep(ACCEPT_BACKOFF);
                    break;
                }
            }
        }
        let mut fds = vec![
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            PollFd::new(sigchld.as_fd(), PollFlags::POLLIN),
            PollFd::new(endings.as_fd(), PollFlags::POLLIN),
        ];
        fds.extend(
            desks
                .values()
                .map(|desk| PollFd::new(desk.as_fd(), PollFlags::POLLIN)),
        );
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("poll failed"),
        }
        if fds[0].any().unwrap_or(false) {
            break;
        }
        drop(fds);
        if let Some(gate) = &gate {
            // A desk whose worker is gone is given back when the worker is reaped.
            for desk in desks.values_mut() {
                desk.serve(gate);
            }
        }
        endings.collect();
        sigchld.drain();
        let before = workers.len();
        reap(&mut workers);
        if let Some(gate) = &gate {
            let gone: Vec<Pid> = desks
                .keys()
                .filter(|pid| !workers.contains(pid))
                .copied()
                .collect();
            for pid in gone {
                if let Some(desk) = desks.remove(&pid) {
                    desk.release(gate);
                }
            }
        }
        if workers.len() < before && !stop.raised() {
            eprintln!(
                "echo-server: {} worker(s) died; restarting",
                before - workers.len()
            );
            // A worker that dies at once must not make the parent fork in a tight loop.
            std::thread::sleep(ACCEPT_BACKOFF);
        }
    }
    end_children(&mut workers, Some(&sigchld));
    endings.collect();
    if let Some(hub) = hub {
        stop_hub(hub, Some(&sigchld));
    }
    Ok(())
}

/// Forks one worker; returns its pid in the parent.
fn spawn_worker(
    listener: &TcpListener,
    shared: (Option<&Tokens>, Option<&Link>),
    endings: (&ChildEndings, Option<&HubHandle>),
    parent: Pid,
    config: &ServerConfig,
) -> nix::Result<Pid> {
    // SAFETY: the parent is single-threaded (checked in `serve`; this model starts no thread),
    // so the child is a complete copy with no lock held by a thread that does not exist in it.
    match unsafe { fork_holding_signals() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let code = match become_child(parent) {
                Ok(()) => worker(listener, shared, endings, config),
                Err(e) => {
                    eprintln!("echo-server: prefork worker: {e}");
                    1
                }
            };
            // SAFETY: `_exit` ends the worker at once, without running the atexit handlers or
            // flushing the stdio buffers it inherited from the parent.
            unsafe { nix::libc::_exit(code) }
        }
    }
}

/// A worker's life: accept one client, echo it to EOF, repeat, until SIGTERM ends it.
fn worker(
    listener: &TcpListener,
    (tokens, link): (Option<&Tokens>, Option<&Link>),
    (endings, hub): (&ChildEndings, Option<&HubHandle>),
    config: &ServerConfig,
) -> i32 {
    let (tls, work) = (config.tls.as_ref(), config.work.as_ref());
    let idle = config.defences.idle_timeout;
    loop {
        let (stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // The client gave up before we took it; try the next one.
            Err(e) if accept_error_is_per_connection(&e) => continue,
            // Out of descriptors or memory: survive, and retry after a pause.
            Err(e) => {
                log_accept_error(&e);
                std::thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        // Asked of the parent, which holds the defences' one gate: refused, it is told why
        // and closed when `stream` drops.
        let admitted = match link {
            Some(link) => match peer_ip(&stream) {
                Some(ip) => match link.admit(ip) {
                    Ok(()) => Some((link, ip)),
                    Err(refusal) => {
                        turn_away(&stream, refusal);
                        continue;
                    }
                },
                // Gone before we could read its address: nothing to serve.
                None => continue,
            },
            None => None,
        };
        // Over the cap: dropping the stream closes it at once.
        if tokens.is_some_and(|t| !t.take()) {
            if let Some((link, ip)) = admitted {
                link.leave(ip);
            }
            continue;
        }
        if let Err(e) = stream.set_nodelay(true) {
            endings.report(&Outcome {
                handshake: None,
                ending: Some(Ending::of(&e)),
            });
        } else if let (Some(hub), Some(queue)) = (hub, config.chat) {
            let link = hub.link(queue);
            chat::locked::serve_connection(stream, link, &|| false, &|o| endings.report(o));
        } else {
            serve_connection(stream, tls, (work, idle), &|| false, None, &|o| {
                endings.report(o)
            });
        }
        if let Some(t) = tokens {
            t.give_back();
        }
        if let Some((link, ip)) = admitted {
            link.leave(ip);
        }
    }
}

/// A semaphore shared by forked processes: a pipe holding one byte per free connection slot.
struct Tokens {
    read_end: OwnedFd,
    write_end: OwnedFd,
}

impl Tokens {
    fn new(count: usize) -> nix::Result<Tokens> {
        let (read_end, write_end) = pipe()?;
        // Taking a token must never block: none left means the connection is over the cap.
        fcntl(&read_end, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        for _ in 0..count {
            write(&write_end, b"t")?;
        }
        Ok(Tokens {
            read_end,
            write_end,
        })
    }

    /// Takes a slot, or `false` when all are in use.
    fn take(&self) -> bool {
        let mut byte = [0u8; 1];
        loop {
            match read(&self.read_end, &mut byte) {
                Ok(1) => return true,
                Err(Errno::EINTR) => {}
                _ => return false,
            }
        }
    }

    /// Frees a slot taken with [`Tokens::take`].
    fn give_back(&self) {
        while let Err(Errno::EINTR) = write(&self.write_end, b"t") {}
    }
}
