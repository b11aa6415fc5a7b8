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

    python3 py_multiprocessing.py --addr 127.0.0.1:7007 [--max-conns N] [--work]
"""

import errno
import multiprocessing
import os
import selectors
import signal
import sys
import time

import echo_common as common

MODEL = "py-multiprocessing"

START_METHOD = "fork"

# How long children have to end after SIGTERM before they are killed.
CHILD_GRACE = 1.5


def child(conn, listener, wakeup, endings, work):
    """In the child: the default signal actions (the parent ends it), then echo one client."""
    for sig in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    # A Ctrl-C reaches the whole process group; the parent ends the children itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.set_wakeup_fd(-1)
    for fd in wakeup:
        os.close(fd)
    listener.close()
    if work:
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

    def __init__(self, listener, cap, work):
        self.listener = listener
        self.cap = cap
        self.work = work
        self.context = multiprocessing.get_context(START_METHOD)
        shared = self.context.Array("Q", common.COUNTS)
        self.endings = common.Endings(shared, shared.get_lock(), work=work is not None)
        self.wakeup = signals()
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ)
        self.selector.register(self.wakeup[0], selectors.EVENT_READ)
        self.waiting = None

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
        if self.cap is not None and len(multiprocessing.active_children()) >= self.cap:
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
        args = (conn, self.listener, self.wakeup, self.endings, self.work)
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
    parent = Parent(listener, args.max_conns, common.calibrate(args))
    common.announce(listener)
    parent.run()
    parent.stop()


if __name__ == "__main__":
    main()
