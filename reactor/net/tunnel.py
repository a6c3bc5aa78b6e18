"""What a connection becomes after a 101 response: the channel of another protocol's bytes.

A handler answers with response.Upgrade; once its head is written the connection hands what
arrives to the Upgrade's tunnel (a WebSocket) and writes what the tunnel writes, with the same
backpressure and send timeout as a response, and drains it (tunnel.drain()) on shutdown. A part
of Connection (the Tunnel mixin); knows bytes and the transport, not what they say.
"""

import math

from .socketside import TUNNEL


class Switch:
    """In the output after a 101 head: once written, the connection becomes `tunnel`'s."""

    __slots__ = ("tunnel",)

    def __init__(self, tunnel):
        self.tunnel = tunnel

    def close(self):
        """Dropped unwritten (the connection closed first): the tunnel never opens."""
        self.tunnel.lost()


class Tunnel:
    """The tunnel's channel: write(), backlog, end(), close(), pause_reading() and
    resume_reading(), on the Connection's `output`, `transport`, `state` and `tunnel` (None
    once closed)."""

    __slots__ = ()

    def _switch(self, tunnel):
        """Carry `tunnel` from now on."""
        self.state = TUNNEL
        self.tunnel = tunnel
        self.deadline = math.inf   # the tunnel keeps its own time (pings)
        self.server.reclaimable.pop(self, None)
        self.pending.clear()
        rest = self.protocol.take_buffered()
        self.reading = True
        self.blocked = False
        self.transport.watch(self._tunnel_readable, None)
        tunnel.attach(self)
        if rest:
            tunnel.received(rest)

    def _tunnel_readable(self):
        n = self._read()
        if n is None:   # nothing yet, or the connection was lost (and is closed)
            return
        if n == 0:
            self.close()
            return
        self.tunnel.received(bytes(self.server.recv_view[:n]))

    @property
    def backlog(self) -> int:
        """Bytes the tunnel wrote that the client has not taken yet."""
        return sum(len(piece) for piece in self.output)

    def write(self, data):
        if self.tunnel is None:   # closed: the connection lets go of its tunnel
            return
        output = self.output
        output.append(data)
        if len(output) == 1 and not self._tunnel_flush() and self.tunnel is not None:
            self.blocked = True
            self._tunnel_watch()

    def _tunnel_flush(self) -> bool:
        """Send what the tunnel wrote; False while the socket is full or once it is closed."""
        output = self.output
        while output:
            piece = output[0]
            try:
                sent = self.transport.send(piece)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self.close()
                return False
            self.written += sent
            if sent < len(piece):
                output[0] = memoryview(piece)[sent:]
                return False
            output.pop(0)
        return True

    def _tunnel_writable(self):
        if not self._tunnel_flush():
            if self.tunnel is not None:
                self.deadline = self.loop.now + self.server.config.send_timeout
            return
        if self.closing:
            self.close()
            return
        self.blocked = False
        self._tunnel_watch()
        self.tunnel.writable()

    def _tunnel_watch(self):
        # A client that stops reading gets send_timeout; otherwise the tunnel has no deadline
        # of the connection's.
        self.deadline = (self.loop.now + self.server.config.send_timeout if self.blocked
                         else math.inf)
        self.transport.watch(self._tunnel_readable if self.reading else None,
                             self._tunnel_writable if self.blocked else None)

    def pause_reading(self):
        self.reading = False
        self._tunnel_watch()

    def resume_reading(self):
        self.reading = True
        self._tunnel_watch()

    def end(self):
        """Close once what was written has gone out."""
        if self.output:
            self.closing = True
        else:
            self.close()
