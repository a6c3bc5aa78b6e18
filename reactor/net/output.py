"""What a connection writes: the queue of pieces (bytes, file slices, streams) and where each
response ends in it.

Joins small responses into one send, sends files with sendfile, pulls streamed bodies (which
may wait on a Future or a Deferred), stops reading while the client is not reading (the
backpressure), and tells the server the body bytes each response really sent once its last
byte is written or lost (the backpressure itself is socketside.py's). A part of Connection
(the Output mixin); knows bytes and the transport, not HTTP.
"""

import logging
import socket
from concurrent.futures import Future

from ..http import limits
from ..http.protocol import Stream
from ..http.response import Deferred, FileSlice
from .tunnel import Switch

log = logging.getLogger("reactor")

MSG_MORE = getattr(socket, "MSG_MORE", 0)
_END = object()

# Queued bytes are joined into one send up to this size (pipelined small responses); beyond
# it, pieces go out as they are, so a large body is never copied just to be joined.
JOIN_LIMIT = 64 * 1024


class ResponseEnd:
    """Where one response ends in the output: when the bytes before it are written (or the
    connection is lost first) the server learns the body bytes that actually went out.

    `request` is None for pieces that are no logged response of their own (100 Continue, an
    error before any request was read); they only move where the next response starts.
    `end` is the connection's written-byte count at which the response ends, once known."""

    __slots__ = ("request", "status", "head", "end", "started")

    def __init__(self, request, status: int, head: int, started: float = 0.0):
        self.request = request
        self.status = status
        self.head = head
        self.end = None
        self.started = started    # loop time the request arrived


class Output:
    """The writing half of Connection: works on its `output`, `ending`, `written` and
    `ended_at`, and calls its `advance`, `close` and `_block` (socketside.py)."""

    __slots__ = ()

    def _flush(self) -> bool:
        """Write queued pieces; False when the socket is full (writer registered) or the
        connection is gone or waiting on a stream item."""
        output = self.output
        transport = self.transport
        while output:
            piece = output[0]
            if piece.__class__ is bytes or piece.__class__ is memoryview:
                if len(output) > 2 and bytes in (output[1].__class__, output[2].__class__):
                    piece = self._join_leading_bytes(piece)
                # MSG_MORE only when more bytes follow: a corked last piece waits 200 ms.
                more = len(output) > 2 or (len(output) == 2
                                           and output[1].__class__ is not ResponseEnd)
                flags = MSG_MORE if more else 0
                try:
                    sent = transport.send(piece, flags)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    self.close()
                    return False
                self._written(sent)
                if sent < len(piece):
                    # A view, so a large body is not copied again on every partial send.
                    output[0] = memoryview(piece)[sent:]
                    self._block()
                    return False
                output.pop(0)
            elif piece.__class__ is FileSlice:
                if not self._send_file(piece):
                    return False
            elif piece.__class__ is Stream:
                if not self._pull_stream(piece):
                    return False
            elif piece.__class__ is ResponseEnd:
                output.pop(0)
                piece.end = self.written
                self._ended(piece)
            elif piece.__class__ is Switch:
                output.pop(0)
                self._switch(piece.tunnel)
                return False
            else:
                output[0] = memoryview(piece)   # bytearray and other buffers
        return True

    def _join_leading_bytes(self, first) -> bytes:
        """Small responses queued back to back become one send; large bodies are not copied.
        The ends of the responses joined move to `ending`, each with its offset."""
        output = self.output
        size = len(first)
        parts = [first]
        count = 1
        ends = self.ending
        for piece in output[1:]:
            if piece.__class__ is ResponseEnd:
                piece.end = self.written + size
                ends.append(piece)
            elif piece.__class__ is not bytes or size + len(piece) > JOIN_LIMIT:
                break
            else:
                size += len(piece)
                parts.append(piece)
            count += 1
        output[:count] = [b"".join(parts) if len(parts) > 1 else first]
        return output[0]

    def _send_file(self, piece) -> bool:
        while piece.count:
            try:
                sent = self.transport.sendfile(piece.fd, piece.offset,
                                               min(piece.count, limits.SENDFILE_CHUNK))
            except (BlockingIOError, InterruptedError):
                self._block()
                return False
            except OSError:
                self.close()
                return False
            if sent == 0:
                # The file shrank under us: the promised length can no longer be kept, and
                # anything else sent now would be read as a different response.
                log.warning("file changed while being sent to %s; closing", self.client[0])
                self.close()
                return False
            piece.offset += sent
            piece.count -= sent
            self._written(sent)
        piece.close()
        self.output.pop(0)
        return True

    def _pull_stream(self, stream) -> bool:
        output = self.output
        if self.waiting is not None:
            return False
        try:
            item = next(stream.iterator, _END)
            if item.__class__ is Deferred:
                self.waiting = item
                item.add_done_callback(self._stream_ready)
                return False
            if isinstance(item, Future):
                self.waiting = item
                item.add_done_callback(
                    lambda future: self.loop.call_soon_threadsafe(self._stream_ready, future))
                return False
        except Exception:
            log.exception("response body failed after its head was sent to %s", self.client[0])
            self.close()
            return False
        if item is _END:
            output.pop(0)
            stream.close()
            last = stream.last()
            if last:
                output.insert(0, last)
        elif item:
            output.insert(0, stream.frame(bytes(item)))
        return True

    def _stream_ready(self, future):
        if self.waiting is not future:
            return
        self.waiting = None
        try:
            item = future.result()
        except Exception:
            log.exception("response body failed after its head was sent to %s", self.client[0])
            self.close()
            return
        if item:
            self.output.insert(0, self.output[0].frame(bytes(item)))
        self.advance()

    def _written(self, count: int):
        self.written += count
        ending = self.ending
        while ending and ending[0].end <= self.written:
            self._ended(ending.pop(0))

    def _ended(self, end):
        """The response that `end` closes is written, or the connection lost it part way."""
        started, self.ended_at = self.ended_at, end.end
        if end.request is not None:
            if end.request.stream is not None:
                end.request.stream.discard()   # answered: the rest of its body is read past
            sent = end.end - started - end.head
            self.server.response_ended(self, end.request, end.status, sent if sent > 0 else 0,
                                       end.started)
