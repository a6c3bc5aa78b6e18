"""What a handler returns, and how its head becomes bytes on the wire.

Imports nothing that does I/O. The connection decides framing (keep-alive, HEAD, streaming);
this module only renders what it is told, with a per-second cache so the hot path renders a
cached file's head once per second rather than once per request.
"""

import os
import time
from email.utils import formatdate
from http import HTTPStatus

from .._version import __version__

SERVER = f"reactor/{__version__}".encode()

REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, phrase) for code, phrase in REASONS.items()}

# Bodies below this size go out in one buffer with their head: one send, and for a shared
# (cached) Response the joined bytes are kept, so a hot file costs no copy per request.
# Larger bodies follow their head without being copied.
INLINE_BODY = 16 * 1024

# Statuses whose responses never carry content (RFC 9110 §6.4.1, §15.3.5, §15.4.5).
NO_CONTENT = frozenset({100, 101, 102, 103, 204, 304})

# Header fields the server owns (framing, connection management, Date/Server): an
# application's values would contradict the ones the server writes, so adapters drop them.
SERVER_OWNED = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"date", b"server", b"content-length",
})


class FileSlice:
    """`count` bytes of an open file from `offset`: sent with sendfile, never read into memory.

    The connection calls close() when the slice is sent or abandoned. `release` decides what
    that means (the default closes the descriptor; a file cache can share one instead).
    """

    __slots__ = ("fd", "offset", "count", "release")

    def __init__(self, fd: int, offset: int, count: int, release=os.close):
        self.fd = fd
        self.offset = offset
        self.count = count
        self.release = release

    def close(self):
        release, self.release = self.release, None
        if release is not None:
            release(self.fd)


class KeptFile:
    """A whole file whose descriptor a cache keeps open, as the body of an answer that is
    given again and again (the fast lane's): `count` bytes; `open()` gives a FileSlice of
    them to send, or None when the file is no longer the version the answer describes."""

    __slots__ = ("count", "open")

    def __init__(self, count: int, open):
        self.count = count
        self.open = open


def render_fields(headers) -> bytes:
    """(name, value) pairs as `Name: value\r\n` lines (bytes are taken as rendered already)."""
    if isinstance(headers, bytes):
        return headers
    return _rendered(headers, ())[0]


# An application sends the same few header lists over and over: each is rendered once, and
# found again by its pairs (a tuple of short bytes hashes for a fifth of what rendering costs).
# Cleared when full, so varying values (a Content-Length per size) cannot grow it without end.
_APP_FIELDS = {}
MAX_APP_FIELDS = 256


def render_app_fields(headers) -> tuple:
    """An application's (name, value) pairs rendered as render_fields does, less the fields
    the server owns (SERVER_OWNED), and the Content-Length it gave (an int) or None."""
    pairs = tuple(headers)
    try:
        rendered = _APP_FIELDS.get(pairs)
    except TypeError:   # pairs that are lists, or values that are bytearrays
        return _rendered(pairs, SERVER_OWNED)
    if rendered is None:
        rendered = _rendered(pairs, SERVER_OWNED)
        if len(_APP_FIELDS) >= MAX_APP_FIELDS:
            _APP_FIELDS.clear()
        _APP_FIELDS[pairs] = rendered
    return rendered


def _rendered(headers, owned) -> tuple:
    lines = []
    length = None
    for name, value in headers:
        if name.__class__ is not bytes:   # str, or another bytes-like (a bytearray)
            name = name.encode("latin-1") if isinstance(name, str) else bytes(name)
        if owned:
            lower = name.lower()
            if lower in owned:
                if lower == b"content-length":
                    length = int(value)
                continue
        value = value.encode("latin-1") if isinstance(value, str) else value
        # find(), not `in`: bytes.__contains__ first tries its operand as an integer, and
        # the TypeError it makes and drops each time costs more than the search.
        if name.find(b":") >= 0:
            raise ValueError(f"header {name!r} would split the response head")
        lines.append(b"%s: %s\r\n" % (name, value))
    block = b"".join(lines)
    # Each line brought one CR and one LF: any other is inside a name or a value.
    if block.count(b"\n") != len(lines) or block.count(b"\r") != len(lines):
        for line in lines:
            if line.count(b"\n") != 1 or line.count(b"\r") != 1:
                raise ValueError(f"header {line[:-2]!r} would split the response head")
    return block, length


