"""py-iterative: the tutorials' first server, as they write it with `socket`. One client at a
time: accept, echo until the client's EOF, close, accept the next.

Where it should win: nothing but simplicity (no thread, no process, no event loop). Where it
breaks: a second client waits in the listen backlog until the first has left, so at any
concurrency above one every client but one starves. Its Rust counterpart is `blocking`.

With --work, each request's CPU work and its wait (`time.sleep`) hold up every other client
as well.

    python3 py_iterative.py --addr 127.0.0.1:7007 [--work]
"""

import echo_common as common

MODEL = "py-iterative"


def main():
    args = common.parse_args(MODEL)
    listener = common.listen(MODEL, args.addr)
    work = common.calibrate(args)
    endings = common.Endings(work=work is not None)
    common.stop_on_signals(lambda: endings.exit(MODEL))
    common.announce(listener)
    while True:
        conn, _ = common.accept(MODEL, listener)
        if work:
            common.serve_requests(conn, work, endings)
        else:
            common.echo(conn, endings)


if __name__ == "__main__":
    main()
