"""What lies below a connection: the bytes in and out of one socket, and when they can move.

A connection reads with `recv_into`, writes with `send` and `sendfile(in_fd, offset, count)`,
half-closes with `shutdown`, says which readiness it waits for with `watch(reader, writer)` and
ends with `close`. Errors are the socket's: BlockingIOError when nothing can move now, another
OSError when the peer is gone. A TLS transport (tls.py) offers the same names, so nothing above
this layer knows which one it has.

The plain transport's methods are the socket's own, bound once per connection, so the plain
path costs no Python call of its own. A transport may replace a method during its life (after a
handshake, say): callers look them up on the transport each time and never keep them.
"""

import functools
import os


def _send_file_fallback(out_fd, in_fd, offset, count):
    data = os.pread(in_fd, count, offset)
    return os.write(out_fd, data) if data else 0


send_file = getattr(os, "sendfile", _send_file_fallback)


class PlainTransport:
    __slots__ = ("sock", "loop", "fd", "recv_into", "send", "sendfile", "shutdown", "watch")

    def __init__(self, loop, sock):
        self.sock = sock
        self.loop = loop
        self.fd = fd = sock.fileno()
        self.recv_into = sock.recv_into
        self.send = sock.send
        self.sendfile = functools.partial(send_file, fd)
        self.shutdown = sock.shutdown
        self.watch = functools.partial(loop.watch, fd)

    def close(self):
        self.loop.forget(self.fd)
        try:
            self.sock.close()
        except OSError:
            pass
