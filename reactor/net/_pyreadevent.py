"""The pure-Python twin of reactor.net._creadevent, for machines without the C extension:
the same results, at the cost of more system calls. Imports nothing of reactor.

Its fast lane has no second table: NativeLane is None, and the Python lane (FastLane and the
connection) answers every plain request, as the C lane's misses are answered anyway."""

import errno
import os

NativeLane = None

# Connections the client gave up on before they were taken: skipped, as accept4's caller does.
_GONE = (errno.ECONNABORTED, errno.EPROTO)


class Acceptor:
    """As reactor.net._creadevent.Acceptor."""

    __slots__ = ("listener", "batch")

    def __init__(self, listener, batch: int):
        self.listener = listener
        self.batch = batch

    def accept(self) -> tuple:
        taken = []
        for _ in range(self.batch):
            try:
                # The descriptor alone, as the C twin gives it (and close-on-exec, as
                # Python makes every descriptor).
                fd, address = self.listener._accept()
            except (BlockingIOError, InterruptedError):
                return taken, None
            except OSError as error:
                if error.errno in _GONE:
                    continue
                return taken, error
            os.set_blocking(fd, False)
            host, port = address[:2] if isinstance(address, tuple) else ("", 0)
            taken.append((fd, host, port))
        return taken, None
