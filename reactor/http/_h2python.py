"""The HTTP/2 engine on the pure-Python `h2` package, behind reactor.http.h2.

For machines without libnghttp2 (`pip install 'reactor[http2]'`). It answers what the
libnghttp2 engine answers, through the same interface, and keeps the same guards (the `h2`
package has none against floods): the glitch and reset budgets, the header list limit (431)
and the HPACK bomb cap, the CONTINUATION limit, with the limits of reactor.http.limits. It is
a correctness path: the package costs about a hundred times the C engine per request.

What the package does its own way, made to agree here: a graceful GOAWAY would close its state
machine to the streams still being answered, so the frame is written by this module; the
request header list is checked here against the limit, the decoder only against the bomb cap.
Imports the `h2` package, reactor.http.h2's constants and limits; never reactor.http._h2native.
"""

import os

import h2
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.frame_buffer
import h2.settings
from hyperframe.frame import ContinuationFrame, GoAwayFrame

from . import limits
from .h2 import (
    CLOSE,
    COOKIES,
    DATA,
    END,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    HOST,
    INTERNAL_ERROR,
    NO_ERROR,
    PSEUDO_SHIFT,
    REFUSED_STREAM,
    REQUEST,
    TOO_LARGE,
    Refusal,
    without_closed,
)

NAME = f"h2 {h2.__version__} (pure Python)"

# Hop-by-hop fields of HTTP/1.1 that are malformed in HTTP/2 (RFC 9113 §8.2.2).
_HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"proxy-connection",
                         b"transfer-encoding", b"upgrade"))
_SETTINGS = h2.settings.SettingCodes
_MAX_STREAM_ID = 2 ** 31 - 1


def new_shared():
    return None   # nothing to share: the package keeps its buffers per connection


class _Frames(h2.frame_buffer.FrameBuffer):
    """The package's frame reader with the CONTINUATION limit of limits.py (its own is 64)."""

    def _update_header_buffer(self, frame):
        if (self._headers_buffer and isinstance(frame, ContinuationFrame)
                and len(self._headers_buffer) > limits.H2_MAX_CONTINUATIONS):
            raise h2.exceptions.DenialOfServiceError("too many CONTINUATION frames")
        return super()._update_header_buffer(frame)


class _Body:
    """A response body in pieces, as the C shim's h2_body: the current piece's bytes (or file
    range) and whether another follows."""

    __slots__ = ("data", "fd", "offset", "left", "last", "starved", "sent")

    def __init__(self):
        self.data = b""
        self.fd = -1
        self.offset = 0
        self.left = 0
        self.last = False
        self.starved = False
        self.sent = 0


class _Bucket:
    """A token bucket: `burst` tokens, refilled at `rate` a second."""

    __slots__ = ("tokens", "stamp", "burst", "rate")

    def __init__(self, burst, rate):
        self.tokens = burst
        self.stamp = 0.0
        self.burst = burst
        self.rate = rate

    def take(self, now) -> bool:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def give(self):
        self.tokens = min(self.burst, self.tokens + 1)


