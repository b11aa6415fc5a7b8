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

# --chat: the counts of the chat lines, in their order.
CHAT = ("joins", "messages", "deliveries", "slow members dropped", "bad frames")

# Every count a server keeps: the endings, the refusals, then the chat's.
COUNTS = len(ENDINGS) + len(REFUSALS) + len(CHAT)

# --chat: echo-server's frames (a u32 big-endian body length, 1 B to 64 KiB, and a body), the
# queue per member unless --chat-queue says otherwise, and each member socket's kernel send
# buffer, fixed so that what a member that never reads is owed stays bounded.
MAX_BODY = 65536
DEFAULT_CHAT_QUEUE = 1 << 20
CHAT_SEND_BUFFER = 256 * 1024


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
        parser.add_argument("--chat", action="store_true",
                            help="the chat room: J + room joins, every M frame goes to every "
                                 "member of the sender's room")
        parser.add_argument("--chat-queue", type=chat_queue, default=None,
                            help="with --chat: the most bytes queued for one member (default "
                                 "1MiB; at least 64KiB + 4)")
    if offload:
        parser.add_argument("--offload", choices=("inline", "pool"), default=None,
                            help="with --work: where the CPU work runs (pool: a process pool)")
        parser.add_argument("--offload-threads", type=positive, default=None,
                            help="with --offload pool: the pool's processes (default: the CPUs "
                                 "of the affinity mask)")
    args = parser.parse_args()
    if getattr(args, "chat", False) and args.work:
        parser.error("argument --chat: not allowed with argument --work")
    if getattr(args, "chat_queue", None) and not args.chat:
        parser.error("--chat-queue needs --chat")
    if getattr(args, "chat", False) and args.chat_queue is None:
        args.chat_queue = DEFAULT_CHAT_QUEUE
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


def chat_queue(text):
    """--chat-queue: bytes, with an optional B, KiB, MiB or GiB (or k, K, M, G)."""
    digits = text.rstrip("BKMGikib")
    units = {"": 1, "B": 1, "KiB": 1 << 10, "k": 1 << 10, "K": 1 << 10, "MiB": 1 << 20,
             "M": 1 << 20, "GiB": 1 << 30, "G": 1 << 30}
    unit = text[len(digits):]
    if not digits.isdigit() or unit not in units:
        raise argparse.ArgumentTypeError("'%s' is not a size in bytes (e.g. 1MiB)" % text)
    n = int(digits) * units[unit]
    if n < MAX_BODY + 4:
        raise argparse.ArgumentTypeError("must be at least %d bytes, one largest frame" % (MAX_BODY + 4))
    return n


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

    def __init__(self, counts=None, lock=None, work=False, chat=False):
        self.counts = counts if counts is not None else [0] * COUNTS
        self.lock = lock or threading.Lock()
        self.work = work
        self.chat = chat

    def chatted(self, kind, n=1):
        """--chat: adds `n` to one of CHAT's counts (an index into it)."""
        with self.lock:
            self.counts[len(ENDINGS) + len(REFUSALS) + kind] += n

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

    def chat_lines(self, model):
        joins, messages, deliveries, dropped, bad = self.counts[len(ENDINGS) + len(REFUSALS):COUNTS]
        return ("%s: chat: %d joins, %d messages, %d deliveries, %d slow members dropped\n"
                "%s: chat refused: %d bad frames" % (model, joins, messages, deliveries, dropped,
                                                     model, bad))

    def exit(self, model):
        """The line at exit (with --work, the refusals' line first; with --chat, the chat's two
        lines), then exit 0 at once."""
        if self.work:
            sys.stderr.write(self.work_line(model) + "\n")
        if self.chat:
            sys.stderr.write(self.chat_lines(model) + "\n")
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


# --chat: the room's frames, and the rooms shared by threads behind locks.

JOINS, MESSAGES, DELIVERIES, DROPPED, BAD = range(len(CHAT))


class BadFrame(Exception):
    """A frame that breaks the chat protocol: its connection is closed and counted."""


class Decoder:
    """Splits a member's bytes into requests: ("J", room) first, then ("M", frame), where
    frame is the whole frame (prefix included), relayed unchanged."""

    def __init__(self):
        self.buf = bytearray()
        self.joined = False

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 4:
            (length,) = struct.unpack_from(">I", self.buf)
            if not 1 <= length <= MAX_BODY:
                raise BadFrame()
            if len(self.buf) < 4 + length:
                break
            kind = self.buf[4:5]
            frame = bytes(self.buf[:4 + length])
            del self.buf[:4 + length]
            if kind == b"J" and not self.joined and length == 5:
                self.joined = True
                out.append(("J", struct.unpack_from(">I", frame, 5)[0]))
            elif kind == b"M" and self.joined:
                out.append(("M", frame))
            else:
                raise BadFrame()
        return out


