"""What every Python echo server here shares: its command line, the listener and the one
`listening on` line, TCP_NODELAY, the descriptor limit, stop signals, the back-off after an
accept error, the --max-conns cap, and the count of connections that ended uncleanly, printed
in one line at exit instead of a traceback per client.

Standard library only, Python 3.9 or later. The servers mirror `echo-server`'s contract:
`--addr HOST:PORT` (port 0: any free port), `--workers N` (accepted and ignored: these models
have no workers), `--max-conns N`, `--work` (echo with a cost: `echo-server`'s protocol, its
CPU work a calibrated pure-Python loop that holds the GIL as real Python code does); SIGTERM
or SIGINT stop them with exit 0; bad arguments are one line and exit 2, a listener that cannot
be bound one line and exit 1.
"""

import argparse
import errno
import ipaddress
import os
import resource
import signal
import socket
import struct
import sys
import threading
import time

# Bytes asked of each recv: one call can take a whole 64 KiB bulk message.
BUF = 65536

# Listen backlog, as echo-server's: bursts of connections queue instead of being refused.
BACKLOG = 1024

# Unsent echo a non-blocking server holds per connection before it stops reading that client.
MAX_UNSENT = 256 * 1024

# Pause after an accept error that is not the connection's own (EMFILE, ENFILE, ...).
ACCEPT_BACKOFF = 0.05

# Accept errors that concern only the connection being accepted: no back-off needed.
PER_CONNECTION = (errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR)

# How an unclean ending is named in the exit line, in its order.
ENDINGS = ("reset", "broken pipe", "eof mid-message", "other")

# --work: echo-server's request header (magic, total length, CPU ns, wait µs; big-endian) and
# its bounds.
MAGIC = b"EBW1"
HEADER = 16
MAX_LEN = 1 << 20
MAX_CPU_NS = 1000000000
MAX_WAIT_US = 10000000

# --work: the requests refused, each closing its connection, in the order of the work line.
REFUSALS = ("bad magic", "length out of range", "cost over the caps")

# Every count a server keeps: the endings, then the refusals.
COUNTS = len(ENDINGS) + len(REFUSALS)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, exit 2, as echo-server does."""

    def error(self, message):
        sys.stderr.write("%s: %s\n" % (self.prog, message))
        sys.exit(2)


def parse_args(model, udp=False, offload=False):
    """The command line shared by every model (`udp`: also --allow-remote; TCP: --work;
    `offload`: also --offload)."""
    parser = OneLineParser(prog=model, description="%s: an RFC 862 echo server" % model)
    parser.add_argument("--addr", default="127.0.0.1:7007", type=address,
                        help="address to listen on, HOST:PORT (port 0: any free port)")
    parser.add_argument("--workers", type=positive, default=None,
                        help="accepted for echo-server's command line; these models have no workers")
    parser.add_argument("--max-conns", type=positive, default=None,
                        help="close connections beyond this many at once")
    if udp:
        parser.add_argument("--allow-remote", action="store_true",
                            help="allow an address that is not loopback")
    else:
        parser.add_argument("--work", action="store_true",
                            help="echo with a cost: requests of a 16-byte header (EBW1, length, "
                                 "CPU ns, wait us) and payload, answered once paid")
    if offload:
        parser.add_argument("--offload", choices=("inline", "pool"), default=None,
                            help="with --work: where the CPU work runs (pool: a process pool)")
        parser.add_argument("--offload-threads", type=positive, default=None,
                            help="with --offload pool: the pool's processes (default: the CPUs "
                                 "of the affinity mask)")
    args = parser.parse_args()
    if getattr(args, "offload", None) and not args.work:
        parser.error("--offload needs --work: only requests with a cost have CPU work")
    if getattr(args, "offload_threads", None) and args.offload != "pool":
        parser.error("--offload-threads needs --offload pool")
    return args


def address(text):
    """`HOST:PORT` or `[V6]:PORT` → (host, port)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(host)
        number = int(port)
        if not sep or not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError("'%s' is not HOST:PORT (e.g. 127.0.0.1:7007)" % text)
    return str(ip), number


