"""What every kind of connection (HTTP/1.1 in connection.py, HTTP/2 in h2connection.py) does with
its socket's readiness: reading into the server's shared buffer, and the backpressure: no reading
while the client does not read what it asked for, writability awaited meanwhile, and a deadline
of send_timeout without progress. A mixin; knows the transport and the loop, not HTTP.
"""

import enum


class State(enum.Enum):
    """A connection's state (an HTTP/2 connection is IDLE without streams, WRITING with)."""
    IDLE = "idle"                  # keep-alive, waiting for the next request
    READING_HEAD = "reading head"  # part of a head has arrived
    READING_BODY = "reading body"  # a body is arriving
    WRITING = "writing"            # a response is being produced or written
    CLOSING = "closing"            # last response written, draining input before close
    TUNNEL = "tunnel"              # after a 101: the bytes belong to another protocol
    CLOSED = "closed"


# The members as module globals, for the modules that read them on every request: on Python
# 3.11 a member read through its Enum class goes by way of EnumType.__getattr__ (780
# instructions, where a request reads about ten).
IDLE, READING_HEAD, READING_BODY, WRITING = (State.IDLE, State.READING_HEAD,
                                             State.READING_BODY, State.WRITING)
CLOSING, TUNNEL, CLOSED = State.CLOSING, State.TUNNEL, State.CLOSED


class SocketSide:
    """Works on its class's `state`, `reading`, `blocked`, `deadline`, `loop`, `server` and
    `transport`, and calls its `on_readable`, `close` and `_write_more` (write what is queued,
    now that the socket takes more)."""

    __slots__ = ()

    def _read(self):
        """Bytes read into the server's receive buffer: their count (0 when the client
        closed), or None when there was nothing to read or the connection was lost."""
        try:
            return self.transport.recv_into(self.server.recv_buffer)
        except (BlockingIOError, InterruptedError):
            return None   # on TLS also: a handshake step
        except OSError:
            self.close()
            return None

    def _block(self):
        self.deadline = self.loop.now + self.server.config.send_timeout
        if not self.blocked:
            # Stop reading while the client is not reading: that is the backpressure.
            self._watch(False, True)

    def _watch(self, reading: bool, writing: bool):
        if self.state is CLOSED:
            return
        self.reading = reading
        self.blocked = writing
        self.transport.watch(self.on_readable if reading else None,
                             self._on_writable if writing else None)

    def _on_writable(self):
        self.deadline = self.loop.now + self.server.config.send_timeout
        self._write_more()