def ack(room, members):
    """The `A` answering a join of `room`, which now has `members`."""
    return struct.pack(">IcII", 9, b"A", room, members)


def join_frame(room):
    return struct.pack(">IcI", 5, b"J", room)


def chat_socket(conn):
    """A member's socket: TCP_NODELAY, and a fixed kernel send buffer."""
    nodelay(conn)
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHAT_SEND_BUFFER)
    except OSError:
        pass


class Mailbox:
    """One member's queue of frames, at most `cap` bytes unsent, and the Condition its writer
    thread waits on; `conn` is shut down when the member is dropped, which ends its threads
    wherever they block."""

    def __init__(self, cap, conn):
        self.conn = conn
        self.frames = []
        self.size = 0
        self.cap = cap
        self.cond = threading.Condition()
        self.closed = False
        self.dropped = False

    def push(self, frame):
        """False when the frame would pass the cap: the member is dropped."""
        with self.cond:
            if self.closed:
                return False
            if self.size + len(frame) > self.cap:
                self.dropped = self.closed = True
                self.cond.notify()
                try:
                    self.conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return False
            self.frames.append(frame)
            self.size += len(frame)
            self.cond.notify()
            return True

    def take(self):
        """Every frame waiting (blocking until one is, or the mailbox closes): None when it is
        closed and empty, or dropped."""
        with self.cond:
            while not self.frames and not self.closed:
                self.cond.wait()
            if self.dropped or not self.frames:
                return None
            frames, self.frames = self.frames, []
            return frames

    def written(self, n):
        with self.cond:
            self.size -= n

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify()


class LockedRooms:
    """Rooms shared by threads: a lock over the map of rooms (join, leave), and a lock per room
    that the sender's thread holds for its whole fan-out into every member's mailbox, so that
    every member of a room has its messages in one order."""

    def __init__(self, endings):
        self.lock = threading.Lock()
        self.rooms = {}
        self.endings = endings

    def join(self, number, mailbox):
        with self.lock:
            room = self.rooms.setdefault(number, (threading.Lock(), []))
            with room[0]:
                room[1].append(mailbox)
                mailbox.push(ack(number, len(room[1])))
        self.endings.chatted(JOINS)
        return room

    def publish(self, room, frame):
        with room[0]:
            kept = [m for m in room[1] if m.push(frame)]
            dropped = len(room[1]) - len(kept)
            room[1][:] = kept
        self.endings.chatted(MESSAGES)
        self.endings.chatted(DELIVERIES, len(kept))
        if dropped:
            self.endings.chatted(DROPPED, dropped)

    def leave(self, number, room, mailbox):
        with self.lock:
            with room[0]:
                if mailbox in room[1]:
                    room[1].remove(mailbox)
                if not room[1] and self.rooms.get(number) is room:
                    del self.rooms[number]


def serve_member(conn, rooms, endings, cap, start_thread):
    """One member of LockedRooms: this thread reads its frames and fans its messages out; a
    writer thread of its own (`start_thread(target)`) writes its mailbox to its socket, so that
    a slow member holds up nobody. A member over its queue is dropped: its socket is shut down,
    which ends both threads."""
    chat_socket(conn)
    mailbox = Mailbox(cap, conn)
    done = threading.Event()

    def writer():
        try:
            while True:
                frames = mailbox.take()
                if frames is None:
                    break
                data = b"".join(frames)
                conn.sendall(data)
                mailbox.written(len(data))
            if not mailbox.dropped:
                conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            if mailbox.dropped:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            done.set()

    start_thread(writer)
    decoder = Decoder()
    joined = None
    try:
        with conn:
            try:
                while not mailbox.dropped:
                    data = conn.recv(BUF)
                    if not data:
                        if decoder.buf:
                            endings.mid_message()
                        break
                    for kind, value in decoder.feed(data):
                        if kind == "J":
                            joined = (value, rooms.join(value, mailbox))
                        elif joined:
                            rooms.publish(joined[1], value)
            except BadFrame:
                endings.chatted(BAD)
                mailbox.dropped = True
                mailbox.close()
            except OSError as e:
                if not mailbox.dropped:
                    endings.count(e)
            if joined:
                rooms.leave(joined[0], joined[1], mailbox)
            mailbox.close()
            done.wait()
    finally:
        mailbox.close()


class Member:
    """A member of a room owned by one loop: its decoder, its queue, whether it still reads."""

    def __init__(self, conn, slot=None):
        self.conn = conn
        self.decoder = Decoder()
        self.out = bytearray()
        self.room = None
        self.reading = True
        self.closed = False
        self.slot = slot