def positive(text):
    try:
        n = int(text)
        if n > 0:
            return n
    except ValueError:
        pass
    raise argparse.ArgumentTypeError("'%s' is not a whole number above 0" % text)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def raise_nofile():
    """Soft descriptor limit up to the hard one, as echo-server does: 5,000 idle clients need
    more than the 1,024 many shells start with."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def listen(model, addr):
    """A listening TCP socket on `addr`, or one line naming --addr and exit 1."""
    raise_nofile()
    sock = socket.socket(family_of(addr[0]), socket.SOCK_STREAM)
    # Restarting a server must not wait for TIME_WAIT connections of the previous one.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(BACKLOG)
    except OSError as e:
        fail(model, "cannot listen on --addr %s: %s" % (show(addr), e.strerror or e))
    return sock


def show(addr):
    host, port = addr[0], addr[1]
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def announce(sock):
    """The one `listening on <ip>:<port>` line that scripts wait for, flushed."""
    print("listening on %s" % show(sock.getsockname()), flush=True)


def fail(model, message, code=1):
    exit_with("%s: %s" % (model, message), code)


def exit_with(line, code=0):
    """One line on stderr, then exit at once: threads blocked in recv are not waited for, and
    their sockets close with the process."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code)


def nodelay(conn):
    """Every accepted socket: small echoes leave at once instead of waiting for an ACK. (A
    client that has already reset is found out by the echo loop, not here.)"""
    try:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def wakeup_pipe(signals):
    """A pipe that receives the number of each of `signals` as it arrives: `signals` get a
    handler that does nothing, so that Python's C-level handler writes the byte
    (`signal.set_wakeup_fd`). Returns (read end, write end)."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w)
    for sig in signals:
        signal.signal(sig, lambda signum, frame: None)
    return r, w


def accept(model, listener):
    """The next connection of a blocking listener, with TCP_NODELAY; accept errors are logged
    and survived with a back-off."""
    while True:
        try:
            conn, peer = listener.accept()
        except OSError as e:
            time.sleep(accept_error(model, e))
            continue
        nodelay(conn)
        return conn, peer


def stop_on_signals(stop):
    """SIGTERM and SIGINT call `stop()` (which must end the process) on a thread of its own.

    Python runs signal handlers only in the main thread, between bytecodes: a signal that
    lands just before the main thread enters a blocking accept or recv is handled only when
    that call returns, which may be never. The wakeup descriptor is written by the C-level
    handler the moment the signal arrives, so the thread waiting on it cannot miss one."""
    wanted = {signal.SIGTERM, signal.SIGINT}
    r, _ = wakeup_pipe(wanted)

    def wait():
        while not wanted.intersection(os.read(r, 64)):
            pass
        stop()

    threading.Thread(target=wait, name="stop", daemon=True).start()


def echo(conn, endings):
    """The blocking echo loop: whatever arrives goes back (sendall finishes what a short send
    leaves) until the client's EOF, then the socket is closed; a client's reset is counted,
    not raised."""
    with conn:
        try:
            while True:
                data = conn.recv(BUF)
                if not data:
                    return
                conn.sendall(data)
        except OSError as e:
            endings.count(e)


def accept_error(model, e):
    """Logs an accept error in one line; returns the pause before the next accept (none when
    it concerned only that connection)."""
    if e.errno in PER_CONNECTION:
        return 0.0
    sys.stderr.write("%s: accept: %s\n" % (model, e))
    return ACCEPT_BACKOFF


class Slots:
    """The --max-conns cap, shared by threads: take one per connection, give it back at close."""

    def __init__(self, cap):
        self.cap = cap
        self.used = 0
        self.lock = threading.Lock()

    def take(self):
        with self.lock:
            if self.cap is not None and self.used >= self.cap:
                return False
            self.used += 1
            return True

    def give(self):
        with self.lock:
            self.used -= 1


def ending_of(e, echo_owed=False):
    """Which unclean ending an error is (an index into ENDINGS)."""
    if isinstance(e, (ConnectionResetError, ConnectionAbortedError)) or e.errno == errno.ENOTCONN:
        kind = 0
    elif isinstance(e, BrokenPipeError):
        kind = 1
    else:
        return 3
    # A client that half-closed and then left while echo was still owed to it.
    return 2 if echo_owed else kind


class Endings:
    """Counts of unclean endings, by kind, then of --work's refused requests. `counts` may be
    shared memory of COUNTS slots (a forked child's counts reach its parent through it); `lock`
    guards it across threads or processes. `work`: the server serves --work, and says what it
    refused in a line of its own at exit."""

    def __init__(self, counts=None, lock=None, work=False):
        self.counts = counts if counts is not None else [0] * COUNTS
        self.lock = lock or threading.Lock()
        self.work = work

    def count(self, e, echo_owed=False):
        with self.lock:
            self.counts[ending_of(e, echo_owed)] += 1

    def mid_message(self):
        """A client that half-closed in the middle of a --work request."""
        with self.lock:
            self.counts[2] += 1

    def refused(self, kind):
        """A --work request that broke a rule (an index into REFUSALS)."""
        with self.lock:
            self.counts[len(ENDINGS) + kind] += 1

    def line(self, model):
        parts = ", ".join("%d %s" % (n, name) for n, name in zip(self.counts, ENDINGS))
        return "%s: unclean endings: %s" % (model, parts)

    def work_line(self, model):
        refused = self.counts[len(ENDINGS):COUNTS]
        parts = ", ".join("%d %s" % (n, name) for n, name in zip(refused, REFUSALS))
        return "%s: work: %s" % (model, parts)

    def exit(self, model):
        """The line at exit (with --work, the refusals' line first), then exit 0 at once."""
        if self.work:
            sys.stderr.write(self.work_line(model) + "\n")
        exit_with(self.line(model))


class Refused(Exception):
    """A --work request that breaks a rule; `kind` indexes REFUSALS."""

    def __init__(self, kind):
        super().__init__(REFUSALS[kind])
        self.kind = kind


def parse(header):
    """A request's header: (total length, CPU ns, wait µs), or Refused."""
    magic, length, cpu_ns, wait_us = struct.unpack(">4sIII", header)
    if magic != MAGIC:
        raise Refused(0)
    if not HEADER <= length <= MAX_LEN:
        raise Refused(1)
    if cpu_ns > MAX_CPU_NS or wait_us > MAX_WAIT_US:
        raise Refused(2)
    return length, cpu_ns, wait_us


def spin(iterations):
    """The CPU work: echo-server's multiply-xorshift chain, in pure Python, so that it holds the
    GIL as real Python code does."""
    x = 0x9E3779B97F4A7C15
    for _ in range(iterations):
        x = (x * 0x5851F42D4C957F2D + 0x14057B7EF767814F) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 29
    return x


def burn(iterations_per_ns, ns):
    """`ns` of CPU work at a calibrated rate (a module-level function, so that a process pool
    can run it)."""
    spin(int(round(ns * iterations_per_ns)))


class Work:
    """The calibrated CPU work: iterations of `spin` per ns of this thread's CPU time, the
    median of seven trials of about 2 ms, timed on the thread CPU clock before the server
    announces itself."""

    def __init__(self):
        guess = self.trial(1000)
        size = max(1, int(2000000 * guess))
        trials = sorted(self.trial(size) for _ in range(7))
        self.per_ns = trials[3]

    @staticmethod
    def trial(iterations):
        start = time.thread_time_ns()
        spin(iterations)
        return iterations / max(1, time.thread_time_ns() - start)

    def burn(self, ns):
        burn(self.per_ns, ns)

    def line(self):
        return "work: 1 ms of CPU = %d iterations" % round(1000000 * self.per_ns)


def calibrate(args):
    """With --work, the calibrated work, its line on stderr; otherwise None."""
    if not getattr(args, "work", False):
        return None
    work = Work()
    sys.stderr.write(work.line() + "\n")
    sys.stderr.flush()
    return work


def serve_requests(conn, work, endings, sleep=time.sleep):
    """The blocking loop of --work: read a whole request, do its CPU work, wait (`sleep`, the
    paradigm's own), send it back; requests in order, until the client's EOF after a whole
    request. A request that breaks a rule is counted and closes the connection."""
    with conn:
        buf = bytearray()
        try:
            while True:
                if not fill(conn, buf, HEADER):
                    if buf:
                        endings.mid_message()
                    return
                length, cpu_ns, wait_us = parse(bytes(buf[:HEADER]))
                if not fill(conn, buf, length):
                    endings.mid_message()
                    return
                request = bytes(buf[:length])
                del buf[:length]
                work.burn(cpu_ns)
                if wait_us:
                    sleep(wait_us / 1e6)
                conn.sendall(request)
        except Refused as refused:
            endings.refused(refused.kind)
        except OSError as e:
            endings.count(e)


def fill(conn, buf, n):
    """Reads until `buf` holds `n` bytes; False at the client's EOF before that."""
    while len(buf) < n:
        data = conn.recv(BUF)
        if not data:
            return False
        buf += data
    return True
