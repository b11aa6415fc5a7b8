//! Echo with a cost (`--work`): the request header, the calibrated CPU work, the request loop
//! of the blocking models and of the runtimes, and the pool that `--offload pool` hands CPU
//! work to ([`Offload`]). The event loops keep their own state machines over [`parse`] and
//! [`Work::burn`], and wait with their own timers.
//!
//! A request is a 16-byte header, then payload, and comes back unchanged once its cost is
//! paid:
//!
//! | bytes | field |
//! |-------|-------|
//! | 0–3   | `EBW1` |
//! | 4–7   | total length, u32 big-endian, header included: [`HEADER`] to [`MAX_LEN`] |
//! | 8–11  | CPU work, ns, u32 big-endian, at most [`MAX_CPU_NS`] |
//! | 12–15 | wait, µs, u32 big-endian, at most [`MAX_WAIT_US`] |
//!
//! The server reads the whole request, does the CPU work, then the wait, then writes the
//! request back. Requests on one connection are served one after another, in order. A header
//! that breaks a rule closes its connection, counted by kind ([`Ending::BadMagic`],
//! [`Ending::BadLength`], [`Ending::OverCap`]) for the `work:` line at exit.
//!
//! CPU work is computation, not a clock: [`Work::calibrate`] times a fixed loop on the thread
//! CPU clock before the server announces itself, and a request of N ns runs N ns' worth of
//! iterations however long preemption stretches them, as real work would.

use std::future::Future;
use std::hint::black_box;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::defence::{restart, IdleClock};
use crate::echo::{write_all_until, HalfClose, READ_BUF};
use crate::endings::Ending;
use crate::errors::{interrupted, timed_out};

/// The magic that opens every request.
pub const MAGIC: [u8; 4] = *b"EBW1";

/// Bytes of the header.
pub const HEADER: usize = 16;

/// The longest request, header included.
pub const MAX_LEN: usize = 1 << 20;

/// The most CPU work one request may ask for: a second.
pub const MAX_CPU_NS: u32 = 1_000_000_000;

/// The longest wait one request may ask for: ten seconds.
pub const MAX_WAIT_US: u32 = 10_000_000;

/// What one request costs, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Total length of the request, header included, bytes.
    pub len: usize,
    /// CPU work, ns.
    pub cpu_ns: u32,
    /// Wait after the CPU work, µs.
    pub wait_us: u32,
}

impl Cost {
    /// The wait, as a duration.
    pub fn wait(&self) -> Duration {
        Duration::from_micros(u64::from(self.wait_us))
    }
}

/// The header of a request of `len` bytes in all asking for `cpu_ns` of CPU and a wait of
/// `wait_us`: what [`parse`] reads.
pub fn header(len: u32, cpu_ns: u32, wait_us: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&MAGIC);
    h[4..8].copy_from_slice(&len.to_be_bytes());
    h[8..12].copy_from_slice(&cpu_ns.to_be_bytes());
    h[12..].copy_from_slice(&wait_us.to_be_bytes());
    h
}

/// Reads a header; the error is the ending its connection is counted as.
pub fn parse(header: &[u8; HEADER]) -> Result<Cost, Ending> {
    let field = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if header[..4] != MAGIC {
        return Err(Ending::BadMagic);
    }
    let len = field(4) as usize;
    if !(HEADER..=MAX_LEN).contains(&len) {
        return Err(Ending::BadLength);
    }
    let (cpu_ns, wait_us) = (field(8), field(12));
    if cpu_ns > MAX_CPU_NS || wait_us > MAX_WAIT_US {
        return Err(Ending::OverCap);
    }
    Ok(Cost {
        len,
        cpu_ns,
        wait_us,
    })
}

/// The header of the first request in `buf`, if all 16 bytes of it are there.
pub fn parse_front(buf: &[u8]) -> Option<Result<Cost, Ending>> {
    let header: &[u8; HEADER] = buf.get(..HEADER)?.try_into().ok()?;
    Some(parse(header))
}

