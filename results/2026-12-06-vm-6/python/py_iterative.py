"""py-iterative: the tutorials' first server, as they write it with `socket`. One client at a
time: accept, echo until the client's EOF, close, accept the next.

Where it should win: nothing but simplicity (no thread, no process, no event loop). Where it
breaks: a second client waits in the listen backlog until the first has left, so at any
concurrency above one every client but one starves. Its Rust counterpart is `blocking`.

With --work, each request's CPU work and its wait (`time.sleep`) hold up every other client
as well.

With --chat, its one client is alone in its room (the rest wait in the backlog): its `J` is
answered with a room of one, and each of its messages goes back to it alone.

    python3 py_iterative.py --addr 127.0.0.1:7007 [--work | --chat]
"""

import echo_common as common

MODEL = "py-iterative"


def alone(conn, endings):
    """--chat: one member, alone in its room, to its EOF."""
    common.chat_socket(conn)
    decoder = common.Decoder()
    with conn:
        try:
            while True:
                data = conn.recv(common.BUF)
                if not data:
                    if decoder.buf:
                        endings.mid_message()
                    return
                for kind, value in decoder.feed(data):
                    if kind == "J":
                        conn.sendall(common.ack(value, 1))
                        endings.chatted(common.JOINS)
                    else:
                        conn.sendall(value)
                        endings.chatted(common.MESSAGES)
                        endings.chatted(common.DELIVERIES)
        except common.BadFrame:
            endings.chatted(common.BAD)
        except OSError as e:
            endings.count(e)


def main():
    args = common.parse_args(MODEL)
    listener = common.listen(MODEL, args.addr)
    work = common.calibrate(args)
    endings = common.Endings(work=work is not None, chat=args.chat)
    common.stop_on_signals(lambda: endings.exit(MODEL))
    common.announce(listener)
    while True:
        conn, _ = common.accept(MODEL, listener)
        if args.chat:
            alone(conn, endings)
        elif work:
            common.serve_requests(conn, work, endings)
        else:
            common.echo(conn, endings)


if __name__ == "__main__":
    main()
