"""py-asyncio: the tutorials' `asyncio` server, with streams. One thread runs one event loop;
each client is a coroutine that awaits its reads and its writes' drain.

Where it should win: thousands of clients for the price of a coroutine each (no thread, no
process), and no locks. Where it breaks: every byte passes through Python-level protocol,
transport and stream objects, so per message it spends more CPU than a thread blocked in recv,
and a coroutine that computes stalls everyone. Its Rust counterpart is
`tokio-current-thread` (one thread, a task per client).

With --work, a request's CPU work runs inside its coroutine and stalls the loop, its wait is
`asyncio.sleep`; with `--offload pool` the CPU work goes to a process pool through
`run_in_executor` (one process per CPU of the affinity mask, each with its own GIL), and the
loop stays free.

With --chat, each room is a set of members' writers, as in the tutorial, owned by the one loop:
no lock; a message is written to every member's transport at once, each transport's buffer
bounded by --chat-queue (past it the member is dropped) instead of awaiting each member's send.

    python3 py_asyncio.py --addr 127.0.0.1:7007 [--max-conns N] [--work [--offload pool] | --chat]
"""

import asyncio
import concurrent.futures
import multiprocessing
import os
import signal
import sys

import echo_common as common

MODEL = "py-asyncio"


class Server:
    def __init__(self, cap, work, pool, chat_queue=None):
        self.endings = common.Endings(work=work is not None, chat=chat_queue is not None)
        self.cap = cap
        self.open = set()
        self.work = work
        self.pool = pool
        # --chat: the most bytes queued per member, and each room's set of members' writers.
        self.chat_queue = chat_queue
        self.rooms = {}

    async def client(self, reader, writer):
        """Echoes one client to its EOF (the transport stays open for writing after it), then
        closes. `drain` bounds what is buffered for a client that does not read."""
        if self.cap is not None and len(self.open) >= self.cap:
            writer.transport.abort()  # Over --max-conns: closed at once.
            return
        self.open.add(writer.transport)
        common.nodelay(writer.get_extra_info("socket"))
        if self.chat_queue is not None:
            try:
                await self.member(reader, writer)
            finally:
                self.open.discard(writer.transport)
            return
        try:
            if self.work:
                await self.requests(reader, writer)
            else:
                await self.echo(reader, writer)
            writer.close()
            await writer.wait_closed()
        except common.Refused as refused:
            self.endings.refused(refused.kind)
            writer.transport.abort()
        except asyncio.IncompleteReadError:
            self.endings.mid_message()
            writer.transport.abort()
        except OSError as e:
            self.endings.count(e)
            writer.transport.abort()
        finally:
            self.open.discard(writer.transport)

    async def echo(self, reader, writer):
        while True:
            data = await reader.read(common.BUF)
            if not data:
                return
            writer.write(data)
            await writer.drain()

    async def requests(self, reader, writer):
        """--work: a whole request, its CPU work (inline, or in the process pool), its wait,
        then the request back; until the client's EOF between requests."""
        loop = asyncio.get_running_loop()
        while True:
            header = await reader.read(common.HEADER)
            if not header:
                return
            if len(header) < common.HEADER:
                header += await reader.readexactly(common.HEADER - len(header))
            length, cpu_ns, wait_us = common.parse(header)
            rest = await reader.readexactly(length - common.HEADER)
            if cpu_ns and self.pool:
                await loop.run_in_executor(self.pool, common.burn, self.work.per_ns, cpu_ns)
            elif cpu_ns:
                self.work.burn(cpu_ns)
            if wait_us:
                await asyncio.sleep(wait_us / 1e6)
            writer.write(header + rest)
            await writer.drain()

    async def member(self, reader, writer):
        """--chat: one member. Its room is a set of writers, as the tutorial's set of clients;
        a message is written to each member's transport at once, in the loop's one order. The
        tutorial awaits each member's send, so that one slow member stalls its whole room; here
        a member's transport buffer is its queue instead, bounded by --chat-queue, and a member
        whose buffer would pass it is aborted and counted."""
        common.chat_socket(writer.get_extra_info("socket"))
        decoder = common.Decoder()
        room = None
        try:
            while not writer.transport.is_closing():
                data = await reader.read(common.BUF)
                if not data:
                    if decoder.buf:
                        self.endings.mid_message()
                        writer.transport.abort()
                        return
                    break
                for kind, value in decoder.feed(data):
                    if kind == "J":
                        room = value
                        members = self.rooms.setdefault(room, set())
                        members.add(writer)
                        writer.write(common.ack(room, len(members)))
                        self.endings.chatted(common.JOINS)
                    else:
                        self.fan_out(room, value)
            self.leave(room, writer)
            # Left: what it was owed is flushed, then the connection closed.
            writer.close()
            await writer.wait_closed()
        except common.BadFrame:
            self.endings.chatted(common.BAD)
            writer.transport.abort()
        except OSError as e:
            if not writer.transport.is_closing():
                self.endings.count(e)
            writer.transport.abort()
        finally:
            self.leave(room, writer)

    def fan_out(self, room, frame):
        members = self.rooms.get(room, set())
        delivered = 0
        for w in list(members):
            if w.transport.get_write_buffer_size() + len(frame) > self.chat_queue:
                members.discard(w)
                w.transport.abort()
                self.endings.chatted(common.DROPPED)
                continue
            w.write(frame)
            delivered += 1
        self.endings.chatted(common.MESSAGES)
        self.endings.chatted(common.DELIVERIES, delivered)

    def leave(self, room, writer):
        members = self.rooms.get(room)
        if members is not None:
            members.discard(writer)
            if not members:
                del self.rooms[room]

    async def close_all(self):
        """At a stop: every client's connection closed, and its coroutine let finish."""
        for transport in list(self.open):
            transport.abort()
        for _ in range(100):
            if not self.open:
                break
            await asyncio.sleep(0.001)


