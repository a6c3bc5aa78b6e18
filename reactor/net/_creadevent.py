"""The C read-event unit (csrc/readevent.c) behind the Python the server calls.

The only module of reactor.net that calls reactor._native. Imports nothing else of reactor;
reactor.net._pyreadevent is its pure-Python twin, and reactor.net.readevent picks one.
"""

import os

from .._native import ffi, lib

_accept = lib.re_accept


class Acceptor:
    """Takes the connections waiting on one listening socket, at most `batch` per call: each
    descriptor non-blocking and close-on-exec from the start, with no other system call."""

    __slots__ = ("fd", "_batch", "_fds", "_ports", "_hosts", "_keep")

    def __init__(self, listener, batch: int):
        self.fd = listener.fileno()
        fds = ffi.new("int[]", batch)
        ports = ffi.new("int[]", batch)
        self._hosts = ffi.new("char[]", batch * lib.RE_HOST_MAX)
        self._batch = ffi.new("struct re_accepted *", {
            "fds": fds, "ports": ports, "cap": batch,
            "hosts": self._hosts, "hosts_cap": batch * lib.RE_HOST_MAX})
        # Reading a memoryview is several times cheaper than indexing the cdata arrays.
        self._fds = memoryview(ffi.buffer(fds)).cast("i")
        self._ports = memoryview(ffi.buffer(ports)).cast("i")
        self._keep = (fds, ports)   # the batch struct points into them

    def accept(self) -> tuple:
        """([(fd, host, port), ...], error): the connections taken, and the OSError that
        stopped the batch (None when none was waiting any more). `host` is '' for a peer
        without an address (a unix socket's)."""
        batch = self._batch
        count = _accept(self.fd, batch)
        error = OSError(batch.error, os.strerror(batch.error)) if batch.error else None
        if not count:
            return (), error
        hosts = ffi.unpack(self._hosts, batch.hosts_len - 1).decode("ascii").split("\0")
        fds, ports = self._fds, self._ports
        return [(fds[i], hosts[i], ports[i]) for i in range(count)], error