/// The calibrated CPU work every model of one server does: how many iterations of a fixed loop
/// make a nanosecond of CPU on this machine.
#[derive(Debug, Clone, Copy)]
pub struct Work {
    iterations_per_ns: f64,
}

/// Trials of the calibration, of which the median counts.
const TRIALS: usize = 7;

/// The CPU time one trial aims at.
const TRIAL: Duration = Duration::from_millis(2);

/// Iterations between looks at the stop flag while a long request burns (about a millisecond).
const BURN_CHUNK: u64 = 1 << 20;

impl Work {
    /// Times the loop on this thread's CPU clock (the median of [`TRIALS`] trials), so that
    /// preemption during a trial does not count.
    pub fn calibrate() -> Work {
        // A first guess sizes the trials; it also brings the loop into the caches.
        let guess = per_ns(1 << 16).max(0.01);
        let iterations = (TRIAL.as_nanos() as f64 * guess) as u64;
        let mut trials: Vec<f64> = (0..TRIALS).map(|_| per_ns(iterations.max(1))).collect();
        trials.sort_by(f64::total_cmp);
        Work {
            iterations_per_ns: trials[TRIALS / 2],
        }
    }

    /// Work at a rate measured elsewhere, for tests.
    pub fn at(iterations_per_ns: f64) -> Work {
        Work { iterations_per_ns }
    }

    /// Iterations of the loop in `ns` of CPU.
    pub fn iterations(&self, ns: u32) -> u64 {
        (f64::from(ns) * self.iterations_per_ns).round() as u64
    }

    /// The line the server prints on stderr before it announces itself.
    pub fn line(&self) -> String {
        format!(
            "work: 1 ms of CPU = {} iterations",
            self.iterations(1_000_000)
        )
    }

    /// Runs `ns` of CPU work, in chunks between which `stop` is asked: a stopped server
    /// abandons the rest.
    pub fn burn(&self, ns: u32, stop: &dyn Fn() -> bool) {
        let mut left = self.iterations(ns);
        while left > 0 && !stop() {
            let chunk = left.min(BURN_CHUNK);
            spin(chunk);
            left -= chunk;
        }
    }
}

/// The loop: a multiply-xorshift chain whose every step needs the last, so that it can neither
/// be vectorised nor skipped; `black_box` keeps the optimizer from computing it away.
fn spin(iterations: u64) -> u64 {
    let mut x = black_box(0x9e37_79b9_7f4a_7c15u64);
    for _ in 0..black_box(iterations) {
        x = x
            .wrapping_mul(0x5851_f42d_4c95_7f2d)
            .wrapping_add(0x1405_7b7e_f767_814f);
        x ^= x >> 29;
    }
    black_box(x)
}

/// Iterations per ns of thread CPU time over one run of `iterations`.
fn per_ns(iterations: u64) -> f64 {
    let start = thread_cpu();
    spin(iterations);
    let took = thread_cpu().saturating_sub(start).as_nanos().max(1);
    iterations as f64 / took as f64
}

/// This thread's CPU time.
fn thread_cpu() -> Duration {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

/// Sleeps for `wait` (`thread::sleep`: the blocking models' own way of waiting on a slow
/// backend), in slices between which `stop` is asked.
pub fn sleep_unless_stopped(wait: Duration, stop: &dyn Fn() -> bool) {
    const SLICE: Duration = Duration::from_millis(50);
    let until = Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stop() {
            return;
        }
        std::thread::sleep(left.min(SLICE));
    }
}

