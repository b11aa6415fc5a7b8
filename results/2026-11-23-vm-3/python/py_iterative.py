"""py-iterative: the tutorials' first server, as they write it with `socket`. One client at a
time: accept, echo until the client's EOF, close, accept the next.

Where it should win: nothing but simplicity (no thread, no process, no event loop). Where it
breaks: a second client waits in the listen backlog until the first has left, so at any
concurrency above one every client but one starves. Its Rust counterpart is `blocking`.

    python3 py_iterative.py --addr 127.0.0.1:7007
"""

import time

import echo_common as common

MODEL = "py-iterative"


def serve(conn, endings):
    """Echoes one client to its EOF, then closes; a client's reset is counted, not raised."""
    with conn:
        try:
            common.nodelay(conn)
            while True:
                data = conn.recv(common.BUF)
                if not data:
                    return
                conn.sendall(data)
        except OSError as e:
            endings.count(e)


def main():
    args = common.parse_args(MODEL)
    listener = common.listen(MODEL, args.addr)
    endings = common.Endings()
    common.on_stop()
    common.announce(listener)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError as e:
                time.sleep(common.accept_error(MODEL, e))
                continue
            serve(conn, endings)
    except common.Stop:
        listener.close()
    endings.exit(MODEL)


if __name__ == "__main__":
    main()
