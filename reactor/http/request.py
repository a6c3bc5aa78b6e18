"""The request as both parser backends hand it to the server.

Pure data with a few lookups; imports nothing from the rest of reactor. Both backends must
build it with exactly the same values: the differential tests compare instances field by field.

Also the fast lane's description of a plain request (see RequestParser.scan_plain): its key,
the raw target; one byte, 1 + the PLAIN_* bits that select the answer besides the target; the
Accept-Encoding value when PLAIN_ACCEPT_ENCODING is set. A target holds no byte below 0x21 and
a value no NUL, so a key is unambiguous.
"""

import re

PLAIN_HEAD = 1
PLAIN_HTTP11 = 2
PLAIN_KEEP_ALIVE = 4
PLAIN_ACCEPT_ENCODING = 8
_PLAIN_BITS = re.compile(rb"[\x01-\x10]")

# What a plain scan asked for the log's fields reports for a field the request does not have
# (csrc's HP_ABSENT): a control byte, which no field value holds.
ABSENT_FIELD = b"\x01"

# Fields whose presence makes an answer depend on more than the target (RFC 9110 §13, §14.2):
# a request carrying one is never plain.
PRECONDITION_FIELDS = frozenset((b"if-match", b"if-none-match", b"if-modified-since",
                                 b"if-unmodified-since", b"range", b"if-range"))


def plain_key(target: bytes, head: bool, http11: bool, keep_alive: bool, accept) -> bytes:
    """The key of a plain request; `accept` is its Accept-Encoding value, None without one."""
    bits = ((PLAIN_HEAD if head else 0) | (PLAIN_HTTP11 if http11 else 0)
            | (PLAIN_KEEP_ALIVE if keep_alive else 0)
            | (PLAIN_ACCEPT_ENCODING if accept is not None else 0))
    return target + bytes((1 + bits,)) + (accept or b"")


def closing_key(key: bytes) -> bytes:
    """The key of the same plain request had it asked to close the connection: its answer is
    the one a server that closes after answering sends."""
    at = _PLAIN_BITS.search(key).start()
    return key[:at] + bytes((1 + ((key[at] - 1) & ~PLAIN_KEEP_ALIVE),)) + key[at + 1:]


def split_plain_key(key: bytes) -> tuple:
    """(target, head, version, keep_alive, accept): what plain_key was given."""
    at = _PLAIN_BITS.search(key).start()
    bits = key[at] - 1
    return (key[:at], bool(bits & PLAIN_HEAD), 11 if bits & PLAIN_HTTP11 else 10,
            bool(bits & PLAIN_KEEP_ALIVE),
            key[at + 1:] if bits & PLAIN_ACCEPT_ENCODING else None)

# body, client, scheme and stream of a request as the parser hands it over: the protocol and
# the connection fill them in. The parsers make their Requests with object.__new__ and set
# every slot themselves: running __init__ is a third of a small request's parse.
UNFILLED = (b"", None, "http", None)


class Request:
    """One parsed request head (plus its body once the protocol has read it).

    - method: str, the method token as sent (case-sensitive, e.g. "GET").
    - target: str, the request-target decoded as latin-1, so every byte maps to one character.
    - version: int, 10 for HTTP/1.0, 11 for HTTP/1.1 (and any higher 1.x minor).
    - fields: flat list [name0, value0, name1, value1, ...]; names are lower-cased bytes,
      values are bytes with surrounding spaces/tabs removed, in the order received. Flat
      because the server's own path only scans it; `headers` builds pairs for those who want them.
    - content_length: int, or None when the request has no Content-Length.
    - chunked: bool, Transfer-Encoding is chunked (then content_length is None).
    - keep_alive: bool, the client allows the connection to persist (RFC 9112 §9.3).
    - expect_continue: bool, the client sent `Expect: 100-continue`.
    - body: bytes, filled in by the protocol before the handler runs.
    - client: (host, port) of the client, filled in by the connection: the peer's, or the
      one a trusted proxy named (PROXY protocol, forwarding fields).
    - scheme: "http" or "https" as the client sees it (the same sources may say https).
    - stream: for handlers that read bodies as they arrive, the BodyStream (protocol.py)
      the body is delivered into instead of `body`; else None.
    """

    __slots__ = ("method", "target", "version", "fields", "content_length", "chunked",
                 "keep_alive", "expect_continue", "body", "client", "scheme", "stream")

    def __init__(self, method, target, version, fields, content_length, chunked,
                 keep_alive, expect_continue):
        self.method = method
        self.target = target
        self.version = version
        self.fields = fields
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.body, self.client, self.scheme, self.stream = UNFILLED

    def header(self, name: bytes, default=None):
        """The first value of the field `name` (lower-case bytes), or `default`."""
        fields = self.fields
        for i in range(0, len(fields), 2):
            if fields[i] == name:
                return fields[i + 1]
        return default

    def header_values(self, name: bytes) -> list:
        """Every value of the field `name`, in order (for fields sent on several lines)."""
        fields = self.fields
        return [fields[i + 1] for i in range(0, len(fields), 2) if fields[i] == name]

    @property
    def headers(self) -> list:
        """All fields as (name, value) pairs."""
        pairs = iter(self.fields)
        return list(zip(pairs, pairs))   # one iterator twice: pairs without slicing copies

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    @property
    def path(self) -> str:
        """The target up to `?`, still percent-encoded."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The target after `?`, still percent-encoded ('' when there is none)."""
        return self.target.partition("?")[2]

    def __eq__(self, other):
        if not isinstance(other, Request):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self):
        return (f"Request({self.method} {self.target} HTTP/1.{self.version - 10}, "
                f"{len(self.fields) // 2} fields)")
