"""py-multiprocessing: the tutorials' `multiprocessing.Process` per client. The parent accepts;
each client gets a process of its own that echoes it to EOF with blocking calls.

The start method is fixed to "fork" (the default on Linux up to Python 3.13, the one the
tutorials' readers got): the child is a copy of the parent with the accepted socket already
open, so nothing is pickled. "spawn" or "forkserver" would start or ask a fresh interpreter for
every client, several times slower to start.

Where it should win: each process has its own GIL, so with more than one server core Python
code runs in parallel, which threads cannot do. Where it breaks: a process per client costs a
fork (milliseconds for an interpreter) and megabytes of memory each, as the interpreter's
pages are copied on write; on one core there is nothing to run in parallel. Its Rust
counterpart is `fork-per-client`.

The parent reaps finished children as SIGCHLD arrives, and on SIGTERM or SIGINT ends every
child (SIGTERM, then SIGKILL after 1.5 s) before it exits 0.

With --work, each child does its client's CPU work under its own GIL (calibrated once, in the
parent, before the first fork) and waits with `time.sleep`.

With --chat, processes share no memory, so the rooms live in a hub process started before any
child: it owns them (`echo_common.OwnedRooms`, the py-selectors loop, over Unix sockets on an
abstract address private to this server), and each child links to it, forwards its client's
frames up the link and writes back, within --chat-queue, what comes down. The counts are the
parent's shared memory.

    python3 py_multiprocessing.py --addr 127.0.0.1:7007 [--max-conns N] [--work | --chat]
"""

import errno
import multiprocessing
import os
import selectors
import signal
import socket
import sys
import time

import echo_common as common

MODEL = "py-multiprocessing"

START_METHOD = "fork"

# How long children have to end after SIGTERM before they are killed.
CHILD_GRACE = 1.5

# --chat: what the hub queues for one member's process at most. The process reads its link as
# soon as it is readable, into its own queue of --chat-queue, which decides when a slow client
# goes; the hub drops a link only when a process stops reading it altogether.
LINK_QUEUE = 64 << 20


def die_with(parent):
    """The hub ends with the server, even one killed outright (SIGKILL): SIGTERM when the
    parent dies (Linux's PR_SET_PDEATHSIG, through libc), and now if it already has."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(0)


def hub(links, listener, wakeup, endings, parent):
    """--chat, in the hub process: the rooms' one owner, until the parent ends it (or dies)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with(parent)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    for fd in wakeup:
        os.close(fd)
    listener.close()
    links.setblocking(False)
    common.OwnedRooms(links, endings, LINK_QUEUE).run()


def member(conn, address, endings, cap):
    """--chat, in a member's process: its client's frames checked and forwarded up the link to
    the hub; what comes down queued (at most `cap` bytes: past it the client is dropped) and
    written to the client."""
    common.chat_socket(conn)
    link = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with conn, link:
        try:
            link.connect(address)
        except OSError as e:
            endings.count(e)
            return
        conn.setblocking(False)
        decoder = common.Decoder()
        out = bytearray()
        reading, linked = True, True
        sel = selectors.DefaultSelector()
        sel.register(link, selectors.EVENT_READ)
        sel.register(conn, selectors.EVENT_READ)
        try:
            while reading or linked or out:
                for key, mask in sel.select():
                    if key.fileobj is link and linked:
                        data = link.recv(common.BUF)
                        if not data:
                            linked = False
                            sel.unregister(link)
                            if reading:
                                return  # The hub is gone: so are the rooms.
                        out += data
                        if len(out) > cap:
                            endings.chatted(common.DROPPED)
                            return
                    elif key.fileobj is conn:
                        if mask & selectors.EVENT_WRITE and out:
                            sent = conn.send(out)
                            del out[:sent]
                        if mask & selectors.EVENT_READ and reading:
                            data = conn.recv(common.BUF)
                            if not data:
                                if decoder.buf:
                                    endings.mid_message()
                                    return
                                # Left: the hub takes it out of its room and closes the link
                                # once it has sent what was owed.
                                reading = False
                                link.shutdown(socket.SHUT_WR)
                            else:
                                for kind, value in decoder.feed(data):
                                    frame = common.join_frame(value) if kind == "J" else value
                                    link.sendall(frame)
                wanted = (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if out else 0)
                if wanted:
                    sel.modify(conn, wanted)
                elif conn in sel.get_map():
                    sel.unregister(conn)
            conn.shutdown(socket.SHUT_WR)
        except common.BadFrame:
            endings.chatted(common.BAD)
        except BlockingIOError:
            pass
        except OSError as e:
            endings.count(e)


