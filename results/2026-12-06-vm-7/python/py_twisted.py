"""py-twisted: the tutorials' Twisted echo protocol. Twisted's reactor (epoll) calls the
protocol's dataReceived with whatever arrived, and the echo goes back through the transport.

Where it should win: the reactor is mature and event-driven, many clients for the price of a
protocol object each. Where it breaks: each event passes through Twisted's Python layers, more
of them than a hand-written selectors loop. Its Rust counterpart is `mio`.

Needs Twisted (`scripts/python-models.sh` makes a virtual environment with it). The transport
is registered as its own producer, so that a client that does not read stops being read
instead of growing the write buffer without bound; a half-close is honoured (the echo is
flushed, then the connection closed). With --work, a request's CPU work runs on the reactor
and holds up every client; its wait is a `callLater`.

With --chat, the factory owns the rooms (lists of member protocols) on the reactor's one thread:
no lock; a message is written to every member's transport at once. Each member is its own
transport's producer, with the transport's `bufferSize` set to --chat-queue: a transport whose
unsent bytes pass it pauses its producer, which drops the member.

    python py_twisted.py --addr 127.0.0.1:7007 [--max-conns N] [--work | --chat]
"""

import sys

import echo_common as common
from twisted.internet import error, protocol, reactor
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import LogLevel, formatEvent, globalLogBeginner
from zope.interface import implementer

MODEL = "py-twisted"


@implementer(IHalfCloseableProtocol)
class Echo(protocol.Protocol):
    counted = False

    def connectionMade(self):
        factory = self.factory
        if factory.cap is not None and factory.open >= factory.cap:
            self.transport.abortConnection()  # Over --max-conns: closed at once.
            return
        self.counted = True
        factory.open += 1
        self.transport.setTcpNoDelay(True)
        # Back-pressure: the transport pauses its own reading while its write buffer is full.
        self.transport.registerProducer(self.transport, True)

    def dataReceived(self, data):
        if self.factory.work is None:
            self.transport.write(data)
            return
        self.received += data
        self.serve()

    # --work: the bytes read and not yet answered, whether the first request waits, and whether
    # the connection was closed for a request that broke a rule (counted as that, not as a
    # reset).
    received = b""
    waiting = False
    refused = False

    def serve(self):
        """--work: answers the whole requests read, in order; a request's CPU work runs here,
        on the reactor, and its wait is a `callLater`, during which the connection is not
        read (`pauseProducing`)."""
        work = self.factory.work
        while not self.waiting and len(self.received) >= common.HEADER:
            try:
                length, cpu_ns, wait_us = common.parse(self.received[:common.HEADER])
            except common.Refused as refused:
                self.factory.endings.refused(refused.kind)
                self.received = b""
                self.refused = True
                self.transport.abortConnection()
                return
            if len(self.received) < length:
                return
            request, self.received = self.received[:length], self.received[length:]
            work.burn(cpu_ns)
            if wait_us:
                self.waiting = True
                self.transport.pauseProducing()
                reactor.callLater(wait_us / 1e6, self.answer, request)
                return
            self.transport.write(request)
        if self.half_closed and not self.waiting:
            self.finish()

    def answer(self, request):
        """--work: a request's wait is over."""
        self.waiting = False
        if self.transport.connected:
            self.transport.write(request)
            self.transport.resumeProducing()
            self.serve()

    half_closed = False

    def finish(self):
        """The client half-closed: what it sent is answered; a request it left unfinished is
        counted; then the connection is closed."""
        if self.received:
            self.factory.endings.mid_message()
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def readConnectionLost(self):
        if self.factory.work is not None:
            self.half_closed = True
            if not self.waiting:
                self.finish()
            return
        # Nothing more will be read: no producer to wait for; flush what is owed, then close.
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def writeConnectionLost(self):
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if self.counted:
            self.factory.lost(reason, self.refused)


