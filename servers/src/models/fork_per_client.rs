//! `fork-per-client`: the parent accepts; for every connection it forks a child process that
//! echoes that one client with blocking I/O and exits. The parent closes its copy of the
//! connection, reaps children as `SIGCHLD` arrives, and on SIGTERM ends and reaps them all.
//!
//! Should win: isolation. A crash or leak in one client's process touches no other, and the
//! children share the parent's pages copy-on-write.
//! Should break: under churn (a fork and an exit per connection, ~200 µs each, plus page-table
//! copies) and at high concurrency (a process per client: PSS, scheduler load, context
//! switches).
//!
//! With `--tls`, the TLS configuration (and its session-ticket keys) is made before the first
//! fork, so a child resumes a session that another child began.
//!
//! With `--chat`, processes share no memory, so the rooms live in a hub process forked before
//! any child (`chat::hub`): each child links to it over a Unix socket, forwards its client's
//! frames up the link and writes back what comes down; the hub owns the rooms and their order.
//!
//! With the defences at accept (`--per-ip-max-conns`, `--block-after`), the parent, which
//! accepts, decides and counts; a child's place under the cap per address is given back when
//! it is reaped. A child counts its idle timeouts through the endings pipe.
//!
//! Run: `echo-server fork-per-client --addr 127.0.0.1:7007 [--max-conns N] [--tls ...]`
//!
//! The parent stays single-threaded for its whole life, so fork is sound, and children leave
//! with `_exit` so that nothing of the parent's (atexit handlers, stdio buffers) runs twice.
#![allow(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, signal, SigHandler, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, getpid, getppid, ForkResult, Pid};
use signal_hook::consts::SIGCHLD;

use crate::accept::{Acceptor, Wake, ACCEPT_BACKOFF};
use crate::chat::{
    self,
    hub::{Hub, HubHandle},
};
use crate::config::ServerConfig;
use crate::conn_limit::{ConnLimit, ConnSlot};
use crate::endings::ChildEndings;
use crate::signals::SignalPipe;
use crate::tls::serve_connection;

/// How long children get to leave after SIGTERM before they are killed.
const CHILD_GRACE: Duration = Duration::from_secs(1);

/// Forks a child per connection until SIGINT or SIGTERM, then ends and reaps every child.
pub fn serve(listener: TcpListener, config: &ServerConfig, stop: SignalPipe) -> anyhow::Result<()> {
    ensure_single_threaded("fork-per-client")?;
    let sigchld = SignalPipe::register(&[SIGCHLD]).context("cannot watch SIGCHLD")?;
    let endings = ChildEndings::new().context("cannot create the endings pipe")?;
    let mut acceptor =
        Acceptor::new(listener, stop, Some(sigchld)).context("cannot set up the accept loop")?;
    let mut children = HashSet::new();
    // The parent accepts, so it holds the one gate of the defences and every child's place
    // under the caps, given back when the child is reaped.
    let limit = ConnLimit::of(config);
    let mut places: HashMap<Pid, ConnSlot> = HashMap::new();
    let parent = getpid();
    let hub = config.chat.map(|_| start_hub(parent)).transpose()?;
    loop {
        match acceptor.wait_for_work().context("accept loop failed")? {
            Wake::Connection(stream, peer) => {
                // Refused (a defence) or over the cap: dropping the stream closes it at once.
                let Some(place) = limit.admit(&stream) else {
                    continue;
                };
                // SAFETY: this process is single-threaded (checked above, and this model
                // starts no thread), so the child is a complete copy with no lock held by a
                // thread that does not exist in it.
                match unsafe { fork_holding_signals() } {
                    Ok(ForkResult::Child) => {
                        // The child needs neither the listener nor the signal pipes.
                        drop(acceptor);
                        let hub = hub.as_ref().map(|(hub, _)| hub);
                        let code = serve_child(stream, peer, parent, config, (&endings, hub));
                        // SAFETY: `_exit` ends the child at once, without running the atexit
                        // handlers or flushing the stdio buffers it inherited from the parent.
                        unsafe { nix::libc::_exit(code) }
                    }
                    Ok(ForkResult::Parent { child }) => {
                        // The child has its own copy; ours is closed when `stream` drops.
                        children.insert(child);
                        places.insert(child, place);
                    }
                    // Out of processes or memory: drop this client, pause, keep serving.
                    Err(e) => {
                        eprintln!("echo-server: cannot fork for {peer}: {e}");
                        std::thread::sleep(ACCEPT_BACKOFF);
                    }
                }
            }
            // A child writes its counts before it exits: they are in the pipe by SIGCHLD.
            Wake::Extra => {
                reap(&mut children);
                places.retain(|child, _| children.contains(child));
                endings.collect();
            }
            Wake::Stop => break,
        }
    }
    end_children(&mut children, acceptor.extra());
    endings.collect();
    if let Some(hub) = hub {
        stop_hub(hub, acceptor.extra());
    }
    Ok(())
}

/// `--chat`: the rooms' hub ([`chat::hub`]), forked first, and its pid.
pub(crate) type HubProcess = (HubHandle, Pid);

/// Forks the chat hub; in the hub, serves the rooms until [`stop_hub`].
pub(crate) fn start_hub(parent: Pid) -> anyhow::Result<HubProcess> {
    let hub = Hub::bind().context("cannot bind the chat hub's socket")?;
    // SAFETY: called before the model forks anything else, from a process checked to be
    // single-threaded; the hub is a complete copy with no lock held by a missing thread.
    match unsafe { fork_holding_signals() }.context("cannot fork the chat hub")? {
        ForkResult::Parent { child } => Ok((hub.parent_side(), child)),
        ForkResult::Child => {
            let code = match become_hub(parent) {
                Ok(()) => hub.serve(),
                Err(e) => {
                    eprintln!("echo-server: chat hub: {e}");
                    1
                }
            };
            // SAFETY: as for every child: `_exit`, so nothing of the parent's runs twice.
            unsafe { nix::libc::_exit(code) }
        }
    }
}