/// Serves requests until the client half-closes after a whole request (then closes our side)
/// or `stop`: the blocking models' loop, on a thread or a process of their own.
///
/// A buffered reader takes pipelined requests in one read; at most one request (up to
/// [`MAX_LEN`]) and one read's worth of the next are held. Read and write timeouts, when the
/// model sets them, are ticks at which `stop` is asked. With `idle` (`--idle-timeout`), each
/// read first waits for the socket with the connection's deadline, and a connection past it is
/// ended as [`Ending::IdleTimeout`].
///
/// The stream is borrowed, so that the caller counts how the connection ended before it is
/// closed: a client that sees it closed finds it counted.
pub fn serve_blocking<S>(
    stream: &mut S,
    work: &Work,
    idle: Option<Duration>,
    stop: &dyn Fn() -> bool,
) -> Result<(), Ending>
where
    S: Read + Write + HalfClose + AsFd,
{
    let mut reader = BufReader::with_capacity(READ_BUF, stream);
    let mut request = Vec::new();
    let mut clock = IdleClock::start(idle);
    loop {
        let mut header = [0u8; HEADER];
        match read_full(&mut reader, &mut header, &mut clock, stop)? {
            _ if stop() => return Ok(()),
            // Half-close between requests: every one has been answered.
            0 => return (**reader.get_mut()).shutdown_write().map_err(io),
            HEADER => {}
            _ => return Err(Ending::EofMidMessage),
        }
        let cost = parse(&header)?;
        request.clear();
        request.extend_from_slice(&header);
        request.resize(cost.len, 0);
        // The request began with its header: the clock runs on for the rest of it.
        let got = read_full(&mut reader, &mut request[HEADER..], &mut clock, stop)?;
        if stop() {
            return Ok(());
        }
        if got < cost.len - HEADER {
            return Err(Ending::EofMidMessage);
        }
        work.burn(cost.cpu_ns, stop);
        sleep_unless_stopped(cost.wait(), stop);
        if stop() {
            return Ok(());
        }
        write_all_until(reader.get_mut(), &request, stop).map_err(io)?;
        restart(&mut clock);
        // Give back what one large request made the buffer grow to.
        if request.capacity() > READ_BUF {
            request = Vec::new();
        }
    }
}

/// An I/O error as the ending of its connection.
fn io(e: io::Error) -> Ending {
    Ending::of(&e)
}

/// Reads until `buf` is full, the peer's EOF, or `stop`; how much it read. With a `clock`,
/// a read that would wait first waits for the socket no later than the clock's deadline, and
/// the first byte of a request (`buf` being a header) restarts the clock.
fn read_full<S: Read + AsFd>(
    reader: &mut BufReader<&mut S>,
    buf: &mut [u8],
    clock: &mut Option<IdleClock>,
    stop: &dyn Fn() -> bool,
) -> Result<usize, Ending> {
    let mut filled = 0;
    let starts_request = buf.len() == HEADER;
    while filled < buf.len() && !stop() {
        if let Some(clock) = clock.as_ref().filter(|_| reader.buffer().is_empty()) {
            if !readable_by(reader.get_ref().as_fd(), clock.deadline())? {
                continue;
            }
        }
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => {
                if filled == 0 && starts_request {
                    restart(clock);
                }
                filled += n;
            }
            // A signal, or the tick of a read timeout: ask `stop` again.
            Err(e) if interrupted(&e) || timed_out(&e) => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(filled)
}

/// Waits until `fd` is readable (true), for at most a tick at which the caller asks `stop`
/// again (false); past `deadline`, [`Ending::IdleTimeout`].
fn readable_by(fd: BorrowedFd<'_>, deadline: Instant) -> Result<bool, Ending> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    const TICK: Duration = Duration::from_millis(200);
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(Ending::IdleTimeout);
    }
    let wait = PollTimeout::try_from(left.min(TICK)).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    match poll(&mut fds, wait) {
        Ok(0) | Err(nix::errno::Errno::EINTR) => Ok(false),
        Ok(_) => Ok(true),
        Err(e) => Err(io(e.into())),
    }
}