def one_line(loop, context):
    """asyncio's errors (an accept out of descriptors, say) in one line, not a traceback."""
    e = context.get("exception")
    sys.stderr.write("%s: %s%s\n" % (MODEL, context.get("message", "error"), ": %s" % e if e else ""))


async def serve(args):
    listener = common.listen(MODEL, args.addr)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(one_line)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    work = common.calibrate(args)
    pool = None
    if work and args.offload == "pool":
        processes = args.offload_threads or len(os.sched_getaffinity(0))
        pool = concurrent.futures.ProcessPoolExecutor(
            processes, mp_context=multiprocessing.get_context("fork"))
        # Its processes forked now, before any client: a worker forked later would hold a copy
        # of every client's socket, and a closed connection would never reach its client. (With
        # "fork", the first task starts every worker at once.)
        pool.submit(int).result()
        sys.stderr.write("work: CPU work on a pool of %d processes (%s+pool)\n" % (processes, MODEL))
    state = Server(args.max_conns, work, pool, args.chat_queue if args.chat else None)
    server = await asyncio.start_server(state.client, sock=listener, backlog=common.BACKLOG)
    common.announce(listener)
    await stop.wait()
    server.close()
    await state.close_all()
    if pool:
        # Work still in the pool is abandoned: its processes are ended, not waited for.
        pool.shutdown(wait=False, cancel_futures=True)
        for child in multiprocessing.active_children():
            child.kill()
    return state.endings


def steady_allocator():
    """asyncio's transports receive into 256 KiB buffers, above glibc's first mmap threshold
    (128 KiB): until a chunk that large has been freed, every message costs an mmap, an
    mremap and a munmap, and a fresh server echoes at well under half its speed (measured:
    46k against 112k msgs/s at 128 clients) until its first clients leave. One such chunk
    freed here raises the threshold (glibc adapts it to the largest mmapped chunk freed), so
    that a run measures the server as it runs for good."""
    warm = bytes(512 * 1024)
    del warm


def main():
    args = common.parse_args(MODEL, offload=True)
    steady_allocator()
    endings = asyncio.run(serve(args))
    endings.exit(MODEL)


if __name__ == "__main__":
    main()
