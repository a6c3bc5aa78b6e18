"""The C read-event unit (csrc/readevent.c) behind the Python the server calls.

The only module of reactor.net that calls reactor._native. Imports only reactor.http.limits
and reactor.http.response of the rest of reactor; reactor.net._pyreadevent is its pure-Python
twin, and reactor.net.readevent picks one.
"""

import functools
import os

from .._native import ffi, lib
from ..http import limits
from ..http.response import INLINE_BODY

_accept = lib.re_accept
_answer = lib.re_answer
_send = lib.re_send
_put = lib.re_put
_GATHERED = lib.RE_GATHERED
_unpack = ffi.unpack
# The arena and the answers buffer are written before they are read: left unzeroed, their
# pages become resident only as they are used.
_new_unzeroed = ffi.new_allocator(should_clear_after_alloc=False)

# Room for the ready answers copied to the C side: every message is below INLINE_BODY, and
# most are a small file's; past it, an answer stays on the Python side only (still answered
# by the lane, from Python).
ARENA = 8 * 1024 * 1024

# Room for the access log lines written in C before they are taken: about a thousand lines.
# A read whose lines do not fit is logged from Python, which takes these first.
LOG_ROOM = 256 * 1024

# How the C side logs the answers it sends, by the access log's format: the text formats
# itself; anything else (JSON, or metrics that count each answer) is left to Python.
_LOG_FORMATS = {None: lib.RE_LOG_NONE, "common": lib.RE_LOG_COMMON,
                "combined": lib.RE_LOG_COMBINED}


class Acceptor:
    """Takes the connections waiting on one listening socket, at most `batch` per call: each
    descriptor non-blocking and close-on-exec from the start, with no other system call."""

    __slots__ = ("fd", "_batch", "_fds", "_ports", "_hosts", "_keep")

    def __init__(self, listener, batch: int):
        self.fd = listener.fileno()
        fds = ffi.new("int[]", batch)
        ports = ffi.new("int[]", batch)
        self._hosts = ffi.new("char[]", batch * lib.RE_HOST_MAX)
        self._batch = ffi.new("struct re_accepted *", {
            "fds": fds, "ports": ports, "cap": batch,
            "hosts": self._hosts, "hosts_cap": batch * lib.RE_HOST_MAX})
        # Reading a memoryview is several times cheaper than indexing the cdata arrays.
        self._fds = memoryview(ffi.buffer(fds)).cast("i")
        self._ports = memoryview(ffi.buffer(ports)).cast("i")
        self._keep = (fds, ports)   # the batch struct points into them

    def accept(self) -> tuple:
        """([(fd, host, port), ...], error): the connections taken, and the OSError that
        stopped the batch (None when none was waiting any more). `host` is '' for a peer
        without an address (a unix socket's)."""
        return self._taken(_accept(self.fd, self._batch))

    def accept_answering(self, lane) -> tuple:
        """accept(), with a first read of each connection taken, answered from the
        NativeLane `lane`'s table as its serve() does when let send (readevent.h,
        re_accept_serve): (taken, error, read_at, closed, answered, first_lines). Those
        answered whole and closed, or gone, are not taken: `closed` of them, answered
        `answered` requests, their log lines the first in the lane's log when
        `first_lines`. The connection taken at index `read_at` (None: none) has its first
        read in the receive buffer, with the lane's results as serve() leaves them."""
        batch = self._batch
        taken, error = self._taken(lane.accept(self.fd, batch))
        read_at = batch.read_at
        return (taken, error, None if read_at < 0 else read_at, batch.closed, batch.answered,
                batch.first_lines)

    def _taken(self, count: int) -> tuple:
        batch = self._batch
        error = OSError(batch.error, os.strerror(batch.error)) if batch.error else None
        if not count:
            return (), error
        hosts = ffi.unpack(self._hosts, batch.hosts_len - 1).decode("ascii").split("\0")
        fds, ports = self._fds, self._ports
        return [(fds[i], hosts[i], ports[i]) for i in range(count)], error