/// Stops the hub, adds its counts to this process's, and reaps it.
pub(crate) fn stop_hub((hub, pid): HubProcess, sigchld: Option<&SignalPipe>) {
    hub.finish();
    end_children(&mut HashSet::from([pid]), sigchld);
}

/// What the hub does first: [`become_child`], but with `SIGINT` still held, so that a Ctrl-C
/// sent to the whole process group does not end the hub before the parent has its counts (the
/// parent stops it through its control socket; `SIGTERM` ends it if the parent dies).
fn become_hub(parent: Pid) -> Result<(), String> {
    become_child(parent)?;
    SigSet::from_iter([Signal::SIGINT])
        .thread_block()
        .map_err(|e| format!("cannot hold SIGINT: {e}"))
}

/// The child's whole life: restore default signal handling, die with the parent, serve the
/// client, and tell the parent through `endings` what to count.
fn serve_child(
    stream: TcpStream,
    peer: SocketAddr,
    parent: Pid,
    config: &ServerConfig,
    (endings, hub): (&ChildEndings, Option<&HubHandle>),
) -> i32 {
    if let Err(e) = become_child(parent) {
        eprintln!("echo-server: child for {peer}: {e}");
        return 1;
    }
    if let (Some(hub), Some(queue)) = (hub, config.chat) {
        let link = hub.link(queue);
        chat::locked::serve_connection(stream, link, &|| false, &|o| endings.report(o));
        return 0;
    }
    let (tls, work) = (config.tls.as_ref(), config.work.as_ref());
    let idle = config.defences.idle_timeout;
    serve_connection(stream, tls, (work, idle), &|| false, None, &|o| {
        endings.report(o)
    });
    0
}

/// The signals the parent handles and a child must take with their default action.
const PARENT_SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGCHLD];

/// Forks with [`PARENT_SIGNALS`] held back across the fork. A SIGTERM that reaches the child
/// before [`become_child`] has reset its handlers (the parent stopping right after a fork)
/// would run the parent's handler in the child and be lost, and the child would serve on
/// until SIGKILL; held, it waits for [`become_child`], which lets it through with the default
/// action. The parent's own are let through here.
///
/// # Safety
///
/// As `fork`: the process must be single-threaded.
pub(crate) unsafe fn fork_holding_signals() -> nix::Result<ForkResult> {
    let held = SigSet::from_iter(PARENT_SIGNALS);
    held.thread_block()?;
    // SAFETY: the caller promises a single-threaded process.
    let forked = unsafe { fork() };
    if !matches!(forked, Ok(ForkResult::Child)) {
        // Unblocking a valid set cannot fail; the fork's result is what the caller needs.
        let _ = held.thread_unblock();
    }
    forked
}

/// What a freshly forked child does first: the default action for the signals the parent
/// handles (so that SIGTERM from the parent ends it, one sent since the fork included), and
/// SIGTERM when the parent dies, so that no child outlives a parent killed outright.
pub(crate) fn become_child(parent: Pid) -> Result<(), String> {
    for sig in PARENT_SIGNALS {
        // SAFETY: installing the default disposition installs no handler code of ours, so
        // nothing can run in signal context; the parent's handlers are not wanted here.
        unsafe { signal(sig, SigHandler::SigDfl) }
            .map_err(|e| format!("cannot reset {sig}: {e}"))?;
    }
    // Held since `fork_holding_signals`: a stop already sent ends this child here.
    SigSet::from_iter(PARENT_SIGNALS)
        .thread_unblock()
        .map_err(|e| format!("cannot let the stop signals through: {e}"))?;
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)
        .map_err(|e| format!("cannot set PDEATHSIG: {e}"))?;
    // The parent may have died before PDEATHSIG was set.
    if getppid() != parent {
        return Err("the parent is gone".to_owned());
    }
    Ok(())
}

/// Fails unless this process has exactly one thread: fork is only sound then.
pub(crate) fn ensure_single_threaded(model: &str) -> anyhow::Result<()> {
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |dir| dir.count());
    if threads != 1 {
        bail!("{model} must fork from a single-threaded process, this one has {threads} threads");
    }
    Ok(())
}

/// Collects every child that has exited, so that none stays a zombie.
pub(crate) fn reap(children: &mut HashSet<Pid>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return,
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    children.remove(&pid);
                }
            }
            Err(Errno::EINTR) => {}
            // No children at all: whatever we counted is gone.
            Err(Errno::ECHILD) => {
                children.clear();
                return;
            }
            Err(e) => {
                eprintln!("echo-server: waitpid: {e}");
                return;
            }
        }
    }
}

/// SIGTERM to every child, a grace period to leave, then SIGKILL; every one is reaped.
pub(crate) fn end_children(children: &mut HashSet<Pid>, sigchld: Option<&SignalPipe>) {
    for &child in children.iter() {
        // ESRCH: it already exited and waits to be reaped below.
        let _ = kill(child, Signal::SIGTERM);
    }
    let deadline = Instant::now() + CHILD_GRACE;
    reap(children);
    while !children.is_empty() && Instant::now() < deadline {
        // Woken by SIGCHLD, or after a short slice to re-check the deadline.
        match sigchld {
            Some(pipe) => {
                let _ = poll(
                    &mut [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)],
                    PollTimeout::from(50u8),
                );
                pipe.drain();
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
        reap(children);
    }
    for child in children.drain() {
        let _ = kill(child, Signal::SIGKILL);
        while let Err(Errno::EINTR) = waitpid(child, None) {}
    }
}
