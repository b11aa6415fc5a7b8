"""What every Python echo server here shares: its command line, the listener and the one
`listening on` line, TCP_NODELAY, the descriptor limit, stop signals, the back-off after an
accept error, the --max-conns cap, and the count of connections that ended uncleanly, printed
in one line at exit instead of a traceback per client.

Standard library only, Python 3.9 or later. The servers mirror `echo-server`'s contract:
`--addr HOST:PORT` (port 0: any free port), `--workers N` (accepted and ignored: these models
have no workers), `--max-conns N`; SIGTERM or SIGINT stop them with exit 0; bad arguments are
one line and exit 2, a listener that cannot be bound one line and exit 1.
"""

import argparse
import errno
import ipaddress
import os
import resource
import signal
import socket
import sys
import threading

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


class Stop(Exception):
    """Raised by the SIGTERM/SIGINT handler in the main thread: stop serving."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, exit 2, as echo-server does."""

    def error(self, message):
        sys.stderr.write("%s: %s\n" % (self.prog, message))
        sys.exit(2)


def parse_args(model, udp=False):
    """The command line shared by every model (`udp`: also --allow-remote)."""
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
    return parser.parse_args()


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
    sys.stderr.write("%s: %s\n" % (model, message))
    sys.stderr.flush()
    os._exit(code)


def nodelay(conn):
    """Every accepted socket: small echoes leave at once instead of waiting for an ACK."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def on_stop(handler=None):
    """SIGTERM and SIGINT run `handler`, by default raising Stop in the main thread."""

    def raise_stop(signum, frame):
        raise Stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler or raise_stop)


def start_thread(target, *args):
    """Starts a daemon thread with SIGTERM and SIGINT blocked in it, so that the kernel
    delivers them to the main thread: a signal taken by another thread would leave the main
    thread blocked in accept, since only the main thread runs Python's handlers."""
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    thread = threading.Thread(target=target, args=args, daemon=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
    return thread


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
    """Counts of unclean endings, by kind. `counts` may be shared memory (a forked child's
    counts reach its parent through it); `lock` guards it across threads or processes."""

    def __init__(self, counts=None, lock=None):
        self.counts = counts if counts is not None else [0] * len(ENDINGS)
        self.lock = lock or threading.Lock()

    def count(self, e, echo_owed=False):
        with self.lock:
            self.counts[ending_of(e, echo_owed)] += 1

    def line(self, model):
        parts = ", ".join("%d %s" % (n, name) for n, name in zip(self.counts, ENDINGS))
        return "%s: unclean endings: %s" % (model, parts)

    def exit(self, model):
        """The one line at exit, then exit 0 at once: threads blocked in recv are not waited
        for, and their sockets close with the process."""
        sys.stderr.write(self.line(model) + "\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(0)
