"""The fast lane: plain requests answered from ready messages, without Request objects.

A plain request (see RequestParser.scan_plain) is a GET or HEAD with no body and no
precondition or Range field, so its answer can depend only on its target, method, version,
keep-alive and Accept-Encoding: exactly what its key holds. When the handler says that the
answer for a target and Accept-Encoding depends on nothing else (`handler.ready`), the whole
message for each key, as the full path would write it (protocol.plain_message), is kept here,
shared by every connection, until the second of its Date header ends or the handler's trust in
the answer runs out, whichever comes first. For a file sent from disk (a KeptFile body) what
is kept is (its head, the KeptFile's open, whether the request is a HEAD): each answer opens
its body anew, which checks the file.
A connection then answers a read of plain requests with one scan, one lookup per request and
one send; anything else takes the full path.

HTTP/2 has a table of its own (`h2`), filled from the same ready answers: per key of a plain
request (the HTTP/2 engine finds them, by the same rules, see reactor.http.h2), the engine's
kept answer, which is what the full path would submit for it (status, fields, Date and Server,
content-length, the body). Only answers with their body in memory are kept there; the engine
answers a plain request whose key it finds without a Request, a handler or a stream object.

Either is a shortcut through the same layers, not a second server: the answers are byte for
byte the full path's.

Knows keys and messages, not sockets or files: imports only h2 (the framing of a response),
protocol, request, response and readevent (the C side of its table).
"""

import time

from ..http.h2 import VERSION as H2_VERSION
from ..http.h2 import framing
from ..http.protocol import plain_message
from ..http.request import Request, closing_key, split_plain_key
from ..http.response import INLINE_BODY, KeptFile, date_and_server, render_head
from .readevent import NativeLane

# Ready messages held at once; each is a cached file's message (below INLINE_BODY) for one
# variant of its key, and all of them are dropped every second.
MAX_READY = 4096