def body_length(body):
    """Bytes in `body`, or None for an iterable whose length is unknown until it ends."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body)
    if isinstance(body, (FileSlice, KeptFile)):
        return body.count
    if isinstance(body, (list, tuple)):
        return sum(body_length(part) for part in body)
    return None


class Response:
    """A status, header fields and a body.

    headers: (name, value) pairs of str or bytes, or a pre-rendered bytes block of
    `Name: value\\r\\n` lines. Content-Length, Transfer-Encoding, Connection, Date and Server
    are added by the server and must not be given.
    body: bytes; a FileSlice; a list or tuple of bytes and FileSlices (sent in order, length
    known); or any other iterable of bytes (streamed: chunked for HTTP/1.1, close-delimited
    for HTTP/1.0).
    """

    __slots__ = ("status", "fields", "body", "length", "_head_cache")

    def __init__(self, status: int = 200, headers=(), body=b""):
        self.status = status
        self.fields = render_fields(headers)
        if status in NO_CONTENT:
            if isinstance(body, FileSlice):
                body.close()
            body = b""
        self.body = body
        self.length = body_length(body)
        self._head_cache = None

    def with_body(self, body) -> "Response":
        """The same status and fields with another body (a cached head, a fresh file slice)."""
        clone = self.__class__.__new__(self.__class__)
        clone.status = self.status
        clone.fields = self.fields
        clone.body = body
        clone.length = body_length(body)
        clone._head_cache = None
        return clone

    def with_fields(self, fields: bytes) -> "Response":
        """The same response with rendered `Name: value\r\n` lines added to its fields."""
        clone = self.with_body(self.body)
        clone.fields = self.fields + fields
        return clone

    def __repr__(self):
        return f"Response({self.status}, length={self.length})"


class Deferred:
    """An answer (a Response, or a streamed body's next bytes) that a handler gives later, on
    the loop's own thread: unlike a concurrent.futures.Future it needs no lock and no
    wake-up, as the callback runs at once, inside resolve() or fail()."""

    __slots__ = ("value", "error", "done", "callback")

    def __init__(self):
        self.value = self.error = self.callback = None
        self.done = False

    def add_done_callback(self, callback):
        """callback(self) once resolved: now, if it is already."""
        self.callback = callback
        if self.done:
            callback(self)

    def result(self):
        if self.error is not None:
            raise self.error
        return self.value

    def resolve(self, value):
        self._settle(value, None)

    def fail(self, error):
        self._settle(None, error)

    def _settle(self, value, error):
        if self.done:
            return
        self.value, self.error, self.done = value, error, True
        if self.callback is not None:
            self.callback(self)


class Upgrade(Response):
    """101 Switching Protocols: once its head is written the connection carries another
    protocol, `tunnel`'s (a WebSocket). The fields must say `Connection: Upgrade` and
    `Upgrade: ...` themselves.

    The connection calls tunnel.attach(channel) after the head, then tunnel.received(bytes)
    for what arrives, tunnel.writable() when what it wrote has gone out, tunnel.drain() when
    the server shuts down, and tunnel.lost() once the connection is closed. The channel
    offers write(bytes), backlog (bytes not yet written), end() (close once written),
    close(), pause_reading() and resume_reading().
    """

    __slots__ = ("tunnel",)

    def __init__(self, headers, tunnel):
        super().__init__(101, headers)
        self.tunnel = tunnel

    def with_body(self, body) -> "Upgrade":
        clone = super().with_body(body)
        clone.tunnel = self.tunnel
        return clone


_date_stamp = 0
_date_fields = b""


def date_and_server() -> tuple:
    """(stamp, rendered `Date` and `Server` lines), formatted at most once a second."""
    global _date_stamp, _date_fields
    now = int(time.time())
    if now != _date_stamp:
        _date_fields = b"Date: %s\r\nServer: %s\r\n" % (formatdate(now, usegmt=True).encode(), SERVER)
        _date_stamp = now
    return _date_stamp, _date_fields


def render_head(response: Response, version: int, keep_alive: bool) -> bytes:
    """The full response head. A body of unknown length is chunked on HTTP/1.1; on HTTP/1.0
    the caller must close after it (keep_alive False), as the end of the body is the close."""
    stamp, date_fields = date_and_server()
    cache = response._head_cache
    if cache is not None and cache[0] == stamp and cache[1] == version and cache[2] == keep_alive:
        return cache[3]
    status = response.status
    if status in NO_CONTENT:
        framing = b""
    elif response.length is not None:
        framing = b"Content-Length: %d\r\n" % response.length
    elif version >= 11:
        framing = b"Transfer-Encoding: chunked\r\n"
    else:
        framing = b""
    if status == 101:
        connection = b""   # the fields say Connection: Upgrade; the connection goes on
    elif not keep_alive:
        connection = b"Connection: close\r\n"
    elif version < 11:
        connection = b"Connection: keep-alive\r\n"
    else:
        connection = b""
    status_line = STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status
    head = b"".join((status_line, date_fields, response.fields, framing, connection, b"\r\n"))
    response._head_cache = (stamp, version, keep_alive, head, None)
    return head


def render_message(response: Response, version: int, keep_alive: bool) -> bytes:
    """Head and bytes body in one buffer, cached beside the head (bodies < INLINE_BODY)."""
    head = render_head(response, version, keep_alive)
    cache = response._head_cache
    message = cache[4]
    if message is None:
        message = head + response.body
        response._head_cache = (cache[0], cache[1], cache[2], head, message)
    return message


def error_response(status: int, message: str = "", headers=()) -> Response:
    """A short plain-text response for an error status."""
    phrase = REASONS.get(status, b"Error").decode()
    text = f"{status} {phrase}: {message}\n" if message else f"{status} {phrase}\n"
    body = text.encode("utf-8", "replace")
    return Response(status, [("Content-Type", "text/plain; charset=utf-8"), *headers], body)
