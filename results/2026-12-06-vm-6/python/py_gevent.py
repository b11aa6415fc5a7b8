"""py-gevent: the tutorials' gevent server. Blocking-style code (recv, sendall) in a greenlet
per client; gevent's hub switches greenlets whenever one would block, on one thread over a
libev/libuv loop.

Where it should win: thread-per-client code at event-loop cost, thousands of clients without
an OS thread each. Where it breaks: everything runs on one thread, and every switch passes
through the hub in Python. Its Rust counterpart is `tokio-current-thread` (one thread, a task
per client).

Needs gevent (`scripts/python-models.sh` makes a virtual environment with it).

With --work, a request's CPU work runs in its greenlet and holds up the whole hub; its wait is
`gevent.sleep`, which lets the others run.

With --chat, a member is a greenlet that reads and one that writes its mailbox, the rooms shared
behind locks (`echo_common.LockedRooms`, the threading code under gevent's monkey-patching:
its locks are the hub's); a slow member is dropped past --chat-queue.

    python py_gevent.py --addr 127.0.0.1:7007 [--max-conns N] [--work | --chat]
"""

from gevent import monkey

monkey.patch_all()

import signal  # noqa: E402  (after monkey-patching, as gevent asks)

import echo_common as common  # noqa: E402
import gevent  # noqa: E402
import gevent.event  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

MODEL = "py-gevent"


def main():
    args = common.parse_args(MODEL)
    listener = common.listen(MODEL, args.addr)
    work = common.calibrate(args)
    endings = common.Endings(work=work is not None, chat=args.chat)
    slots = common.Slots(args.max_conns)
    rooms = common.LockedRooms(endings) if args.chat else None

    def client(conn, _peer):
        """Echoes one client to its EOF."""
        if not slots.take():
            return  # Over --max-conns: closed at once.
        try:
            common.nodelay(conn)
            if rooms:
                common.serve_member(conn, rooms, endings, args.chat_queue, gevent.spawn)
            elif work:
                common.serve_requests(conn, work, endings, sleep=gevent.sleep)
            else:
                common.echo(conn, endings)
        finally:
            slots.give()

    server = StreamServer(listener, client)
    server.start()
    common.announce(listener)
    stopped = gevent.event.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, stopped.set)
    stopped.wait()
    server.stop(timeout=0.5)
    endings.exit(MODEL)


if __name__ == "__main__":
    main()
