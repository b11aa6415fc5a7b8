"""py-udp: the tutorials' iterative UDP server: one socket, one datagram at a time, each sent
back to whoever sent it (recvfrom, then sendto).

Where it should win: no connections to accept or keep, so a datagram costs two system calls
and no more. Where it breaks: one thread serves every client in turn, and Python's time per
datagram caps the rate. Its Rust counterpart is `udp-blocking`.

It follows `echo-server`'s UDP rules: a datagram of up to 65,507 bytes is echoed whole, a
truncated one is counted and dropped, one from a port below 1024 or from a reflector port
above it (SSDP, mDNS, memcached) is never answered, nor one from the server's own address and
port, nor one identical to the last echo sent to its source less than 10 ms before (that echo
coming back from another echo server: answering would loop for ever); and a socket bound to a
wildcard address replies from the address the datagram was sent to (IP_PKTINFO). A
non-loopback address needs --allow-remote: a UDP echo server answers any source a datagram
claims, so it can be used to reflect traffic.

    python3 py_udp.py --addr 127.0.0.1:7007
"""

import ipaddress
import socket
import struct
import time

import echo_common as common

MODEL = "py-udp"

# One byte more than the largest IPv4 datagram, so a truncated receive means too large.
RECV_BUF = 65536

SOCKET_BUF = 4 << 20

LOWEST_REPLY_PORT = 1024

# Services that answer whatever reaches them, and so reflect spoofed traffic; those below
# LOWEST_REPLY_PORT are refused with every other port there.
REFLECTOR_PORTS = frozenset((7, 13, 17, 19, 37, 53, 123, 161, 1900, 5353, 11211))

# The same bytes back from where an echo went within this long are that echo round a loop.
LOOP_WINDOW = 0.010

# Echoes remembered: one (source, bytes) hash and time per slot, so memory stays bounded.
LOOP_SLOTS = 4096

# Linux's value; Python's socket module names it only from 3.13 on.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)

COUNTS = ("datagrams received", "echoed", "truncated", "from ports below %d" % LOWEST_REPLY_PORT,
          "from reflector ports", "from itself", "loop repeats dropped",
          "dropped on send (buffer full)", "send errors", "receive errors")
(RECEIVED, ECHOED, TRUNCATED, LOW_PORT, REFLECTOR_PORT, FROM_ITSELF, LOOP_REPEATS,
 DROPPED_ON_SEND, SEND_ERRORS, RECEIVE_ERRORS) = range(len(COUNTS))


def bind(args):
    host, port = args.addr
    ip = ipaddress.ip_address(host)
    if not ip.is_loopback and not args.allow_remote:
        common.fail(MODEL, "--addr %s is not a loopback address: a UDP echo server answers any "
                    "source address a datagram claims, so it can be used to reflect traffic; "
                    "pass --allow-remote to serve it anyway" % common.show(args.addr), code=2)
    sock = socket.socket(common.family_of(host), socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUF)
    try:
        sock.bind(args.addr)
    except OSError as e:
        common.fail(MODEL, "cannot bind --addr %s: %s" % (common.show(args.addr), e.strerror or e))
    wildcard = ip.is_unspecified
    if wildcard and ip.version == 4:
        sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    elif wildcard:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
    return sock, wildcard


def reply_from(ancdata):
    """The control message that makes a reply leave from the address the datagram came to."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
            ifindex, _spec, to = struct.unpack("=i4s4s", data[:12])
            return [(level, kind, struct.pack("=i4s4s", 0, to, bytes(4)))]
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
            return [(level, kind, data[:16] + struct.pack("=i", 0))]
    return []


def destination(ancdata):
    """The address a datagram was sent to, from its IP_PKTINFO or IPV6_PKTINFO."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
            return socket.inet_ntop(socket.AF_INET, data[8:12])
        if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO:
            return socket.inet_ntop(socket.AF_INET6, data[:16])
    return None


def from_itself(peer, local, wildcard, ancdata):
    """Whether a datagram comes from this socket's own address and port (on a wildcard socket:
    a loopback address, or the one the datagram was sent to)."""
    if peer[1] != local[1]:
        return False
    if peer[0] == local[0]:
        return True
    return wildcard and (ipaddress.ip_address(peer[0]).is_loopback
                         or peer[0] == destination(ancdata))


def serve(sock, wildcard, counts):
    ancillary = socket.CMSG_SPACE(20) if wildcard else 0
    local = sock.getsockname()
    sent = [None] * LOOP_SLOTS
    while True:
        try:
            data, ancdata, flags, peer = sock.recvmsg(RECV_BUF, ancillary)
        except OSError:
            counts[RECEIVE_ERRORS] += 1
            continue
        counts[RECEIVED] += 1
        if flags & socket.MSG_TRUNC:
            counts[TRUNCATED] += 1
            continue
        if peer[1] < LOWEST_REPLY_PORT:
            counts[LOW_PORT] += 1
            continue
        if peer[1] in REFLECTOR_PORTS:
            counts[REFLECTOR_PORT] += 1
            continue
        if from_itself(peer, local, wildcard, ancdata):
            counts[FROM_ITSELF] += 1
            continue
        slot = hash(peer) % LOOP_SLOTS
        key = hash(data)
        now = time.monotonic()
        last = sent[slot]
        if last is not None and last[0] == peer and last[1] == key and now - last[2] < LOOP_WINDOW:
            counts[LOOP_REPEATS] += 1
            continue
        sent[slot] = (peer, key, now)
        # Counted before it leaves: a stop signal right after the client has its echo must
        # find it counted.
        counts[ECHOED] += 1
        try:
            if wildcard:
                sock.sendmsg([data], reply_from(ancdata), 0, peer)
            else:
                sock.sendto(data, peer)
        except OSError:
            counts[ECHOED] -= 1
            counts[SEND_ERRORS] += 1


def main():
    args = common.parse_args(MODEL, udp=True)
    sock, wildcard = bind(args)
    counts = [0] * len(COUNTS)

    def stop():
        common.exit_with("%s: %s" % (MODEL, ", ".join("%d %s" % c for c in zip(counts, COUNTS))))

    common.stop_on_signals(stop)
    common.announce(sock)
    serve(sock, wildcard, counts)


if __name__ == "__main__":
    main()