/// Serves requests on a `futures-io` stream (async-std, smol) until the client half-closes
/// after a whole request; the caller closes our side (and counts an unclean ending before it
/// drops the stream). `burn` does a request's CPU work (inline, or on the runtime's blocking
/// pool with `--offload pool`), `sleep` is the runtime's own timer, which with `idle`
/// (`--idle-timeout`) also races every read to the connection's deadline.
///
/// A task that paid a cost yields before its next request, so that a client pipelining
/// CPU-heavy requests cannot keep its executor thread from everyone else between them.
pub async fn serve_futures<S, B, F>(
    stream: &mut S,
    burn: impl Fn(u32) -> B,
    sleep: impl Fn(Duration) -> F,
    idle: Option<Duration>,
) -> Result<(), Ending>
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
    B: Future<Output = ()>,
    F: Future<Output = ()>,
{
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let mut reader = futures_lite::io::BufReader::with_capacity(READ_BUF, stream);
    let mut request = Vec::new();
    let mut clock = IdleClock::start(idle);
    // Each read, raced to the clock's deadline when there is one.
    let within = |clock: Option<IdleClock>| {
        let left = clock.map(|c| c.deadline().saturating_duration_since(Instant::now()));
        let timer = left.map(&sleep);
        async move {
            match timer {
                Some(timer) => timer.await,
                None => std::future::pending().await,
            }
            Err::<usize, Ending>(Ending::IdleTimeout)
        }
    };
    loop {
        let mut header = [0u8; HEADER];
        let mut got = 0;
        while got < HEADER {
            let read = async { reader.read(&mut header[got..]).await.map_err(io) };
            match futures_lite::future::or(read, within(clock)).await? {
                0 => break,
                n => {
                    if got == 0 {
                        restart(&mut clock);
                    }
                    got += n;
                }
            }
        }
        match got {
            0 => return Ok(()),
            HEADER => {}
            _ => return Err(Ending::EofMidMessage),
        }
        let cost = parse(&header)?;
        request.clear();
        request.extend_from_slice(&header);
        request.resize(cost.len, 0);
        let body = &mut request[HEADER..];
        let read = async { reader.read_exact(body).await.map(|()| 0).map_err(io) };
        futures_lite::future::or(read, within(clock)).await?;
        if cost.cpu_ns > 0 {
            burn(cost.cpu_ns).await;
        }
        if cost.wait_us > 0 {
            sleep(cost.wait()).await;
        } else if cost.cpu_ns > 0 {
            futures_lite::future::yield_now().await;
        }
        reader.get_mut().write_all(&request).await.map_err(io)?;
        restart(&mut clock);
        if request.capacity() > READ_BUF {
            request = Vec::new();
        }
    }
}

/// Serves requests on a tokio stream until the client half-closes after a whole request,
/// then closes our side; as [`serve_futures`], with tokio's I/O traits and its timer, and with
/// `offload` the CPU work on tokio's blocking pool (`spawn_blocking`). With `idle`
/// (`--idle-timeout`), every read runs under tokio's timer, to the connection's deadline.
pub async fn serve_tokio<S>(
    stream: &mut S,
    work: &Work,
    offload: bool,
    idle: Option<Duration>,
) -> Result<(), Ending>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut reader = tokio::io::BufReader::with_capacity(READ_BUF, stream);
    let mut request = Vec::new();
    let mut clock = IdleClock::start(idle);
    // Each read, under the clock's deadline when there is one.
    async fn within<T>(
        clock: Option<IdleClock>,
        read: impl Future<Output = io::Result<T>>,
    ) -> Result<T, Ending> {
        let read = async { read.await.map_err(io) };
        match clock {
            None => read.await,
            Some(clock) => {
                let deadline = tokio::time::Instant::from_std(clock.deadline());
                tokio::time::timeout_at(deadline, read)
                    .await
                    .unwrap_or(Err(Ending::IdleTimeout))
            }
        }
    }
    loop {
        let mut header = [0u8; HEADER];
        let mut got = 0;
        while got < HEADER {
            match within(clock, reader.read(&mut header[got..])).await? {
                0 => break,
                n => {
                    if got == 0 {
                        restart(&mut clock);
                    }
                    got += n;
                }
            }
        }
        match got {
            0 => return reader.get_mut().shutdown().await.map_err(io),
            HEADER => {}
            _ => return Err(Ending::EofMidMessage),
        }
        let cost = parse(&header)?;
        request.clear();
        request.extend_from_slice(&header);
        request.resize(cost.len, 0);
        within(clock, reader.read_exact(&mut request[HEADER..])).await?;
        if offload && cost.cpu_ns > 0 {
            let (work, ns) = (*work, cost.cpu_ns);
            tokio::task::spawn_blocking(move || work.burn(ns, &|| false))
                .await
                .map_err(|_| Ending::Other)?;
        } else {
            work.burn(cost.cpu_ns, &|| false);
        }
        if cost.wait_us > 0 {
            tokio::time::sleep(cost.wait()).await;
        } else if cost.cpu_ns > 0 {
            tokio::task::yield_now().await;
        }
        reader.get_mut().write_all(&request).await.map_err(io)?;
        restart(&mut clock);
        if request.capacity() > READ_BUF {
            request = Vec::new();
        }
    }
}

