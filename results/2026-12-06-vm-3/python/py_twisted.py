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

    python py_twisted.py --addr 127.0.0.1:7007 [--max-conns N] [--work]
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
        if not self.counted:
            return
        self.factory.open -= 1
        if reason.check(error.ConnectionDone) or self.factory.stopping or self.refused:
            return
        # Twisted names a reset ConnectionLost; anything else is counted as other.
        lost = ConnectionResetError() if reason.check(error.ConnectionLost) else OSError()
        self.factory.endings.count(lost)


class EchoFactory(protocol.ServerFactory):
    protocol = Echo
    noisy = False

    def __init__(self, cap, work):
        self.cap = cap
        self.open = 0
        self.work = work
        self.endings = common.Endings(work=work is not None)
        # The reactor's shutdown drops the connections still open; those are not the clients'.
        self.stopping = False
        reactor.addSystemEventTrigger("before", "shutdown", setattr, self, "stopping", True)


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
    factory = EchoFactory(args.max_conns, common.calibrate(args))
    listener.setblocking(False)
    port = reactor.adoptStreamPort(listener.fileno(), common.family_of(args.addr[0]), factory)
    listener.close()  # The reactor holds its own duplicate of the listening socket.
    print("listening on %s" % common.show((port.getHost().host, port.getHost().port)), flush=True)
    # Twisted's own handlers turn SIGTERM and SIGINT into reactor.stop().
    reactor.run()
    factory.endings.exit(MODEL)


if __name__ == "__main__":
    sys.exit(main())
