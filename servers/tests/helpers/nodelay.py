"""Reads TCP_NODELAY off a server's accepted socket, from outside the server: pidfd_getfd
copies each socket descriptor of the given processes, and the one whose peer is the client's
port is asked. Prints `nodelay N`, `notfound`, or `unsupported WHY` (no pidfd_getfd, or no
permission to take another process's descriptors).

    python3 nodelay.py CLIENT_PORT PID...
"""

import ctypes
import os
import socket
import sys

SYS_PIDFD_GETFD = 438  # The same on every architecture (the unified numbers from 424 on).


def main():
    port = int(sys.argv[1])
    libc = ctypes.CDLL(None, use_errno=True)
    for pid in map(int, sys.argv[2:]):
        try:
            pidfd = os.pidfd_open(pid)
            names = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue  # Gone meanwhile (a child that has finished).
        for name in names:
            try:
                if not os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                err = ctypes.get_errno()
                if err in (1, 38):  # EPERM, ENOSYS
                    print("unsupported pidfd_getfd: %s" % os.strerror(err))
                    return
                continue
            sock = socket.socket(fileno=fd)
            try:
                tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
                if tcp and sock.type == socket.SOCK_STREAM and sock.getpeername()[1] == port:
                    print("nodelay %d" % sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                    return
            except OSError:
                pass
            finally:
                sock.close()
    print("notfound")


if __name__ == "__main__":
    main()