/// `--offload pool` for a hand-written loop (`mio`, `mio-multi`, `io-uring`): a rayon pool
/// that does requests' CPU work, and the way the results come back to the loop: each job puts
/// its connection on a list and writes an eventfd that the loop watches, so the loop never
/// blocks on the pool.
pub struct Offload {
    pool: Arc<rayon::ThreadPool>,
    done: Arc<Mutex<Vec<Finished>>>,
    wake: Arc<EventFd>,
}

/// A job the pool has finished: the connection's key in its loop, and the job's flag.
pub type Finished = (usize, Job);

/// One request's CPU work in the pool. Setting it abandons the work (its client is gone): the
/// burn stops at its next look at the flag, about every 2 ms of work.
pub type Job = Arc<AtomicBool>;

impl Offload {
    /// The pool for every loop of a server: `threads` threads named `offload-N`.
    pub fn pool(threads: usize) -> anyhow::Result<Arc<rayon::ThreadPool>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("offload-{i}"))
            .build()
            .context("cannot start the --offload pool")?;
        Ok(Arc::new(pool))
    }

    /// One loop's way to `pool`, with an eventfd of its own to watch.
    pub fn new(pool: Arc<rayon::ThreadPool>) -> anyhow::Result<Offload> {
        let wake = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .context("cannot create the --offload eventfd")?;
        Ok(Offload {
            pool,
            done: Arc::default(),
            wake: Arc::new(wake),
        })
    }

    /// Hands `ns` of CPU work for connection `key` to the pool.
    pub fn spawn(&self, work: Work, ns: u32, key: usize) -> Job {
        let job = Job::default();
        let (flag, done, wake) = (
            Arc::clone(&job),
            Arc::clone(&self.done),
            Arc::clone(&self.wake),
        );
        self.pool.spawn(move || {
            work.burn(ns, &|| flag.load(Ordering::Relaxed));
            done.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((key, flag));
            // A full counter (never, at 2^64 - 2) still leaves the eventfd readable.
            let _ = wake.write(1);
        });
        job
    }

    /// The jobs finished since the last call; the eventfd is read first, so that a job that
    /// finishes meanwhile writes it again and wakes the loop once more.
    pub fn finished(&self) -> Vec<Finished> {
        // EAGAIN: nothing written since the last read.
        let _ = self.wake.read();
        std::mem::take(&mut *self.done.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl AsFd for Offload {
    /// The eventfd the loop watches: readable when a job has finished.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}

/// Where the CPU work of a hand-written loop's connection's first request stands: done
/// inline, or in the pool with `--offload pool` until the loop hears it is back. The `mio`
/// loops and `io-uring` keep one per connection.
#[derive(Debug, Default)]
pub struct FrontCpu {
    /// In the pool.
    job: Option<Job>,
    /// Back from the pool: the request's wait or its answer is next.
    burned: bool,
}

impl FrontCpu {
    /// Pays `ns` of CPU for connection `key`'s first request: inline on this thread, or with
    /// `offload` handed to its pool. True when it is paid (at once, or the pool has paid it
    /// already); false while the pool works, until [`FrontCpu::finished`].
    pub fn pay(&mut self, work: &Work, ns: u32, offload: Option<&Offload>, key: usize) -> bool {
        if std::mem::take(&mut self.burned) || ns == 0 {
            return true;
        }
        match offload {
            Some(offload) => {
                self.job = Some(offload.spawn(*work, ns, key));
                false
            }
            None => {
                work.burn(ns, &|| false);
                true
            }
        }
    }

    /// Whether the first request's CPU work is in the pool (the connection is not read
    /// meanwhile).
    pub fn in_pool(&self) -> bool {
        self.job.is_some()
    }

    /// The pool has finished `job`: true when it is this connection's, which then goes on
    /// (and not an older job of a connection since closed whose key was reused).
    pub fn finished(&mut self, job: &Job) -> bool {
        let ours = self.job.as_ref().is_some_and(|mine| Arc::ptr_eq(mine, job));
        if ours {
            self.job = None;
            self.burned = true;
        }
        ours
    }

    /// The connection is gone: a job still in the pool stops at its next look at its flag.
    pub fn abandon(&self) {
        if let Some(job) = &self.job {
            job.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`header`](super::header) with `magic` in place of [`MAGIC`].
    fn header(magic: &[u8; 4], len: u32, cpu_ns: u32, wait_us: u32) -> [u8; HEADER] {
        let mut h = super::header(len, cpu_ns, wait_us);
        h[..4].copy_from_slice(magic);
        h
    }

    #[test]
    fn a_header_is_read_and_each_rule_it_breaks_has_its_own_count() {
        let ok = parse(&header(b"EBW1", 64, 1_000, 20)).unwrap();
        assert_eq!((ok.len, ok.cpu_ns, ok.wait_us), (64, 1_000, 20));
        assert_eq!(ok.wait(), Duration::from_micros(20));
        assert!(parse(&header(b"EBW1", 16, MAX_CPU_NS, MAX_WAIT_US)).is_ok());
        assert!(parse(&header(b"EBW1", MAX_LEN as u32, 0, 0)).is_ok());
        assert_eq!(parse(&header(b"EBW2", 64, 0, 0)), Err(Ending::BadMagic));
        assert_eq!(parse(&header(b"EBW1", 15, 0, 0)), Err(Ending::BadLength));
        let too_long = MAX_LEN as u32 + 1;
        assert_eq!(
            parse(&header(b"EBW1", too_long, 0, 0)),
            Err(Ending::BadLength)
        );
        let cpu = MAX_CPU_NS + 1;
        assert_eq!(parse(&header(b"EBW1", 64, cpu, 0)), Err(Ending::OverCap));
        let wait = MAX_WAIT_US + 1;
        assert_eq!(parse(&header(b"EBW1", 64, 0, wait)), Err(Ending::OverCap));
        assert!(parse_front(&header(b"EBW1", 64, 0, 0)[..15]).is_none());
    }

    #[test]
    fn calibrated_work_costs_the_cpu_it_was_asked_for() {
        let work = Work::calibrate();
        assert!(work.iterations(1_000_000) > 0, "{}", work.line());
        let start = thread_cpu();
        work.burn(20_000_000, &|| false);
        let took = thread_cpu() - start;
        // The thread CPU clock, not the wall clock: preemption does not count.
        assert!(
            took >= Duration::from_millis(12) && took <= Duration::from_millis(30),
            "20 ms of work took {took:?} of CPU ({})",
            work.line()
        );
        let stopped = thread_cpu();
        work.burn(MAX_CPU_NS, &|| true);
        assert!(thread_cpu() - stopped < Duration::from_millis(5));
    }
}
