//! Small echo servers with known faults, started inside the tests on 127.0.0.1:0, and helpers
//! to run loadgen against them. Every server stops when its handle is dropped.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use loadgen::Options;

/// How a test server misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum Behaviour {
    /// Echoes at once, a thread per connection.
    Echo,
    /// Waits this long before echoing each read.
    Delay(Duration),
    /// After this many reads in all, freezes every connection once for the given time.
    FreezeAfter(usize, Duration),
    /// Serves one connection at a time, to its end (an iterative server).
    Iterative,
    /// Flips one bit of every echo.
    Corrupt,
    /// After this many reads in all, closes every connection and stops listening.
    DieAfter(usize),
    /// Echoes only once this many bytes are waiting (needs a client that pipelines).
    EchoInBatchesOf(usize),
    /// Echoes the first connection it accepts; accepts the others and never reads them.
    ServeFirstOnly,
}

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    stopped: AtomicBool,
    reads: AtomicUsize,
    accepted: AtomicUsize,
    open: AtomicUsize,
    max_open: AtomicUsize,
    frozen_once: AtomicBool,
    /// Connections that ended with the client's FIN (a read of 0), and with a reset.
    eofs: AtomicUsize,
    resets: AtomicUsize,
    /// Clones of the connections still open, by accept number, so that stopping can shut them;
    /// a connection's clone goes when it ends (churn opens thousands).
    conns: Mutex<HashMap<usize, TcpStream>>,
    listener: Mutex<Option<TcpListener>>,
}

