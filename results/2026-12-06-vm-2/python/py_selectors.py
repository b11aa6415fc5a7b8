"""py-selectors: a reactor by hand with `selectors`, the shape of Twisted's reactor. One thread
waits on epoll for every socket at once and handles whichever is ready: accept for the
listener, read-and-echo for a client, flush for a client whose echo did not all fit.

Where it should win: as asyncio, many clients for the price of a small object each, with less
machinery between the socket and the echo (no coroutines, no streams). Where it breaks: the
loop is Python, so per message it pays interpreter time that a Rust loop does not, and all of
it on one core. Its Rust counterpart is `mio`.

    python3 py_selectors.py --addr 127.0.0.1:7007 [--max-conns N]
"""

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

    def interest(self):
        """Read while the echo owed is small and the client has not half-closed; write while
        any is owed."""
        wanted = WRITE if self.unsent else 0
        if not self.eof and len(self.unsent) < common.MAX_UNSENT:
            wanted |= READ
        return wanted


class Reactor:
    def __init__(self, listener, cap):
        self.listener = listener
        self.cap = cap
        self.clients = 0
        self.endings = common.Endings()
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, READ)
        self.resume_accept = None

    def run(self):
        """Until a stop signal ends the process."""
        while True:
            for key, events in self.selector.select(self.accept_pause()):
                if key.fileobj is self.listener:
                    self.accept()
                else:
                    self.ready(key.data, events)

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
            if client.unsent:
                self.flush(client)
        except OSError as e:
            self.endings.count(e, echo_owed=client.eof and bool(client.unsent))
            self.close(client)
            return
        if client.eof and not client.unsent:
            self.close(client)  # Half-closed and every byte echoed: done.
            return
        wanted = client.interest()
        if wanted != self.selector.get_key(client.conn).events:
            self.selector.modify(client.conn, wanted, client)

    def read(self, client):
        """One recv: the echo is sent at once, and what the socket does not take is kept."""
        try:
            data = client.conn.recv(common.BUF)
        except BlockingIOError:
            return
        if not data:
            client.eof = True
        elif client.unsent:
            client.unsent += data
        else:
            client.unsent = bytearray(data)

    def flush(self, client):
        try:
            sent = client.conn.send(client.unsent)
        except BlockingIOError:
            return
        del client.unsent[:sent]

    def close(self, client):
        self.selector.unregister(client.conn)
        client.conn.close()
        self.clients -= 1


def main():
    args = common.parse_args(MODEL)
    listener = common.listen(MODEL, args.addr)
    listener.setblocking(False)
    reactor = Reactor(listener, args.max_conns)
    common.stop_on_signals(lambda: reactor.endings.exit(MODEL))
    common.announce(listener)
    reactor.run()


if __name__ == "__main__":
    main()