class NativeLane:
    """The fast lane's table of ready messages on the C side, and a read event behind one
    call: recv, the scan of its plain requests, and their answers gathered, as far as the
    table holds them (the rest is the Python lane's). Sends what it gathered. Mirrors a
    FastLane's messages (put, clear); its scan is the parser's, with its own buffers.

    `results` after a read or an answer, in readevent.h's RE_* order: (bytes scanned,
    requests answered, the offset past them, whether the last asked to close, bytes
    gathered, bytes sent by serve, whether serve logged them, whether serve left nothing to
    do but count them, whether the first request left unanswered is one put as refused);
    the two before the last are FIRST_LINES where the log held no lines before."""

    __slots__ = ("results", "serve", "accept", "logs", "ends_reads", "_lane", "_buffer", "_cap",
                 "_meta", "_out", "_answers", "_log", "_keep")

    FIRST_LINES = lib.RE_FIRST_LINES
    REFUSED = lib.RE_REFUSED

    def __init__(self, parser, buffer, logged: bool, entries: int, log_format="elsewhere"):
        """`buffer`: the server's receive buffer; `logged`: scan with the access log's fields
        (hp_scan_plain); `entries`: how many messages the table holds at most; `log_format`:
        the access log's format where serve writes the lines ("common", "combined"), None
        where there is nothing to log or count per answer, else "elsewhere": the caller logs
        or counts each answer itself."""
        fields = ffi.new("struct hp_field[]", parser.max_headers)
        meta = ffi.new("int64_t[]", 3 + limits.MAX_PLAIN_BATCH)
        out_cap = max(parser.max_head, limits.RECV_SIZE)
        self._out = ffi.new("char[]", out_cap)
        slots_cap = 1 << (2 * entries - 1).bit_length()   # at most half full
        slots = ffi.new("struct re_slot[]", slots_cap)
        arena = _new_unzeroed("char[]", ARENA)
        answers_cap = limits.MAX_PLAIN_BATCH * INLINE_BODY
        self._answers = _new_unzeroed("char[]", answers_cap)
        log_code = _LOG_FORMATS.get(log_format, lib.RE_LOG_ELSEWHERE)
        # Whether serve can leave a read with nothing to do but count it (RE_DONE): not
        # where each answer is logged or counted in Python.
        self.ends_reads = log_code != lib.RE_LOG_ELSEWHERE
        # Whether serve writes log lines (then put wants each message's part of a line).
        self.logs = log_code in (lib.RE_LOG_COMMON, lib.RE_LOG_COMBINED)
        log_room = LOG_ROOM if self.logs else 0
        self._log = _new_unzeroed("char[]", max(log_room, 1))
        self._lane = ffi.new("struct re_lane *", {
            "scan": {"limits": (parser.max_request_line, parser.max_head, parser.max_headers),
                     "fields": fields, "fields_cap": parser.max_headers,
                     "meta": meta, "meta_cap": 3 + limits.MAX_PLAIN_BATCH,
                     "out": self._out, "out_cap": out_cap},
            "logged": logged, "slots": slots, "slots_cap": slots_cap,
            "arena": arena, "arena_cap": ARENA,
            "answers": self._answers, "answers_cap": answers_cap,
            "log_format": log_code, "log": self._log, "log_cap": log_room})
        # Reading memoryviews is several times cheaper than indexing cdata arrays.
        self.results = memoryview(ffi.buffer(self._lane.results)).cast("q")
        self._meta = memoryview(ffi.buffer(meta)).cast("q")
        self._buffer = ffi.from_buffer(buffer)
        self._cap = len(buffer)
        self._keep = (fields, meta, slots, arena)   # the lane struct points into them
        # serve(fd, may_send, host): a whole read event in one call, with no
        # Python frame of its own: recv, answer (see answer()) and, with `may_send`, send all
        # that was gathered (the caller says whether a connection stays open after any
        # answers a read can hold, unless the client asks to close), then, once all of it is
        # sent, log the answers as sent to the client `host` (bytes). Returns the bytes
        # read, 0 at the end of the input, or -errno; see `results`.
        self.serve = functools.partial(lib.re_serve, self._lane, self._buffer, self._cap)
        # accept(listening fd, struct re_accepted *): re_accept_serve, for
        # Acceptor.accept_answering.
        self.accept = functools.partial(lib.re_accept_serve, self._lane, self._buffer,
                                        self._cap)

    def waiting(self, epfd: int, descriptors: int) -> "NativeWait":
        """A NativeWait on the epoll set `epfd` that serves from this lane, for connections
        on descriptors below `descriptors`."""
        return NativeWait(self, epfd, descriptors)

    def put(self, key: bytes, message: bytes, part: bytes = b"") -> bool:
        """Keep `message` (copied) as the answer to `key`, with `part`: what its access log
        line holds after the client and the time (see readevent.h); an empty `message`
        marks the key refused, its requests the handler's (REFUSED). False when there is no
        room."""
        return _put(self._lane, key, len(key), message, len(message), part, len(part)) == 0

    def take_log(self) -> str:
        """The log lines serve wrote since the last call (ASCII: what a client sent is
        escaped)."""
        lane = self._lane
        if not lane.log_len:
            return ""
        text = _unpack(self._log, lane.log_len).decode("ascii")
        lane.log_len = 0
        return text

    def clear(self):
        lib.re_clear(self._lane)

    def answer(self, n: int) -> int:
        """The answers of the plain requests at the start of the first n bytes of the receive
        buffer whose keys the table holds, gathered; `results` (readevent.h's RE_*) says how
        many, to where, whether the last asked to close, and how many bytes."""
        return _answer(self._lane, self._buffer, n)

    def send(self, fd: int, start: int = 0) -> int:
        """Send what the last answer gathered, from byte `start`: the bytes sent, raising as
        socket.send does."""
        sent = _send(self._lane, fd, start, self.results[_GATHERED])
        if sent < 0:
            raise OSError(-sent, os.strerror(-sent))
        return sent

    def gathered(self, start: int) -> bytes:
        """What the last answer gathered, from byte `start` (a copy: the buffer is reused)."""
        return _unpack(self._answers + start, self.results[_GATHERED] - start)

    def scanned(self) -> tuple:
        """(keys, fields) of the plain requests the last answer scanned, as the parser's
        scan_plain gives them."""
        parts = _unpack(self._out, self._meta[2] - 1).split(b"\0")
        if self._lane.logged:
            return parts[::3], parts
        return parts, None