impl TestServer {
    pub fn start(behaviour: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        *state.listener.lock().unwrap() = Some(listener.try_clone().unwrap());
        let shared = Arc::clone(&state);
        thread::spawn(move || accept_loop(listener, behaviour, shared));
        TestServer { addr, state }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections that ended with the client's FIN, and with a reset.
    pub fn endings(&self) -> (usize, usize) {
        (
            self.state.eofs.load(Ordering::SeqCst),
            self.state.resets.load(Ordering::SeqCst),
        )
    }

    /// Most connections open at once.
    pub fn max_open(&self) -> usize {
        self.state.max_open.load(Ordering::SeqCst)
    }

    /// Options for a short run against this server, quiet, one thread.
    pub fn options(&self) -> Options {
        let mut o = Options::new(self.addr);
        o.connections = 4;
        o.duration = Duration::from_millis(1000);
        o.warmup = Duration::from_millis(200);
        o.threads = Some(1);
        o
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        stop(&self.state);
    }
}

fn stop(state: &State) {
    state.stopped.store(true, Ordering::SeqCst);
    if let Some(listener) = state.listener.lock().unwrap().take() {
        // Wakes the blocked accept (EINVAL on Linux), which ends the accept loop.
        let _ = socket2::SockRef::from(&listener).shutdown(Shutdown::Both);
    }
    for (_, conn) in state.conns.lock().unwrap().drain() {
        let _ = conn.shutdown(Shutdown::Both);
    }
}

fn accept_loop(listener: TcpListener, behaviour: Behaviour, state: Arc<State>) {
    for stream in listener.incoming() {
        if state.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let id = state.accepted.fetch_add(1, Ordering::SeqCst);
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        state.conns.lock().unwrap().insert(id, clone);
        let open = state.open.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_open.fetch_max(open, Ordering::SeqCst);
        if matches!(behaviour, Behaviour::ServeFirstOnly)
            && state.accepted.load(Ordering::SeqCst) > 1
        {
            // Held open in `conns`, never read.
            continue;
        }
        let shared = Arc::clone(&state);
        let serve = move || {
            serve(stream, behaviour, &shared);
            shared.conns.lock().unwrap().remove(&id);
            shared.open.fetch_sub(1, Ordering::SeqCst);
        };
        if matches!(behaviour, Behaviour::Iterative) {
            serve();
        } else {
            thread::spawn(serve);
        }
    }
}

fn serve(mut stream: TcpStream, behaviour: Behaviour, state: &State) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    let mut waiting = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => {
                state.eofs.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::ConnectionReset {
                    state.resets.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
            Ok(n) => n,
        };
        let reads = state.reads.fetch_add(1, Ordering::SeqCst) + 1;
        match behaviour {
            Behaviour::Echo | Behaviour::Iterative | Behaviour::ServeFirstOnly => {}
            Behaviour::Delay(d) => thread::sleep(d),
            Behaviour::FreezeAfter(after, d) => {
                if reads >= after && !state.frozen_once.swap(true, Ordering::SeqCst) {
                    thread::sleep(d);
                }
            }
            Behaviour::Corrupt => buf[0] ^= 1,
            Behaviour::DieAfter(after) => {
                if reads >= after {
                    stop(state);
                    return;
                }
            }
            Behaviour::EchoInBatchesOf(batch) => {
                waiting.extend_from_slice(&buf[..n]);
                if waiting.len() >= batch {
                    if stream.write_all(&waiting).is_err() {
                        return;
                    }
                    waiting.clear();
                }
                continue;
            }
        }
        if stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// How a UDP test server misbehaves.
#[derive(Clone, Copy, Debug)]
pub enum UdpBehaviour {
    /// Echoes every datagram at once.
    Echo,
    /// Drops every `n`th datagram it receives, echoes the others.
    DropEvery(usize),
    /// Holds every other datagram of a sender and echoes it right after the next one, so
    /// neighbours come back swapped (a held one goes out alone after 20 ms).
    SwapNeighbours,
    /// Echoes every datagram twice.
    EchoTwice,
}

/// A running UDP test server: one socket, one thread.
pub struct UdpTestServer {
    pub addr: SocketAddr,
    stopped: Arc<AtomicBool>,
}

impl UdpTestServer {
    pub fn start(behaviour: UdpBehaviour) -> UdpTestServer {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stopped = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stopped);
        thread::spawn(move || serve_udp(&socket, behaviour, &stop));
        UdpTestServer { addr, stopped }
    }

    /// loadgen options against this server over UDP: short, one thread, 100 ms timeout.
    pub fn options(&self) -> Options {
        let mut o = Options::new(self.addr);
        o.udp = true;
        o.connections = 4;
        o.duration = Duration::from_secs(1);
        o.warmup = Duration::from_millis(200);
        o.threads = Some(1);
        o.timeout = Duration::from_millis(100);
        o
    }
}

impl Drop for UdpTestServer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

fn serve_udp(socket: &std::net::UdpSocket, behaviour: UdpBehaviour, stopped: &AtomicBool) {
    let mut buf = vec![0u8; 65_536];
    let mut received = 0usize;
    let mut held: std::collections::HashMap<SocketAddr, (Vec<u8>, std::time::Instant)> =
        std::collections::HashMap::new();
    while !stopped.load(Ordering::SeqCst) {
        // A held datagram whose neighbour never came goes out alone.
        held.retain(|to, (data, since)| {
            let keep = since.elapsed() < Duration::from_millis(20);
            if !keep {
                let _ = socket.send_to(data, *to);
            }
            keep
        });
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        received += 1;
        let data = &buf[..n];
        match behaviour {
            UdpBehaviour::Echo => {
                let _ = socket.send_to(data, from);
            }
            UdpBehaviour::DropEvery(every) => {
                if received % every != 0 {
                    let _ = socket.send_to(data, from);
                }
            }
            UdpBehaviour::EchoTwice => {
                let _ = socket.send_to(data, from);
                let _ = socket.send_to(data, from);
            }
            UdpBehaviour::SwapNeighbours => match held.remove(&from) {
                Some((first, _)) => {
                    let _ = socket.send_to(data, from);
                    let _ = socket.send_to(&first, from);
                }
                None => {
                    held.insert(from, (data.to_vec(), std::time::Instant::now()));
                }
            },
        }
    }
}
