"""The C request parser and chunked decoder (csrc/httpparse.c) behind the Python API.

The only module that calls the parser in reactor._native. One C call parses every pipelined
head in the buffer; C writes method, target and lower-cased names/values NUL-separated into a
buffer owned by the parser, so Python makes its objects with one bytes.split, and gives the
common methods by number, so one table lookup makes method, version and framing flags. A small
request's parse is mostly fixed cost, which is why parse() reads the batch's numbers with one
struct read and makes its Requests without running __init__. Imports reactor.http.errors,
reactor.http.request and reactor.http.limits; never reactor.http._pyparser.
"""

import struct

from .._native import ffi, lib
from . import limits
from .errors import ParseError
from .request import UNFILLED, Request

MAX_CHUNK_LINE = lib.HP_MAX_CHUNK_LINE

_REASONS = {
    400: "malformed request head",
    414: "request line too long",
    417: "unsupported expectation",
    431: "request head too large or too many header fields",
    501: "unsupported transfer coding",
    505: "HTTP version not supported",
}
# A request's flags slot (flags + HP_METHOD_UNIT * method number) -> (method, version,
# chunked, keep_alive, expect_continue); the method is None for one C does not number.
_HEADS = tuple((method, 11 if f & lib.HP_HTTP11 else 10, bool(f & lib.HP_CHUNKED),
                bool(f & lib.HP_KEEP_ALIVE), bool(f & lib.HP_EXPECT_CONTINUE))
               for method in (None, *ffi.string(lib.hp_methods).decode().split())
               for f in range(lib.HP_METHOD_UNIT))
_PIPELINE = 64        # requests per C call; more just take another call
_unpack = ffi.unpack
_from_buffer = ffi.from_buffer
_bare = object.__new__   # see request.UNFILLED
_parse_batch = lib.hp_parse_batch
_scan_plain = lib.hp_scan_plain
_NO_PLAIN = ((), 0, None)
# All a batch's numbers in one struct read (one per request count): cheaper than 3 + 3n
# memoryview indexings.
_READ_META = tuple(struct.Struct(f"{3 + 3 * n}q").unpack_from for n in range(_PIPELINE + 1))