class FastLane:
    """Server-wide: the parser's scan of the receive buffer and the ready messages by key."""

    __slots__ = ("loop", "ready", "hits", "messages", "logged", "closing", "refused", "expires",
                 "native", "log_part", "log_filled", "h2", "h2_logged", "h2_ready",
                 "_scan_plain", "_buffer", "_fields", "plain_start")

    def __init__(self, loop, parser, handler, buffer, fields=False, native=False, log=None,
                 counted=False, h2_ready=None):
        """`fields`: the access log writes each request's Referer and User-Agent, so the scan
        reports them. `native`: its connections read and write their sockets themselves (no
        TLS), so the messages are also kept on the C side, where a whole read event of such
        a connection is answered in one call (NativeLane, where the extension is built).
        `log`: the access log, if any; `counted`: every answer is counted (the metrics).
        Where the log's format is a text one and nothing counts answers, the C side writes
        the lines of what it sends, and the log takes them from it. `h2_ready`: the HTTP/2
        engine's maker of kept answers (reactor.http.h2), if it has one."""
        self.loop = loop
        self.ready = handler.ready
        # [answers given from `ready`, ...]: the handler's cache hits, counted here too.
        self.hits = getattr(handler, "ready_hits", None) or [0]
        self.messages = {}   # key -> the bytes to send
        self.logged = {}     # key -> (request, status, head length) for the log and metrics
        self.closing = set()   # keys of requests that do not keep the connection alive
        self.h2 = {}         # key -> the HTTP/2 engine's kept answer
        self.h2_logged = {}  # key -> (request, status) for the log and metrics
        self.h2_ready = h2_ready
        # Keys whose targets the handler said it will not have a ready answer for (its
        # `ready` gave False: an application's route beside files), not asked again until
        # the messages are renewed.
        self.refused = set()
        self.expires = 0.0   # loop time when every message must be made again
        self._scan_plain = parser.scan_plain
        self._buffer = buffer
        self._fields = fields
        self.native = None
        self.log_part = self.log_filled = None
        if native and NativeLane is not None:
            log_format = "elsewhere" if counted else None if log is None else log.format
            self.native = NativeLane(parser, buffer, fields, MAX_READY, log_format)
            if self.native.logs:
                self.log_part = log.ready_part
                # Called when the C side has lines again after the log took them.
                self.log_filled = log.add_source(self.native.take_log)
        self.plain_start = parser.plain_start

    def scan(self, n: int):
        """(keys, end, fields) of the plain requests at the start of the first n bytes
        received: `fields` holds their Referer and User-Agent values when the lane was made
        with `fields` (see RequestParser.scan_plain), else it is None. The caller renews the
        messages first when they have expired (see renew)."""
        return self._scan_plain(self._buffer, n, self._fields)

    def _ready(self, key: bytes, target: str, accept):
        """The handler's ready answer for `key`'s request, (response, until), or None. A
        refusal (`ready` gave False) is kept until the messages are renewed: an HTTP/2 key is
        an HTTP/1.1 keep-alive request's, so one refusal serves both tables (the callers look
        there first, before taking the key apart)."""
        found = self.ready(target, accept)
        if not found:
            if found is False and len(self.refused) < MAX_READY:
                self.refused.add(key)
                if self.native is not None:
                    self.native.put(key, b"")   # C hands such reads back unscanned
            return None
        return found

    def fill(self, key: bytes):
        """The message for `key`, made and kept when the handler has a ready answer; or None
        (the full path answers)."""
        if key in self.refused:
            return None   # an application's route: every request of it comes this way
        raw_target, head, version, keep_alive, accept = split_plain_key(key)
        target = raw_target.decode("latin-1")
        found = self._ready(key, target, accept)
        if found is None:
            return None
        response, until = found
        if response.body.__class__ is KeptFile:
            # The head is ready; the body is sent from the file, checked per answer.
            message = (render_head(response, version, keep_alive), response.body.open, head)
            head_length = len(message[0])
        else:
            message = plain_message(response, version, keep_alive, head)
            if message is None:
                return None
            head_length = len(message) - (0 if head else response.length)
        if len(self.messages) >= MAX_READY:
            return None
        self.messages[key] = message
        request = Request("HEAD" if head else "GET", target, version, [], None, False,
                          keep_alive, False)
        self.logged[key] = (request, response.status, head_length)
        if self.native is not None and message.__class__ is bytes:
            # Without room there, answered from here.
            self.native.put(key, message, b"" if self.log_part is None else
                            self.log_part(request, response.status, len(message) - head_length))
        if not keep_alive:
            self.closing.add(key)
        if until < self.expires:
            self.expires = until
        return message

    def fill_h2(self, key: bytes):
        """The HTTP/2 engine's kept answer for `key`, made and kept when the handler has a
        ready answer whose body is in memory; or None (the full path answers)."""
        if self.h2_ready is None or len(self.h2) >= MAX_READY or key in self.refused:
            return None
        raw_target, head, _, _, accept = split_plain_key(key)
        target = raw_target.decode("latin-1")
        found = self._ready(key, target, accept)
        if found is None:
            return None
        response, until = found
        body = response.body
        if body.__class__ is not bytes or len(body) >= INLINE_BODY:
            return None   # a file, or a large body: not copied into a kept answer
        length, bare = framing(response, head)
        kept = self.h2_ready(response.status, response.fields, date_and_server()[1], length,
                             None if bare else body)
        if kept is None:
            return None
        self.h2[key] = kept
        self.h2_logged[key] = (Request("HEAD" if head else "GET", target, H2_VERSION, [], None,
                                       False, True, False),
                               response.status)
        if until < self.expires:
            self.expires = until
        return kept

    def closing_answer(self, key: bytes):
        """(key, message) of the answer to `key`'s request after which the server closes the
        connection: the answer to the same request asking to close, the bytes the full path
        sends then. None when it has no ready answer."""
        key = closing_key(key)
        message = self.messages.get(key) or self.fill(key)
        return None if message is None else (key, message)

    def renew(self):
        """Drop every message, to be made again, once `expires` (loop time) has come: at the
        next second of the wall clock (their Date), or when the handler's trust ends."""
        self.messages.clear()
        self.logged.clear()
        self.closing.clear()
        self.h2.clear()
        self.h2_logged.clear()
        self.refused.clear()
        if self.native is not None:
            self.native.clear()
        wall = time.time()
        self.expires = self.loop.now + (int(wall) + 1 - wall)