def child(conn, listener, wakeup, endings, work, chat=None):
    """In the child: the default signal actions (the parent ends it), then echo one client (or
    serve one chat member, `chat` being the hub's address and the queue per member)."""
    for sig in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    # A Ctrl-C reaches the whole process group; the parent ends the children itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    for fd in wakeup:
        os.close(fd)
    listener.close()
    if chat:
        member(conn, chat[0], endings, chat[1])
    elif work:
        common.serve_requests(conn, work, endings)
    else:
        common.echo(conn, endings)


def signals():
    """SIGTERM, SIGINT and SIGCHLD as bytes on a pipe the accept loop watches: each is handled
    between accepts, never in the middle of starting a process."""
    r, w = common.wakeup_pipe((signal.SIGTERM, signal.SIGINT, signal.SIGCHLD))
    os.set_blocking(r, False)
    return r, w


def end_children():
    """SIGTERM to every child, then SIGKILL to those still running after CHILD_GRACE."""
    children = multiprocessing.active_children()
    for p in children:
        p.terminate()
    deadline = time.monotonic() + CHILD_GRACE
    for p in children:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in children:
        if p.is_alive():
            p.kill()
            p.join()


class Parent:
    """The accept loop: a new process per connection. Each child costs the parent two
    descriptors (multiprocessing's pipes to it) until it is reaped, so a parent out of descriptors keeps
    the connection it has just accepted, stops accepting, and tries again after a back-off."""

    def __init__(self, listener, cap, work, chat_queue=None):
        self.listener = listener
        self.cap = cap
        self.work = work
        self.context = multiprocessing.get_context(START_METHOD)
        shared = self.context.Array("Q", common.COUNTS)
        self.endings = common.Endings(shared, shared.get_lock(), work=work is not None,
                                      chat=chat_queue is not None)
        self.wakeup = signals()
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        self.selector.register(self.wakeup[0], selectors.EVENT_READ)
        self.waiting = None
        self.chat = None
        self.hub = None
        if chat_queue is not None:
            # The hub first, before any child: a child forked later holds no link of another.
            address = "\0echo-bench-%s-%d" % (MODEL, os.getpid())
            links = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            links.bind(address)
            links.listen(common.BACKLOG)
            self.hub = self.context.Process(
                target=hub, args=(links, listener, self.wakeup, self.endings, os.getpid()),
                daemon=True)
            self.hub.start()
            links.close()
            self.chat = (address, chat_queue)

    def run(self):
        """Until SIGTERM or SIGINT."""
        while True:
            timeout = common.ACCEPT_BACKOFF if self.waiting else None
            ready = [key.fileobj for key, _ in self.selector.select(timeout)]
            if self.wakeup[0] in ready:
                got = os.read(self.wakeup[0], 512)
                multiprocessing.active_children()  # Reaps every child that has exited.
                if signal.SIGTERM in got or signal.SIGINT in got:
                    return
            if self.waiting:
                self.start(*self.waiting)
            elif self.listener in ready:
                self.accept()

    def accept(self):
        try:
            conn, peer = self.listener.accept()
        except BlockingIOError:
            return
        except OSError as e:
            time.sleep(common.accept_error(MODEL, e))
            return
        conn.setblocking(True)
        common.nodelay(conn)
        members = len(multiprocessing.active_children()) - (self.hub is not None)
        if self.cap is not None and members >= self.cap:
            conn.close()  # Over --max-conns: closed at once.
            return
        self.start(conn, peer)

    def room(self):
        """Whether the parent can open the four descriptors a new process needs for a moment:
        multiprocessing makes two pipes per child, and one made when the other cannot be
        leaks its descriptors, so the parent checks first."""
        taken = []
        try:
            for _ in range(4):
                taken.append(os.dup(self.wakeup[0]))
            return True
        except OSError:
            return False
        finally:
            for fd in taken:
                os.close(fd)

    def start(self, conn, peer):
        """Hands the connection to a new process; the parent keeps no copy of it."""
        args = (conn, self.listener, self.wakeup, self.endings, self.work, self.chat)
        try:
            if not self.room():
                raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
            self.context.Process(target=child, args=args).start()
        except OSError as e:
            if self.waiting is None:
                sys.stderr.write("%s: cannot start a process for %s: %s; waiting\n" % (MODEL, peer, e))
                self.selector.unregister(self.listener)
                self.waiting = (conn, peer)
            return
        conn.close()
        if self.waiting is not None:
            self.selector.register(self.listener, selectors.EVENT_READ)
            self.waiting = None

    def stop(self):
        self.selector.close()
        self.listener.close()
        if self.waiting:
            self.waiting[0].close()
        end_children()
        self.endings.exit(MODEL)


def main():
    args = common.parse_args(MODEL)
    listener = common.listen(MODEL, args.addr)
    listener.setblocking(False)
    chat_queue = args.chat_queue if args.chat else None
    parent = Parent(listener, args.max_conns, common.calibrate(args), chat_queue)
    common.announce(listener)
    parent.run()
    parent.stop()


if __name__ == "__main__":
    main()
