"""HTTP/2 without I/O: the engine the server uses, and what both engines share.

The engine is libnghttp2 through the shim (reactor.http._h2native) when the extension was
built, else the pure-Python `h2` package (reactor.http._h2python, `pip install
'reactor[http2]'`), else none: the server then speaks HTTP/1.1 only and says so once at start.
REACTOR_NO_EXTENSIONS=1 skips the extension, as it does for the parser. ENGINE names the one in
use (or is None); `engine(name)` gives a module by name, so that tests run both.

An engine module offers `NAME`, `new_shared()` (buffers shared by a loop's connections) and
`Session(shared)`, one per connection:

- `receive(data, now, ready)` -> events, in order: (REQUEST, stream, flags, parts, key) with
  `parts` the flat [name, value, ...] list of the header block, pseudo-fields first (flags:
  END_STREAM, TOO_LARGE, COOKIES), `key` the fast lane's key of a plain request (else None);
  (DATA, stream, bytes); (END, stream); (CLOSE, stream, error code, sent) with `sent` the body
  bytes of a kept answer (below), else 0. `failure` is then (reason, GOAWAY code) if the peer
  made the connection end; `rest` what of `data` is left for a later turn (bytes; see
  limits.H2_REQUESTS_PER_TURN), to be given to `receive` before anything read after it.
- The fast lane, where the engine has one (the module's `ready`, else None): `ready(status,
  fields, extra, length, body)` keeps an answer as `respond` would submit it with `body` as
  its only piece (None: no body); a plain request whose key `receive`'s `ready` mapping holds
  is answered from it there, with no event, and counted in `answered`; `answer(stream, kept)`
  answers one stream so; `answering()` counts such streams still open; after
  `record_answers()`, `kept` lists (stream, key) of each stream `receive` answered, and their
  closes are reported too. A request is plain by
  the HTTP/1.1 lane's rules (csrc/h2.h), and its key has the form of an HTTP/1.1 keep-alive
  request's (reactor.http.request.plain_key).
- `respond(stream, status, fields, extra, length, piece, last, sendfile)`, `supply(stream,
  piece, last)`: a response, its body in Pieces; `sent(stream)` body bytes framed so far.
- `send(budget)` -> (segments, closed, starved): bytes-like runs and (fd, offset, count) file
  pieces to write in order; the streams that closed (stream, error code, sent, as CLOSE's);
  those whose body wants its next piece.
- `consume`, `reset`, `shutdown(final)`, `terminate(code)`, `want_read()`, `want_write()`,
  `forget(stream)`, `counts()`, `memory()` (bytes the engine's library holds for the session,
  0 where it cannot tell), `close()`.

Also here: turning a header block into the Request every handler already takes, and the framing
of a response. Imports only request, response and errors.
"""

import importlib
import os

from .errors import HTTPError
from .request import Request
from .response import NO_CONTENT

# The client connection preface (RFC 9113 §3.4); a plain-port client with prior knowledge
# starts with it, and no HTTP/1 request line can ("PRI" with version 2.0 is refused there).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Event kinds.
REQUEST, DATA, END, CLOSE = 1, 2, 3, 4

# Flags of a REQUEST event (the same bits as csrc/h2.h): flags >> PSEUDO_SHIFT is the number of
# pseudo-fields that lead the block.
END_STREAM, TOO_LARGE, COOKIES, HOST = 1, 2, 4, 8
PSEUDO_SHIFT = 4

# Error codes (RFC 9113 §7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xb

# Request.version of an HTTP/2 request: what the access log writes as HTTP/2.0.
VERSION = 20

ENGINES = {"nghttp2": "reactor.http._h2native", "h2": "reactor.http._h2python"}


class Piece:
    """Part of a response body: bytes in memory, or `count` bytes of file `fd` at `offset`."""

    __slots__ = ("data", "fd", "offset", "count")

    def __init__(self, data=b"", fd=-1, offset=0, count=0):
        self.data = data
        self.fd = fd
        self.offset = offset
        self.count = count if fd >= 0 else len(data)


class Refusal(Exception):
    """A response for a stream the engine no longer has (the client reset it)."""


def without_closed(events: list, closed: set) -> list:
    """The events of one read less the REQUEST and END events of the streams in `closed`,
    which ended within the same read: the client reset them before any handler could see
    them, so there is nothing to answer (a rapid reset costs no handler). Their DATA stay,
    as the window their bytes took must be given back."""
    return [event for event in events
            if event[0] == CLOSE or event[0] == DATA or event[1] not in closed]


def engine(name: str):
    """The engine module called `name` ("nghttp2" or "h2"); ImportError where it is missing."""
    return importlib.import_module(ENGINES[name])


def _choose():
    """(module, None) for the engine to use, or (None, why there is none)."""
    reasons = []
    if os.environ.get("REACTOR_NO_EXTENSIONS") == "1":
        reasons.append("REACTOR_NO_EXTENSIONS=1 is set")
    else:
        try:
            return engine("nghttp2"), None
        except ImportError:
            reasons.append("the libnghttp2 extension is not built")
    try:
        return engine("h2"), None
    except ImportError:
        reasons.append("the h2 package is not installed")
    return None, " and ".join(reasons)


DEFAULT, WHY_NOT = _choose()
ENGINE = DEFAULT.NAME if DEFAULT is not None else None


def framing(response, head: bool) -> tuple:
    """(the content-length field's value or None, whether the HEADERS frame ends the stream)
    of `response` to a GET, or to a HEAD when `head`: the full path's and the fast lane's."""
    if response.status in NO_CONTENT:
        return None, True
    length = response.length
    return length, head or length == 0


def build_request(parts: list, flags: int):
    """The Request of a header block, or the HTTPError to answer it with.

    The engines checked what RFC 9113 §8.3 makes malformed (pseudo-fields, their order,
    connection-specific fields, `te`); left here: the list limit (431), a Host other than
    :authority (§8.3.1: 400), and the shape a handler expects: `host` from :authority, one
    `cookie` (§8.2.3), the content length as a number."""
    if flags & TOO_LARGE:
        return HTTPError(431, "request header list too large")
    method = path = authority = None
    pseudo = 2 * (flags >> PSEUDO_SHIFT)
    for i in range(0, pseudo, 2):
        name = parts[i]
        if name == b":method":
            method = parts[i + 1]
        elif name == b":path":
            path = parts[i + 1]
        elif name == b":authority":
            authority = parts[i + 1]
    fields = parts[pseudo:] if pseudo else parts
    if method is None:
        return HTTPError(400, "no :method")
    if authority is not None:
        if not flags & HOST:
            fields.append(b"host")
            fields.append(authority)
        elif fields[fields.index(b"host") + 1] != authority:
            return HTTPError(400, "Host and :authority differ")
    content_length = None
    if not flags & END_STREAM:
        for j in range(0, len(fields), 2):
            if fields[j] == b"content-length":
                content_length = int(fields[j + 1])
                break
    if flags & COOKIES:
        fields = _join_cookies(fields)
    target = path if path is not None else authority or b""
    return Request(method.decode("latin-1"), target.decode("latin-1"), VERSION, fields,
                   content_length, False, True, False)


def _join_cookies(fields: list) -> list:
    """One `cookie` field of every cookie field's value, joined with "; " (RFC 9113 §8.2.3)."""
    joined = []
    cookies = []
    for j in range(0, len(fields), 2):
        if fields[j] == b"cookie":
            cookies.append(fields[j + 1])
        else:
            joined += fields[j:j + 2]
    return joined + [b"cookie", b"; ".join(cookies)]
