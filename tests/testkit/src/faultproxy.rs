//! A TCP proxy on 127.0.0.1 that misbehaves on purpose, as real networks do: it slices what
//! it forwards into 1-byte or random pieces with a pause between them (so that they arrive as
//! separate segments), stalls once for a while, resets a connection mid-stream, and can stop
//! reading the server's answers with a small receive buffer, so that the server's writes come
//! back short.
//!
//! One thread per direction per connection; the proxy stops when dropped (connections still
//! open are shut down). Everything is bounded: every socket has a timeout.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::Duration;

use loadgen::rng::Rng;

/// How long any proxied socket may wait on a read or write before the proxy gives up on it.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// How one direction cuts what it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slice {
    /// As it comes.
    Whole,
    /// One byte per write.
    Bytes1,
    /// Pieces of 1 to `max` bytes, sizes from a fixed seed.
    Random {
        /// Largest piece.
        max: usize,
    },
}

/// What the proxy does to one direction of every connection.
#[derive(Debug, Clone, Copy)]
pub struct Direction {
    /// How writes are cut.
    pub slice: Slice,
    /// Pause after each piece (with `TCP_NODELAY`, so pieces are not coalesced).
    pub pace: Duration,
    /// Once this many bytes have passed (over all connections), stop forwarding for the time
    /// given, once.
    pub stall: Option<(u64, Duration)>,
}

impl Default for Direction {
    fn default() -> Direction {
        Direction {
            slice: Slice::Whole,
            pace: Duration::ZERO,
            stall: None,
        }
    }
}

/// The faults of a proxy.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Client to server.
    pub to_server: Direction,
    /// Server to client.
    pub to_client: Direction,
    /// Reset both sides of a connection (close with linger 0) once this many bytes of it have
    /// gone to the server.
    pub reset_after: Option<u64>,
    /// Do not read the server's answers for this long after a connection opens, with a small
    /// receive buffer (4 KiB) towards the server: its writes fill up and come back short, and
    /// it must keep the rest.
    pub hold_answers: Option<Duration>,
}

/// A running proxy.
pub struct FaultProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    stopped: AtomicBool,
    /// Bytes forwarded so far per direction (to server, to client), for the one-time stalls.
    forwarded: [AtomicU64; 2],
    stalled: [AtomicBool; 2],
    resets: AtomicUsize,
    /// Every proxied socket, to shut down when the proxy is dropped. Weak: a reset closes a
    /// socket by dropping its last handle, which these must not keep alive.
    sockets: Mutex<Vec<Weak<TcpStream>>>,
    listener: Mutex<Option<TcpListener>>,
}

