"""py-threading: the tutorials' `threading.Thread` per client. The main thread accepts; each
client gets a thread of its own that echoes it to EOF with blocking calls.

Where it should win: simple blocking code that serves many clients at once, with the GIL let
go in every recv and send. Where it breaks: every client costs a thread (its stack, a kernel
task), and only one thread runs Python at a time, so more cores do not make it faster. Its
Rust counterpart is `thread-per-client`.

With --work, a request's wait is `time.sleep` (the GIL let go), its CPU work pure Python (the
GIL held: one thread computes at a time).

With --chat, the rooms are shared behind locks, as the threading chapter warns they must be
(`echo_common.LockedRooms`: a `threading.Lock` over the map of rooms, one per room held by the
sender's thread for its fan-out); each member has a mailbox and a writer thread of its own, so
that a slow member holds up nobody and is dropped past --chat-queue.

    python3 py_threading.py --addr 127.0.0.1:7007 [--max-conns N] [--work | --chat]
"""

import sys
import threading

import echo_common as common

MODEL = "py-threading"


def thread(target):
    """A daemon thread: a client still connected does not keep the process alive after a stop."""
    threading.Thread(target=target, daemon=True).start()


def serve(conn, endings, slots, work, chat):
    """Serves one client to its EOF (echo, --work's requests or a chat member), then gives back
    its slot."""
    try:
        if chat:
            rooms, cap = chat
            common.serve_member(conn, rooms, endings, cap, thread)
        elif work:
            common.serve_requests(conn, work, endings)
        else:
            common.echo(conn, endings)
    finally:
        slots.give()


def main():
    args = common.parse_args(MODEL)
    listener = common.listen(MODEL, args.addr)
    work = common.calibrate(args)
    endings = common.Endings(work=work is not None, chat=args.chat)
    slots = common.Slots(args.max_conns)
    chat = (common.LockedRooms(endings), args.chat_queue) if args.chat else None
    common.stop_on_signals(lambda: endings.exit(MODEL))
    common.announce(listener)
    while True:
        conn, peer = common.accept(MODEL, listener)
        if not slots.take():
            conn.close()  # Over --max-conns: closed at once.
            continue
        # A daemon thread: a client still connected does not keep the process alive after a
        # stop.
        thread = threading.Thread(target=serve, args=(conn, endings, slots, work, chat), daemon=True)
        try:
            thread.start()
        except RuntimeError as e:
            sys.stderr.write("%s: cannot start a thread for %s: %s\n" % (MODEL, peer, e))
            conn.close()
            slots.give()


if __name__ == "__main__":
    main()