class NativeWait:
    """A loop's epoll wait where the reads of kept connections (idle plain connections that a
    NativeLane may answer and send to freely) are served in C (readevent.h, re_poll): one
    call waits and serves them all; the rest of the events, and the one kept read that needs
    more, are the caller's."""

    __slots__ = ("wait", "kept", "_polled", "_hosts", "_done", "_ready", "_rest", "_masks",
                 "_keep")

    EVENTS = 1024        # epoll events taken per wait
    _EVENT_SIZE = 16     # struct epoll_event: 12 bytes packed (x86-64), 16 elsewhere

    def __init__(self, lane: NativeLane, epfd: int, descriptors: int):
        events = self.EVENTS
        kept = ffi.new("unsigned char[]", descriptors)
        hosts = _new_unzeroed("char[]", descriptors * lib.RE_HOST_MAX)
        room = _new_unzeroed("char[]", events * self._EVENT_SIZE)
        done, ready, rest = (ffi.new("int[]", events) for _ in range(3))
        masks = ffi.new("uint32_t[]", events)
        self._polled = ffi.new("struct re_polled *", {
            "epfd": epfd, "kept": kept, "hosts": hosts, "cap": descriptors, "events": room,
            "events_cap": events, "done": done, "done_ready": ready, "rest": rest,
            "rest_events": masks})
        # Writable and readable as memoryviews: several times cheaper than cdata indexing.
        self.kept = memoryview(ffi.buffer(kept))
        self._hosts = memoryview(ffi.buffer(hosts))
        self._done = memoryview(ffi.buffer(done)).cast("i")
        self._ready = memoryview(ffi.buffer(ready)).cast("i")
        self._rest = memoryview(ffi.buffer(rest)).cast("i")
        self._masks = memoryview(ffi.buffer(masks)).cast("I")
        self._keep = (kept, hosts, room, done, ready, rest, masks)
        # wait(timeout in ms): the number of events, or -errno; see the accessors below.
        self.wait = functools.partial(lib.re_poll, lane._lane, lane._buffer, lane._cap,
                                      self._polled)

    def keep(self, fd: int, host: bytes):
        """Let C serve the reads of `fd` (below the descriptors given) as from `host`."""
        start = fd * lib.RE_HOST_MAX
        self._hosts[start:start + len(host) + 1] = host + b"\0"
        self.kept[fd] = 1

    def done(self) -> list:
        """(fd, requests answered) of each kept connection whose read C ended."""
        polled = self._polled
        count = polled.done_len
        return list(zip(self._done[:count], self._ready[:count])) if count else []

    def rest(self) -> list:
        """The (fd, events) pairs left to the caller, in order."""
        count = self._polled.rest_len
        return list(zip(self._rest[:count], self._masks[:count])) if count else []

    def read(self) -> tuple:
        """(fd, what serve returned) of the kept connection whose read needs the caller, or
        (-1, 0); and whether the done reads' log lines were the first in the lane's log."""
        polled = self._polled
        return polled.read_fd, polled.read_len, polled.first_lines