impl FaultProxy {
    /// Starts a proxy to `target` with these faults.
    pub fn start(target: SocketAddr, faults: Faults) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        *lock(&shared.listener) = Some(listener.try_clone()?);
        let accept_shared = Arc::clone(&shared);
        thread::spawn(move || accept_loop(listener, target, faults, accept_shared));
        Ok(FaultProxy { addr, shared })
    }

    /// Connections the proxy has reset so far.
    pub fn resets(&self) -> usize {
        self.shared.resets.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        if let Some(listener) = lock(&self.shared.listener).take() {
            // Wakes the blocked accept (EINVAL on Linux), which ends the accept loop.
            let _ = socket2::SockRef::from(&listener).shutdown(Shutdown::Both);
        }
        for socket in lock(&self.shared.sockets).drain(..) {
            if let Some(socket) = socket.upgrade() {
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept_loop(listener: TcpListener, target: SocketAddr, faults: Faults, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = connect_upstream(target, faults) else {
            continue;
        };
        let _ = client.set_nodelay(true);
        // One descriptor per socket, shared by the two pumps: a reset must be able to close it.
        let (client, server) = (Arc::new(client), Arc::new(server));
        lock(&shared.sockets).extend([Arc::downgrade(&client), Arc::downgrade(&server)]);
        let up = (
            Arc::clone(&client),
            Arc::clone(&server),
            Arc::clone(&shared),
        );
        thread::spawn(move || pump(&up.0, &up.1, faults, Way::ToServer, &up.2));
        let down = Arc::clone(&shared);
        thread::spawn(move || pump(&server, &client, faults, Way::ToClient, &down));
    }
}

/// The proxy's socket to the server: `TCP_NODELAY`, and a small receive buffer when answers
/// are to be held back (set before connecting, so the window is small from the start).
fn connect_upstream(target: SocketAddr, faults: Faults) -> io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    if faults.hold_answers.is_some() {
        socket.set_recv_buffer_size(4096)?;
    }
    socket.connect_timeout(&target.into(), IO_TIMEOUT)?;
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[derive(Clone, Copy, PartialEq)]
enum Way {
    ToServer,
    ToClient,
}

/// Forwards one direction until EOF or an error, applying that direction's faults.
fn pump(from: &Arc<TcpStream>, to: &Arc<TcpStream>, faults: Faults, way: Way, shared: &Shared) {
    let (dir, index) = match way {
        Way::ToServer => (faults.to_server, 0),
        Way::ToClient => (faults.to_client, 1),
    };
    let _ = from.set_read_timeout(Some(IO_TIMEOUT));
    let _ = to.set_write_timeout(Some(IO_TIMEOUT));
    // Sizes that vary, the same on every run.
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15_u64 ^ index as u64);
    let mut buf = vec![0u8; 64 * 1024];
    let mut passed = 0u64;
    if way == Way::ToClient {
        if let Some(hold) = faults.hold_answers {
            // The server's answers pile up behind a 4 KiB window meanwhile.
            thread::sleep(hold);
        }
    }
    loop {
        let n = match (&**from).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if way == Way::ToServer {
            if let Some(limit) = faults.reset_after.filter(|&l| passed + n as u64 >= l) {
                let keep = (limit - passed) as usize;
                let _ = (&**to).write_all(&buf[..keep]);
                shared.resets.fetch_add(1, Ordering::SeqCst);
                reset(from);
                reset(to);
                return;
            }
        }
        if forward(&mut &**to, &buf[..n], dir, &mut rng, index, shared).is_err() {
            break;
        }
        passed += n as u64;
    }
    // Pass the half-close on (the other side sees EOF once everything before it arrived),
    // unless the connection is being reset (linger 0): then the other side gets only the reset.
    if socket2::SockRef::from(&**to).linger().ok() != Some(Some(Duration::ZERO)) {
        let _ = to.shutdown(Shutdown::Write);
    }
}

/// Writes `data` in this direction's pieces, pausing between them, stalling once on cue.
fn forward(
    to: &mut &TcpStream,
    mut data: &[u8],
    dir: Direction,
    rng: &mut Rng,
    index: usize,
    shared: &Shared,
) -> io::Result<()> {
    while !data.is_empty() {
        let len = match dir.slice {
            Slice::Whole => data.len(),
            Slice::Bytes1 => 1,
            Slice::Random { max } => rng.range(1, max.max(1)),
        }
        .min(data.len());
        to.write_all(&data[..len])?;
        data = &data[len..];
        let total = shared.forwarded[index].fetch_add(len as u64, Ordering::SeqCst) + len as u64;
        if let Some((after, pause)) = dir.stall {
            if total >= after && !shared.stalled[index].swap(true, Ordering::SeqCst) {
                thread::sleep(pause);
            }
        }
        if !dir.pace.is_zero() {
            thread::sleep(dir.pace);
        }
    }
    Ok(())
}

/// Makes the socket end with a reset, not a FIN: linger 0, so that closing it aborts it, and
/// its read side shut so that the other pump, blocked reading it, wakes up, ends and drops its
/// handle. The socket closes, and resets, when the last handle goes.
fn reset(stream: &TcpStream) {
    let sock = socket2::SockRef::from(stream);
    let _ = sock.set_linger(Some(Duration::ZERO));
    let _ = sock.shutdown(Shutdown::Read);
}
