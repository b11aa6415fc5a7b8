"""py-selectors: a reactor by hand with `selectors`, the shape of Twisted's reactor. One thread
waits on epoll for every socket at once and handles whichever is ready: accept for the
listener, read-and-echo for a client, flush for a client whose echo did not all fit.

Where it should win: as asyncio, many clients for the price of a small object each, with less
machinery between the socket and the echo (no coroutines, no streams). Where it breaks: the
loop is Python, so per message it pays interpreter time that a Rust loop does not, and all of
it on one core. Its Rust counterpart is `mio`.

With --work, a request's CPU work runs in the loop and holds up every client; its wait is a timer
on the loop's own heap, and the client is not read until it ends.

With --chat, the loop owns every room (`echo_common.OwnedRooms`): no lock, a message queued for
its whole room within the turn that read it, each member's queue bounded by --chat-queue.

    python3 py_selectors.py --addr 127.0.0.1:7007 [--max-conns N] [--work | --chat]
"""

import heapq
import selectors
import time

import echo_common as common

MODEL = "py-selectors"

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class Client:
    """One connection: the echo still owed to it (at most MAX_UNSENT before the reactor stops
    reading it) and whether it has half-closed."""

    def __init__(self, conn):
        self.conn = conn
        self.unsent = bytearray()
        self.eof = False
        # --work: the bytes read and not yet answered, and when the first request's wait ends.
        self.received = bytearray()
        self.due = None
        self.closed = False

    def interest(self):
        """Read while the echo owed is small, the client has not half-closed and no request
        waits; write while any is owed."""
        wanted = WRITE if self.unsent else 0
        if not self.eof and len(self.unsent) < common.MAX_UNSENT and self.due is None:
            wanted |= READ
        return wanted


class Reactor:
    def __init__(self, listener, cap, work):
        self.listener = listener
        self.cap = cap
        self.clients = 0
        self.work = work
        self.endings = common.Endings(work=work is not None)
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, READ)
        self.resume_accept = None
        # --work: (when, number, client) of the waits in progress, earliest first.
        self.timers = []
        self.timer_count = 0

    def run(self):
        """Until a stop signal ends the process."""
        while True:
            for key, events in self.selector.select(self.timeout()):
                if key.fileobj is self.listener:
                    self.accept()
                else:
                    self.ready(key.data, events)
            self.waits_over()

    def timeout(self):
        """Until the listener is watched again, or the first wait ends."""
        pause = self.accept_pause()
        if not self.timers:
            return pause
        left = max(0.0, self.timers[0][0] - time.monotonic())
        return left if pause is None else min(pause, left)

    def waits_over(self):
        """--work: the clients whose request's wait has ended are answered and go on."""
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, client = heapq.heappop(self.timers)
            if client.due is not None and not client.closed:
                client.due = None
                length = common.parse(bytes(client.received[:common.HEADER]))[0]
                client.unsent += client.received[:length]
                del client.received[:length]
                self.ready(client, 0)

    def accept_pause(self):
        """How long to wait before the listener is watched again after an accept error."""
        if self.resume_accept is None:
            return None
        left = self.resume_accept - time.monotonic()
        if left > 0:
            return left
        self.selector.register(self.listener, READ)
        self.resume_accept = None
        return None

    def accept(self):
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        except OSError as e:
            pause = common.accept_error(MODEL, e)
            if pause:
                # Out of descriptors: stop watching the listener for a moment instead of
                # spinning on it while it stays readable.
                self.selector.unregister(self.listener)
                self.resume_accept = time.monotonic() + pause
            return
        if self.cap is not None and self.clients >= self.cap:
            conn.close()  # Over --max-conns: closed at once.
            return
        conn.setblocking(False)
        common.nodelay(conn)
        self.clients += 1
        self.selector.register(conn, READ, Client(conn))

    def ready(self, client, events):
        try:
            if events & READ:
                self.read(client)
            if self.work:
                self.serve(client)
            if client.unsent:
                self.flush(client)
        except common.Refused as refused:
            self.endings.refused(refused.kind)
            self.close(client)
            return
        except OSError as e:
            self.endings.count(e, echo_owed=client.eof and bool(client.unsent))
            self.close(client)
            return
        if client.eof and not client.unsent and client.due is None:
            if client.received:
                self.endings.mid_message()  # Half-closed in the middle of a request.
            self.close(client)  # Half-closed and every byte echoed: done.
            return
        self.watch(client, client.interest())

    def watch(self, client, wanted):
        """Watches `client` for `wanted`; not at all while it wants nothing (a request of its
        waits, and no echo is owed)."""
        key = self.selector.get_map().get(client.conn)
        if not wanted:
            if key is not None:
                self.selector.unregister(client.conn)
        elif key is None:
            self.selector.register(client.conn, wanted, client)
        elif wanted != key.events:
            self.selector.modify(client.conn, wanted, client)

    def read(self, client):
        """One recv: the echo is sent at once, and what the socket does not take is kept
        (--work: what arrives waits in `received` for whole requests)."""
        try:
            data = client.conn.recv(common.BUF)
        except BlockingIOError:
            return
        if not data:
            client.eof = True
        elif self.work:
            client.received += data
        elif client.unsent:
            client.unsent += data
        else:
            client.unsent = bytearray(data)

    def serve(self, client):
        """--work: the whole requests read, in order: the CPU work here, inline (every client
        waits for it), a wait as a timer of the loop's own, during which the client is not
        read."""
        while client.due is None and len(client.received) >= common.HEADER:
            if len(client.unsent) >= common.MAX_UNSENT:
                return
            length, cpu_ns, wait_us = common.parse(bytes(client.received[:common.HEADER]))
            if len(client.received) < length:
                return
            self.work.burn(cpu_ns)
            if wait_us:
                client.due = time.monotonic() + wait_us / 1e6
                self.timer_count += 1
                heapq.heappush(self.timers, (client.due, self.timer_count, client))
                return
            client.unsent += client.received[:length]
            del client.received[:length]

    def flush(self, client):
        try:
            sent = client.conn.send(client.unsent)
        except BlockingIOError:
            return
        del client.unsent[:sent]

    def close(self, client):
        self.watch(client, 0)
        client.conn.close()
        client.closed = True
        self.clients -= 1


def main():
    args = common.parse_args(MODEL)
    listener = common.listen(MODEL, args.addr)
    listener.setblocking(False)
    if args.chat:
        endings = common.Endings(chat=True)
        rooms = common.OwnedRooms(listener, endings, args.chat_queue, common.Slots(args.max_conns))
        common.stop_on_signals(lambda: endings.exit(MODEL))
        common.announce(listener)
        rooms.run()
        return
    reactor = Reactor(listener, args.max_conns, common.calibrate(args))
    common.stop_on_signals(lambda: reactor.endings.exit(MODEL))
    common.announce(listener)
    reactor.run()


if __name__ == "__main__":
    main()