class Session:
    """One connection's `h2` state machine (see reactor.http.h2 for the interface)."""

    __slots__ = ("conn", "bodies", "order", "open", "local_ended", "remote_ended",
                 "ended_on_headers", "closed", "extra", "dirty", "failure", "glitches", "resets",
                 "rest",
                 "counts_", "last_stream", "now")

    def __init__(self, shared=None):
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        conn = h2.connection.H2Connection(config)
        conn.incoming_buffer = _Frames(server=True)
        conn.local_settings = h2.settings.Settings(client=False, initial_values={
            _SETTINGS.MAX_CONCURRENT_STREAMS: limits.H2_MAX_CONCURRENT_STREAMS,
            _SETTINGS.MAX_HEADER_LIST_SIZE: limits.H2_MAX_HEADER_LIST,
            _SETTINGS.INITIAL_WINDOW_SIZE: limits.H2_INITIAL_WINDOW,
        })
        conn.initiate_connection()
        conn.increment_flow_control_window(limits.H2_CONNECTION_WINDOW - 65535)
        self.conn = conn
        self.bodies = {}           # stream id -> _Body
        self.order = []            # streams with a body, in round-robin order
        self.open = set()          # streams not yet closed
        self.local_ended = set()   # streams whose response has ended
        self.remote_ended = set()  # streams whose request has ended
        self.ended_on_headers = set()
        self.closed = []           # (stream id, code, 0) to report with the next send
        self.extra = b""           # frames of ours to write after the package's
        self.dirty = True          # something may be waiting to be written
        self.failure = None
        self.glitches = _Bucket(limits.H2_GLITCH_BURST, limits.H2_GLITCH_RATE)
        self.resets = _Bucket(limits.H2_RESET_BURST, limits.H2_RESET_RATE)
        self.counts_ = {}
        self.last_stream = _MAX_STREAM_ID   # streams above it are refused (after GOAWAY)
        self.now = 0.0
        self.rest = b""            # never anything: each read is taken whole
        self._decoder_cap()

    def _decoder_cap(self):
        # The decoder stops at the bomb cap; the list limit is ours to answer (431), as in
        # the C engine. The package sets the decoder's cap from our SETTINGS when they are
        # acknowledged, so it is set again after every read.
        self.conn.decoder.max_header_list_size = limits.H2_HPACK_BOMB

    def _count(self, name):
        self.counts_[name] = self.counts_.get(name, 0) + 1

    def _calm_down(self, reason):
        if self.failure is None:
            self.failure = (reason, ENHANCE_YOUR_CALM)
            self.conn.close_connection(ENHANCE_YOUR_CALM)
        raise _Stop

    def _glitch(self):
        self._count("glitches")
        if not self.glitches.take(self.now):
            self._calm_down("glitches")

    # -- receiving -----------------------------------------------------------------------------

    def receive(self, data, now: float, ready=None) -> list:
        # The fast lane's kept answers (`ready`) are the libnghttp2 shim's: this engine
        # sends every request the full path.
        self.now = now
        self.dirty = True
        if self.failure is not None:
            return []
        try:
            received = self.conn.receive_data(bytes(data))
        except h2.exceptions.ProtocolError as error:
            code = int(error.error_code)
            if isinstance(error, h2.exceptions.DenialOfServiceError):
                reason = ("continuations" if "CONTINUATION" in str(error)
                          else "hpack_bomb" if "Oversized" in str(error) else "glitches")
            else:
                reason = "protocol"
            self.failure = (reason, code)
            return []
        events = []
        try:
            for event in received:
                self._event(event, events)
        except _Stop:
            pass
        self._decoder_cap()
        closed = {event[1] for event in events if event[0] == CLOSE}
        return without_closed(events, closed) if closed else events

    def _event(self, event, events):
        kind = event.__class__
        if kind is h2.events.RequestReceived:
            stream_id = event.stream_id
            if stream_id > self.last_stream:
                self.conn.reset_stream(stream_id, REFUSED_STREAM)
                return
            self.glitches.give()
            self.open.add(stream_id)
            flags = END_STREAM if event.stream_ended is not None else 0
            if flags:
                self.ended_on_headers.add(stream_id)
                self.remote_ended.add(stream_id)
            parts = []
            size = 0
            cookies = 0
            for name, value in event.headers:
                size += len(name) + len(value) + 32
                parts.append(name)
                parts.append(value)
                if name[:1] == b":":
                    flags += 1 << PSEUDO_SHIFT
                elif name == b"cookie":
                    cookies += 1
                elif name == b"host":
                    flags |= HOST
            if size > limits.H2_MAX_HEADER_LIST or len(parts) // 2 > limits.H2_MAX_FIELDS:
                self._count("too_large")
                flags = (flags & END_STREAM) | TOO_LARGE
                parts = []
            elif cookies > 1:
                flags |= COOKIES
            events.append((REQUEST, stream_id, flags, parts, None))   # never a plain key
        elif kind is h2.events.DataReceived:
            padding = event.flow_controlled_length - len(event.data)
            if padding:
                self.conn.acknowledge_received_data(padding, event.stream_id)
            if event.data:
                events.append((DATA, event.stream_id, event.data))
            elif event.stream_ended is None:
                self._glitch()   # empty DATA that ends nothing
        elif kind is h2.events.StreamEnded:
            stream_id = event.stream_id
            if stream_id in self.ended_on_headers:
                self.ended_on_headers.discard(stream_id)
                return
            self.remote_ended.add(stream_id)
            events.append((END, stream_id))
            if stream_id in self.local_ended:
                self._close(stream_id, NO_ERROR, events)
        elif kind is h2.events.StreamReset:
            self._count("resets_received")
            self._close(event.stream_id, int(event.error_code), events)
            if event.remote_reset and not self.resets.take(self.now):
                self._calm_down("resets")
        elif kind in (h2.events.PingReceived, h2.events.RemoteSettingsChanged,
                      h2.events.WindowUpdated, h2.events.PriorityUpdated):
            self._glitch()

    def _close(self, stream_id, code=NO_ERROR, events=None):
        if stream_id not in self.open:
            return
        self.open.discard(stream_id)
        self.local_ended.discard(stream_id)
        self.remote_ended.discard(stream_id)
        self.ended_on_headers.discard(stream_id)
        body = self.bodies.get(stream_id)
        if body is not None and stream_id in self.order:
            self.order.remove(stream_id)
        if events is not None:
            events.append((CLOSE, stream_id, code, 0))
        else:
            self.closed.append((stream_id, code, 0))

    def counts(self) -> dict:
        return dict(self.counts_)

    def memory(self) -> int:
        return 0   # the h2 package's objects are Python's: tracemalloc sees them, nothing here

    def consume(self, stream_id: int, count: int):
        try:
            self.conn.acknowledge_received_data(count, stream_id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            # The stream is gone: its window went with it, the connection's is given back.
            self.conn.increment_flow_control_window(count)
        self.dirty = True

    # -- sending -------------------------------------------------------------------------------

    def respond(self, stream_id: int, status: int, fields: bytes, extra: bytes, length,
                piece, last: bool, sendfile: bool):
        headers = [(b":status", b"%d" % status)]
        for block in (fields, extra):
            for line in block.split(b"\r\n"):
                name, colon, value = line.partition(b":")
                if colon and name:
                    name = name.lower()
                    if name not in _HOP_BY_HOP:
                        headers.append((name, value.strip(b" \t")))
        if length is not None:
            headers.append((b"content-length", b"%d" % length))
        try:
            self.conn.send_headers(stream_id, headers, end_stream=piece is None)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            raise Refusal(stream_id) from None
        self.dirty = True
        if piece is None:
            self._ended(stream_id)
            return
        body = self.bodies[stream_id] = _Body()
        self._fill(body, piece, last)
        self.order.append(stream_id)

    def _fill(self, body, piece, last):
        body.data = piece.data
        body.fd = piece.fd
        body.offset = piece.offset
        body.left = piece.count
        body.last = last
        body.starved = False

    def supply(self, stream_id: int, piece, last: bool):
        body = self.bodies.get(stream_id)
        if body is not None:
            self._fill(body, piece, last)
            self.dirty = True

    def sent(self, stream_id: int) -> int:
        body = self.bodies.get(stream_id)
        return body.sent if body is not None else 0

    def forget(self, stream_id: int) -> int:
        body = self.bodies.pop(stream_id, None)
        return body.sent if body is not None else 0

    def _ended(self, stream_id):
        """Our side of the stream ended: it closes if the client's has."""
        if stream_id in self.remote_ended:
            self._close(stream_id)
        else:
            self.local_ended.add(stream_id)

    def send(self, budget: int):
        conn = self.conn
        starved = []
        order = self.order
        # Round robin: each stream with data and window gets a frame in turn.
        progress = True
        while progress and budget > 0 and order:
            progress = False
            for stream_id in list(order):
                body = self.bodies[stream_id]
                if body.left == 0:
                    if body.last:
                        self._finish(stream_id, b"")
                        progress = True
                    elif not body.starved:
                        body.starved = True
                        starved.append(stream_id)
                    continue
                try:
                    window = conn.local_flow_control_window(stream_id)
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                    order.remove(stream_id)
                    continue
                size = min(window, conn.max_outbound_frame_size, body.left, budget)
                if size <= 0:
                    continue
                if body.fd < 0:
                    chunk = body.data[body.offset:body.offset + size]
                else:
                    chunk = os.pread(body.fd, size, body.offset)
                    if not chunk:   # the file shrank
                        order.remove(stream_id)
                        conn.reset_stream(stream_id, INTERNAL_ERROR)
                        self._close(stream_id, INTERNAL_ERROR)
                        continue
                size = len(chunk)
                body.offset += size
                body.left -= size
                body.sent += size
                budget -= size
                self.glitches.give()
                if body.left == 0 and body.last:
                    self._finish(stream_id, chunk)
                else:
                    conn.send_data(stream_id, chunk)
                progress = True
        data = conn.data_to_send()
        if self.extra:
            data += self.extra
            self.extra = b""
        self.dirty = False
        closed, self.closed = self.closed, []
        return ([data] if data else []), closed, starved

    def _finish(self, stream_id, chunk):
        self.order.remove(stream_id)
        self.conn.send_data(stream_id, chunk, end_stream=True)
        self._ended(stream_id)

    def reset(self, stream_id: int, code: int):
        try:
            self.conn.reset_stream(stream_id, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            return
        self._close(stream_id, code)
        self.dirty = True

    def shutdown(self, final: bool):
        """GOAWAY without closing the package's state machine: it would refuse to finish the
        streams still open."""
        frame = GoAwayFrame(0)
        frame.error_code = NO_ERROR
        if final:
            self.last_stream = frame.last_stream_id = self.conn.highest_inbound_stream_id
        else:
            frame.last_stream_id = _MAX_STREAM_ID
        self.extra += frame.serialize()
        self.dirty = True

    def terminate(self, code: int):
        if self.failure is None:
            self.failure = None if code == NO_ERROR else ("protocol", code)
        self.conn.close_connection(code)
        self.last_stream = 0
        self.dirty = True

    def want_read(self) -> bool:
        return self.failure is None and (self.last_stream == _MAX_STREAM_ID or bool(self.open))

    def want_write(self) -> bool:
        return self.dirty or any(self.bodies[s].left or self.bodies[s].last for s in self.order)

    def close(self):
        self.bodies.clear()
        self.order.clear()


class _Stop(Exception):
    """A guard ended the connection: no later event of the read is handled."""


__all__ = ["NAME", "Session", "new_shared"]