class RequestParser:
    """Parses every complete request head in a buffer. Not thread-safe: the output buffers are
    reused across calls (the server parses on its loop thread only)."""

    __slots__ = ("max_request_line", "max_head", "max_headers", "_batch", "_scan_batch", "_meta",
                 "_out", "_keep", "_scanned", "_scanned_c", "_meta_bytes", "_out_bytes")

    def __init__(self, max_request_line=limits.MAX_REQUEST_LINE, max_head=limits.MAX_HEAD,
                 max_headers=limits.MAX_HEADERS):
        self.max_request_line = max_request_line
        self.max_head = max_head
        self.max_headers = max_headers
        fields = ffi.new("struct hp_field[]", max_headers)
        meta = ffi.new("int64_t[]", 3 + 3 * _PIPELINE)
        out_cap = max(max_head, limits.RECV_SIZE)
        self._out = ffi.new("char[]", out_cap)
        self._batch = ffi.new("struct hp_batch *", {
            "limits": (max_request_line, max_head, max_headers),
            "fields": fields, "fields_cap": max_headers,
            "meta": meta, "meta_cap": 3 + 3 * _PIPELINE,
            "out": self._out, "out_cap": out_cap})
        self._scan_batch = ffi.new("struct hp_batch *", {
            "limits": (max_request_line, max_head, max_headers),
            "fields": fields, "fields_cap": max_headers,
            "meta": meta, "meta_cap": 3 + limits.MAX_PLAIN_BATCH,
            "out": self._out, "out_cap": out_cap})
        # Indexing a memoryview is several times cheaper than indexing the cdata array.
        self._meta = memoryview(ffi.buffer(meta)).cast("q")
        self._meta_bytes = ffi.buffer(meta)
        self._out_bytes = ffi.buffer(self._out)
        self._keep = (fields, meta)   # the batch structs point into them
        # The buffer scan_plain saw last and its cdata view: the server scans one receive
        # buffer over and over, and making the view is a good part of a small call's cost.
        self._scanned = self._scanned_c = None

    def parse(self, buf, start=0):
        length = len(buf)
        if type(buf) is not bytes:
            buf = _from_buffer(buf)
        requests = []
        while True:
            count = _parse_batch(self._batch, buf, length, start)
            meta = _READ_META[count](self._meta_bytes)
            if count:
                parts = self._out_bytes[:meta[2] - 1].split(b"\0")
                k = 0
                i = 3
                stop = 3 + 3 * count
                while i < stop:   # not for-range: building the range is most of a 1-request loop
                    request = _bare(Request)
                    (request.method, request.version, request.chunked, request.keep_alive,
                     request.expect_continue) = _HEADS[meta[i + 1]]
                    if request.method is None:
                        request.method = parts[k].decode("ascii")
                    request.target = parts[k + 1].decode("latin-1")
                    end = k + 2 + 2 * meta[i]
                    request.fields = parts[k + 2:end]
                    content_length = meta[i + 2]
                    request.content_length = None if content_length < 0 else content_length
                    request.body, request.client, request.scheme, request.stream = UNFILLED
                    requests.append(request)
                    k = end
                    i += 3
            status = meta[0]
            start = meta[1]
            if status != -1:
                break
        return requests, start, ParseError(status, _REASONS[status]) if status else None

    def scan_plain(self, buf, length, logged=False):
        """(keys, end, fields) for the plain requests at the start of buf[:length]: complete,
        valid heads of GET or HEAD with no body and no precondition or Range field, stopping
        after one that does not keep the connection alive and after MAX_PLAIN_BATCH. `keys`
        are reactor.http.request plain keys and `end` the offset past the last of them;
        anything else (errors included) is left for parse(). With `logged`, `fields` is a
        list where the Referer and User-Agent values of request i (ABSENT_FIELD for a field it
        does not have) are at 3i + 1 and 3i + 2; else None."""
        if buf is not self._scanned:
            self._scanned_c = buf if type(buf) is bytes else _from_buffer(buf)
            self._scanned = buf
        count = _scan_plain(self._scan_batch, self._scanned_c, length, 0, logged)
        if not count:
            return _NO_PLAIN
        meta = self._meta
        parts = self._out_bytes[:meta[2] - 1].split(b"\0")
        if logged:
            return parts[::3], meta[1], parts
        return parts, meta[1], None

    def plain_start(self, index: int) -> int:
        """Where the head of key `index` of the last scan_plain begins."""
        return self._meta[3 + index]


class ChunkedDecoder:
    """Decodes one chunked body incrementally; every byte it is given is consumed until done."""

    __slots__ = ("max_trailers", "_state", "_out", "_out_len")

    def __init__(self, max_trailers=limits.MAX_TRAILERS):
        self.max_trailers = max_trailers
        self._state = ffi.new("struct hp_chunked *", {"max_trailers": max_trailers})
        self._out = None
        self._out_len = ffi.new("size_t *")

    def decode(self, buf, start=0):
        n = len(buf)
        if start >= n or lib.hp_chunked_done(self._state):
            return b"", 0, bool(lib.hp_chunked_done(self._state))
        step = min(n - start, limits.RECV_SIZE)
        if self._out is None or len(self._out) < step:
            self._out = ffi.new("char[]", step)
        pieces = []
        pos = start
        # Released on the way out: a raise keeps this frame alive in the traceback, and a
        # buffer still exported when the garbage collector clears the caller's memoryview
        # crashes the interpreter.
        with _from_buffer(buf) as cbuf:
            while pos < n and not lib.hp_chunked_done(self._state):
                take = min(n - pos, step)
                used = lib.hp_decode_chunked(self._state, cbuf + pos, take, self._out,
                                             self._out_len)
                if used < 0:
                    raise ParseError(400, "malformed chunked body")
                if self._out_len[0]:
                    pieces.append(_unpack(self._out, self._out_len[0]))
                pos += used
        return b"".join(pieces), pos - start, bool(lib.hp_chunked_done(self._state))
