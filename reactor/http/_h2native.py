"""The HTTP/2 engine on libnghttp2 (csrc/h2.c through reactor._nghttp2), behind reactor.http.h2.

The only module that calls reactor._nghttp2. One C call per read: the shim turns every frame of
the read into records, and the request header blocks into one packed arena, from which this
module makes the events of reactor.http.h2 (one bytes.split per request). One C call per write
turn: frames come back as runs of the shared output buffer and file pieces. Imports
reactor.http.h2's constants only; never reactor.http._h2python.
"""

from .._nghttp2 import ffi, lib
from . import limits
from .h2 import (
    CLOSE,
    COOKIES,
    DATA,
    END,
    END_STREAM,
    HOST,
    PSEUDO_SHIFT,
    REQUEST,
    TOO_LARGE,
    Piece,
    Refusal,
    without_closed,
)

# The shim's buffers, shared by every connection of a loop (a connection uses them only within
# one call): records, the header arena, the output. Sizes: see csrc/h2.c (SLICE_RECORDS,
# SEND_ROOM); the arena holds at least one header list of the largest size plus room to spare.
RECORDS = 4096
ARENA = 4 * limits.H2_MAX_HEADER_LIST
OUTPUT = 320 * 1024
# h2_body structs kept for reuse (allocating one costs more than the rest of a small answer).
BODY_POOL = 1024

# The event flags are the shim's own bits: reactor.http.h2 names them for both engines.
assert (lib.H2_END_STREAM, lib.H2_TOO_LARGE, lib.H2_COOKIES, lib.H2_HOST, lib.H2_PSEUDO_SHIFT) \
    == (END_STREAM, TOO_LARGE, COOKIES, HOST, PSEUDO_SHIFT), "csrc/h2.h and reactor.http.h2 disagree"

VERSION = ffi.string(lib.h2_library_version()).decode()
FEATURES = lib.h2_features()
NAME = f"nghttp2 {VERSION}"

_REASONS = {1: "glitches", 2: "resets", 3: "hpack_bomb", 4: "flooded", 5: "continuations",
            6: "protocol"}
_COUNTERS = ("glitches", "resets_received", "resets_sent", "too_large")

_recv = lib.h2_recv
_answer = lib.h2_answer
_send = lib.h2_send
_respond = lib.h2_respond
_supply = lib.h2_supply
_unpack = ffi.unpack
_from_buffer = ffi.from_buffer
_H2_REQUEST = lib.H2_REQUEST
_H2_DATA = lib.H2_DATA
_H2_END = lib.H2_END
_H2_CLOSE = lib.H2_CLOSE
_H2_STARVED = lib.H2_STARVED
_H2_BYTES = lib.H2_BYTES
_H2_FILE = lib.H2_FILE
_H2_PAUSED = lib.H2_PAUSED
_H2_PARTIAL = lib.H2_PARTIAL
_H2_PLAIN = lib.H2_PLAIN


class Shared:
    """The buffers the shim fills, one set per loop."""

    __slots__ = ("batch", "records", "arena", "arena_buffer", "out", "out_view", "limits",
                 "bodies")

    def __init__(self):
        self.records = ffi.new("int64_t[]", 4 * RECORDS)
        self.arena = ffi.new("char[]", ARENA)
        self.arena_buffer = ffi.buffer(self.arena)
        self.out = ffi.new("uint8_t[]", OUTPUT)
        self.out_view = memoryview(ffi.buffer(self.out))
        self.bodies = []   # h2_body structs of released streams, for the next responses
        self.batch = ffi.new("struct h2_batch *", {
            "records": self.records, "records_cap": RECORDS, "arena": self.arena,
            "arena_cap": ARENA, "out": self.out, "out_cap": OUTPUT,
            "requests_cap": limits.H2_REQUESTS_PER_TURN,
            "resets_cap": limits.H2_RESETS_PER_TURN})
        self.limits = ffi.new("struct h2_limits *", {
            "max_concurrent_streams": limits.H2_MAX_CONCURRENT_STREAMS,
            "max_header_list": limits.H2_MAX_HEADER_LIST,
            "max_fields": limits.H2_MAX_FIELDS,
            "hpack_bomb": limits.H2_HPACK_BOMB,
            "max_settings": limits.H2_MAX_SETTINGS,
            "max_outbound_ack": limits.H2_MAX_OUTBOUND_ACK,
            "max_continuations": limits.H2_MAX_CONTINUATIONS,
            "reset_burst": limits.H2_RESET_BURST, "reset_rate": limits.H2_RESET_RATE,
            "glitch_burst": limits.H2_GLITCH_BURST, "glitch_rate": limits.H2_GLITCH_RATE,
            "initial_window": limits.H2_INITIAL_WINDOW,
            "connection_window": limits.H2_CONNECTION_WINDOW})