@implementer(IHalfCloseableProtocol)
class Member(protocol.Protocol):
    """--chat: one member; the producer of its own transport, so that the transport says when
    what is queued for it passes --chat-queue."""

    counted = False
    room = None
    # Closed by the server: a bad frame, or too slow (counted as that, not as a reset).
    closed_by_us = False

    def connectionMade(self):
        factory = self.factory
        if factory.cap is not None and factory.open >= factory.cap:
            self.transport.abortConnection()  # Over --max-conns: closed at once.
            return
        self.counted = True
        factory.open += 1
        common.chat_socket(self.transport.getHandle())
        self.decoder = common.Decoder()
        self.transport.bufferSize = factory.chat_queue
        self.transport.registerProducer(self, True)

    def pauseProducing(self):
        """More than --chat-queue is queued for this member: it is dropped."""
        if not self.closed_by_us:
            self.closed_by_us = True
            self.factory.leave(self)
            self.factory.endings.chatted(common.DROPPED)
            self.transport.abortConnection()

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass

    def dataReceived(self, data):
        if self.closed_by_us:
            return
        try:
            requests = self.decoder.feed(data)
        except common.BadFrame:
            self.factory.endings.chatted(common.BAD)
            self.closed_by_us = True
            self.factory.leave(self)
            self.transport.abortConnection()
            return
        for kind, value in requests:
            if kind == "J":
                self.factory.join(self, value)
            else:
                self.factory.fan_out(self.room, value)

    def readConnectionLost(self):
        """Left: out of its room; what it was owed is flushed, then the connection closed."""
        if self.decoder.buf:
            self.factory.endings.mid_message()
            self.closed_by_us = True
            self.transport.abortConnection()
            return
        self.factory.leave(self)
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def writeConnectionLost(self):
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if self.counted:
            self.factory.leave(self)
            self.factory.lost(reason, self.closed_by_us)


class EchoFactory(protocol.ServerFactory):
    protocol = Echo
    noisy = False

    def __init__(self, cap, work, chat_queue=None):
        self.cap = cap
        self.open = 0
        self.work = work
        self.endings = common.Endings(work=work is not None, chat=chat_queue is not None)
        # --chat: the most bytes queued per member, and each room's members in joining order.
        self.chat_queue = chat_queue
        self.rooms = {}
        if chat_queue is not None:
            self.protocol = Member
        # The reactor's shutdown drops the connections still open; those are not the clients'.
        self.stopping = False
        reactor.addSystemEventTrigger("before", "shutdown", setattr, self, "stopping", True)


    def lost(self, reason, ours):
        """A connection it counted has closed: one fewer open, and its ending counted unless it
        was clean, a stop's, or the server's own doing (`ours`)."""
        self.open -= 1
        if reason.check(error.ConnectionDone) or self.stopping or ours:
            return
        # Twisted names a reset ConnectionLost; anything else is counted as other.
        lost = ConnectionResetError() if reason.check(error.ConnectionLost) else OSError()
        self.endings.count(lost)

    def join(self, member, room):
        members = self.rooms.setdefault(room, [])
        members.append(member)
        member.room = room
        member.transport.write(common.ack(room, len(members)))
        self.endings.chatted(common.JOINS)

    def fan_out(self, room, frame):
        delivered = 0
        for m in list(self.rooms.get(room, ())):
            # A write past --chat-queue pauses the member's producer, which drops it.
            m.transport.write(frame)
            if not m.closed_by_us:
                delivered += 1
        self.endings.chatted(common.MESSAGES)
        self.endings.chatted(common.DELIVERIES, delivered)

    def leave(self, member):
        members = self.rooms.get(member.room)
        if members is not None:
            if member in members:
                members.remove(member)
            if not members:
                del self.rooms[member.room]
        member.room = None


def one_line(event):
    """Twisted's log, reduced to what the contract asks for: an accept out of descriptors (Twisted
    then accepts and closes the connections it cannot hold), and errors, each in one line."""
    text = formatEvent(event)
    if text.startswith("EMFILE encountered"):
        sys.stderr.write("%s: accept: [Errno 24] Too many open files; Twisted closes the "
                         "connections it cannot take\n" % MODEL)
    elif event.get("log_level") in (LogLevel.error, LogLevel.critical):
        failure = event.get("log_failure")
        sys.stderr.write("%s: %s%s\n" % (MODEL, text.splitlines()[0] if text else "error",
                                          ": %s" % failure.value if failure else ""))


def main():
    args = common.parse_args(MODEL)
    globalLogBeginner.beginLoggingTo([one_line], redirectStandardIO=False)
    listener = common.listen(MODEL, args.addr)
    factory = EchoFactory(args.max_conns, common.calibrate(args),
                          args.chat_queue if args.chat else None)
    listener.setblocking(False)
    port = reactor.adoptStreamPort(listener.fileno(), common.family_of(args.addr[0]), factory)
    listener.close()  # The reactor holds its own duplicate of the listening socket.
    print("listening on %s" % common.show((port.getHost().host, port.getHost().port)), flush=True)
    # Twisted's own handlers turn SIGTERM and SIGINT into reactor.stop().
    reactor.run()
    factory.endings.exit(MODEL)


if __name__ == "__main__":
    sys.exit(main())