class OwnedRooms:
    """Rooms owned by one loop's thread (`selectors`): no lock, because nothing else touches
    them. A message read is queued for every member of its room within the loop's turn, so
    every member has the room's messages in one order; each queue is at most `cap` bytes, and
    a member whose queue would pass it is closed and counted. `listener` accepts TCP members
    (py-selectors) or the member processes' Unix links (py-multiprocessing's hub)."""

    def __init__(self, listener, endings, cap, slots=None, stop_fd=None):
        import selectors
        self.read, self.write = selectors.EVENT_READ, selectors.EVENT_WRITE
        self.listener = listener
        self.endings = endings
        self.cap = cap
        self.slots = slots
        self.stop_fd = stop_fd
        self.rooms = {}
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, self.read)
        if stop_fd is not None:
            self.selector.register(stop_fd, self.read)
        self.resume_accept = None

    def run(self):
        """Until `stop_fd` is readable (or forever)."""
        while True:
            timeout = None
            if self.resume_accept is not None:
                timeout = max(0.0, self.resume_accept - time.monotonic())
            events = self.selector.select(timeout)
            if self.resume_accept is not None and time.monotonic() >= self.resume_accept:
                self.resume_accept = None
                self.selector.register(self.listener, self.read)
            dirty = []
            for key, mask in events:
                if key.fileobj is self.listener:
                    self.accept()
                elif key.fileobj == self.stop_fd:
                    return
                else:
                    member = key.data
                    if mask & self.write:
                        self.flush(member)
                    if mask & self.read and not member.closed:
                        dirty.extend(self.receive(member))
            for member in dirty:
                if not member.closed:
                    self.flush(member)

    def accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as e:
                pause = accept_error("chat", e)
                if pause:
                    self.selector.unregister(self.listener)
                    self.resume_accept = time.monotonic() + pause
                    return
                continue
            if self.slots is not None and not self.slots.take():
                conn.close()  # Over --max-conns: closed at once.
                continue
            if conn.family != socket.AF_UNIX:
                chat_socket(conn)
            conn.setblocking(False)
            self.selector.register(conn, self.read, Member(conn, self.slots))

    def receive(self, member):
        """Reads what member has sent and carries out its requests; the members whose queues
        grew."""
        try:
            data = member.conn.recv(BUF)
        except BlockingIOError:
            return []
        except OSError as e:
            self.close(member, e)
            return []
        if not data:
            if member.decoder.buf:
                self.endings.mid_message()
                self.close(member)
                return []
            # Left: out of its room; closed once it has what it was owed.
            self.leave(member)
            member.reading = False
            return [member]
        try:
            requests = member.decoder.feed(data)
        except BadFrame:
            self.endings.chatted(BAD)
            self.close(member)
            return []
        grew = []
        for kind, value in requests:
            if kind == "J":
                members = self.rooms.setdefault(value, [])
                members.append(member)
                member.room = value
                member.out += ack(value, len(members))
                self.endings.chatted(JOINS)
                grew.append(member)
            elif member.room is not None:
                grew.extend(self.fan_out(member.room, value))
        return grew

    def fan_out(self, number, frame):
        members = self.rooms.get(number, [])
        kept, grew = [], []
        for m in members:
            if len(m.out) + len(frame) > self.cap:
                # Too slow: out of the room, closed.
                m.room = None
                self.endings.chatted(DROPPED)
                self.close(m)
                continue
            m.out += frame
            kept.append(m)
            grew.append(m)
        members[:] = kept
        self.endings.chatted(MESSAGES)
        self.endings.chatted(DELIVERIES, len(kept))
        return grew

    def flush(self, member):
        if member.out:
            try:
                sent = member.conn.send(member.out)
                del member.out[:sent]
            except BlockingIOError:
                pass
            except OSError as e:
                self.close(member, e)
                return
        if not member.reading and not member.out:
            try:
                member.conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.close(member)
            return
        wanted = (self.read if member.reading else 0) | (self.write if member.out else 0)
        self.selector.modify(member.conn, wanted, member)

    def leave(self, member):
        if member.room is not None:
            members = self.rooms.get(member.room, [])
            if member in members:
                members.remove(member)
            if not members:
                self.rooms.pop(member.room, None)
            member.room = None

    def close(self, member, error=None):
        if member.closed:
            return
        self.leave(member)
        member.closed = True
        if error is not None:
            self.endings.count(error)
        self.selector.unregister(member.conn)
        member.conn.close()
        if member.slot is not None:
            member.slot.give()