class Session:
    """One connection's libnghttp2 session (see reactor.http.h2 for the interface)."""

    __slots__ = ("shared", "conn", "carry", "bodies", "answered", "kept", "rest")

    def __init__(self, shared: Shared):
        self.shared = shared
        conn = ffi.new("struct h2_conn *")
        rv = lib.h2_open(conn, shared.limits)
        if rv != 0:
            raise MemoryError(f"nghttp2 session: error {rv}")
        self.conn = ffi.gc(conn, lib.h2_close)
        self.carry = b""   # a request header block that continues in the next read
        self.bodies = {}   # stream id -> the h2_body and what its pieces point into
        self.answered = 0   # requests receive() answered from `ready`
        self.kept = None    # with record_answers(): (stream id, key) of each of them
        self.rest = b""     # of the last read, what waits for the next turn (bytes or a view)

    # -- receiving -----------------------------------------------------------------------------

    def receive(self, data, now: float, ready=None) -> list:
        """The events of the bytes `data` (a buffer); after a fatal error, those before it
        (`failure` then says why). `ready`: the fast lane's kept answers by key (see
        reactor.http.h2), from which plain requests are answered here."""
        events = []
        shared = self.shared
        batch = shared.batch
        conn = self.conn
        now_ms = int(now * 1000)
        view = data if data.__class__ is memoryview else memoryview(data)
        kept = self.kept
        closed = None   # streams that ended within this read
        while True:
            carry = self.carry
            if carry:
                shared.arena_buffer[0:len(carry)] = carry
                self.carry = b""
            batch.arena_used = len(carry)
            count = _recv(conn, batch, _from_buffer(view), len(view), now_ms)
            if count <= 0:
                return events if closed is None else without_closed(events, closed)
            records = _unpack(shared.records, 4 * count)
            blob = None
            resume = later = None
            key = None    # of the next REQUEST record, when its request is plain
            skip = None   # the stream of the next REQUEST record, answered already
            for i in range(0, 4 * count, 4):
                kind = records[i]
                kind_only = kind & 0xff
                if kind_only == _H2_DATA:
                    start = records[i + 2]
                    events.append((DATA, records[i + 1], bytes(view[start:start + records[i + 3]])))
                elif kind_only == _H2_PLAIN:
                    if blob is None:
                        blob = shared.arena_buffer[0:batch.arena_used]
                    start = records[i + 2]
                    key = blob[start:start + records[i + 3]]
                    if ready is not None:
                        answer = ready.get(key)
                        if answer is not None and _answer(conn, records[i + 1], answer) == 0:
                            self.answered += 1
                            skip = records[i + 1]
                            if kept is not None:
                                kept.append((skip, key))
                elif kind_only == _H2_REQUEST:
                    stream_id = records[i + 1]
                    if stream_id == skip:
                        key = skip = None
                        continue
                    if blob is None:
                        blob = shared.arena_buffer[0:batch.arena_used]
                    start = records[i + 2]
                    parts = blob[start:start + records[i + 3] - 1].split(b"\0") \
                        if records[i + 3] else []
                    events.append((REQUEST, stream_id, kind >> 8, parts, key))
                    key = None
                elif kind_only == _H2_END:
                    events.append((END, records[i + 1]))
                elif kind_only == _H2_CLOSE:
                    events.append((CLOSE, records[i + 1], records[i + 2], records[i + 3]))
                    if closed is None:
                        closed = set()
                    closed.add(records[i + 1])
                elif kind_only == _H2_PARTIAL:
                    start = records[i + 2]
                    self.carry = bytes(shared.arena_buffer[start:start + records[i + 3]])
                elif kind_only == _H2_PAUSED:
                    resume = records[i + 2]
                    later = records[i + 3]
            if later:   # the requests of one turn are taken: the rest waits for the next
                # Copied out of the shared receive buffer once; a rest's rest is a view of it.
                rest = view[resume:]
                self.rest = rest if view.obj.__class__ is bytes else bytes(rest)
            if resume is None or later:
                return events if closed is None else without_closed(events, closed)
            view = view[resume:]

    @property
    def failure(self):
        """(reason, GOAWAY code) once the connection was ended for the peer's doing, else None."""
        reason = self.conn.reason
        if not reason:
            return None
        return _REASONS.get(reason, "protocol"), self.conn.goaway_code

    def counts(self) -> dict:
        """What the guards saw on this connection (for the metrics)."""
        counts = self.conn.counts
        return {name: counts[i] for i, name in enumerate(_COUNTERS) if counts[i]}

    def memory(self) -> int:
        """Bytes libnghttp2 holds for this session now (counted by the shim's allocator)."""
        return self.conn.memory

    def answer(self, stream_id: int, ready) -> bool:
        """Answer the stream with a kept answer (see `ready`); False when it is gone."""
        return _answer(self.conn, stream_id, ready) == 0

    def record_answers(self):
        """Each request answered from kept answers is listed in `kept`, and its stream's close
        reported with the body bytes sent (for the access log and metrics)."""
        self.conn.lane_records = 1
        self.kept = []

    def answering(self) -> int:
        """Streams answered from kept answers and not yet closed."""
        return self.conn.lane_open

    def consume(self, stream_id: int, count: int):
        lib.h2_consume(self.conn, stream_id, count)

    # -- sending -------------------------------------------------------------------------------

    def respond(self, stream_id: int, status: int, fields: bytes, extra: bytes, length,
                piece, last: bool, sendfile: bool):
        """Submit a response: HEADERS from `fields` (HTTP/1-style lines), then `piece` (None:
        no body at all; else a Piece) and, unless `last`, what `supply` gives when `send`
        reports the stream starved. A Refusal when the stream is gone."""
        conn = self.conn
        length = -1 if length is None else length
        if piece is None:
            if _respond(conn, stream_id, status, fields, len(fields), extra, len(extra), length,
                        ffi.NULL) != 0:
                raise Refusal(stream_id)
            return
        pool = self.shared.bodies
        body = pool.pop() if pool else ffi.new("struct h2_body *")
        kept = self.bodies[stream_id] = [body, None, sendfile]
        self._supply(stream_id, kept, piece, last)
        if _respond(conn, stream_id, status, fields, len(fields), extra, len(extra), length,
                    body) != 0:
            self.forget(stream_id)
            raise Refusal(stream_id)

    def supply(self, stream_id: int, piece, last: bool):
        kept = self.bodies.get(stream_id)
        if kept is not None:
            self._supply(stream_id, kept, piece, last)

    def _supply(self, stream_id, kept, piece, last):
        """kept: [the h2_body, what it points into (alive until the next piece), sendfile]."""
        if piece.fd < 0:
            data = piece.data
            kept[1] = pointer = _from_buffer(data) if data else ffi.NULL
            _supply(self.conn, stream_id, kept[0], pointer, -1, 0, len(data), last, 0)
        else:
            kept[1] = None
            _supply(self.conn, stream_id, kept[0], ffi.NULL, piece.fd, piece.offset,
                    piece.count, last, kept[2] and piece.count >= limits.H2_SENDFILE_MIN)

    def sent(self, stream_id: int) -> int:
        """Body bytes framed for the stream so far."""
        kept = self.bodies.get(stream_id)
        return kept[0].sent if kept is not None else lib.h2_answer_sent(self.conn, stream_id)

    def forget(self, stream_id: int) -> int:
        """The stream closed and its output is written: drop what the shim pointed into, and
        keep its h2_body for another response. Returns the body bytes framed."""
        kept = self.bodies.pop(stream_id, None)
        if kept is None:
            return 0
        body = kept[0]
        pool = self.shared.bodies
        if len(pool) < BODY_POOL:
            pool.append(body)
        return body.sent

    def send(self, budget: int):
        """(segments, closed, starved): what to write, in order (memoryviews of the shared
        output, valid until the next call, and (fd, offset, count) file pieces); the streams
        that closed, as (stream id, error code, body bytes sent of a kept answer, else 0); the
        streams whose body needs its next piece."""
        shared = self.shared
        count = _send(self.conn, shared.batch, budget)
        if count <= 0:
            return (), (), ()
        records = _unpack(shared.records, 4 * count)
        out = shared.out_view
        segments = []
        closed = []
        starved = []
        for i in range(0, 4 * count, 4):
            kind = records[i]
            if kind == _H2_BYTES:
                start = records[i + 2]
                segments.append(out[start:start + records[i + 3]])
            elif kind == _H2_FILE:
                segments.append((records[i + 1], records[i + 2], records[i + 3]))
            elif kind == _H2_CLOSE:
                closed.append((records[i + 1], records[i + 2], records[i + 3]))
            elif kind == _H2_STARVED:
                starved.append(records[i + 1])
        return segments, closed, starved

    def reset(self, stream_id: int, code: int):
        lib.h2_reset(self.conn, stream_id, code)

    def shutdown(self, final: bool):
        lib.h2_shutdown(self.conn, 1 if final else 0)

    def terminate(self, code: int):
        lib.h2_terminate(self.conn, code)

    def want_read(self) -> bool:
        return bool(lib.h2_want_read(self.conn))

    def want_write(self) -> bool:
        return bool(lib.h2_want_write(self.conn))

    def close(self):
        # Freed now, not when the collector gets to it: its streams held bodies of the pool.
        lib.h2_close(self.conn)
        self.bodies.clear()


def new_shared() -> Shared:
    return Shared()


def ready(status: int, fields: bytes, extra: bytes, length, body):
    """A kept answer, as `respond` would submit it with `body` (bytes) as its only piece, or
    with none when `body` is None; None where the shim cannot keep it."""
    made = lib.h2_ready_new(status, fields, len(fields), extra, len(extra),
                            -1 if length is None else length,
                            ffi.NULL if body is None else body,
                            -1 if body is None else len(body))
    return None if made == ffi.NULL else ffi.gc(made, lib.h2_ready_release)


__all__ = ["NAME", "Piece", "Session", "new_shared", "ready"]
