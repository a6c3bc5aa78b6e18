"""The access log: one line per response when it has ended, in a format tools read, written by
a thread of its own so that a slow disk (or a stalled pipe) never holds up the loop.

A line is written when its response has ended (written in full, or cut short by the client or
a timeout), with the body bytes actually sent, as nginx does. Formats:
- common: `client - - [time] "METHOD target HTTP/1.x" status bytes` (NCSA, as nginx's).
- combined: common plus `"referer" "user-agent"`, the format log analysers expect.
- json: one object a line with time (ISO 8601, UTC, milliseconds), client, method, path,
  protocol, status, bytes, duration_ms, referer and user_agent (null when absent).
In the text formats a quote, backslash or control byte inside a field is written `\\xHH`, so a
client cannot forge a line or a field.

Lines are gathered and handed to the writer thread in batches (FLUSH_LINES, FLUSH_DELAY); if
the writer falls MAX_BACKLOG bytes behind, lines are dropped (and the drop is noted in the log
when it catches up) rather than held in memory without bound. reopen() has the writer close
and reopen the file, for log rotation (SIGUSR1).

Knows requests and text streams; must not import sockets or the loop (it is handed a
`schedule` callable to run the flush later).
"""

import json
import queue
import re
import threading
import time

from ..http.request import ABSENT_FIELD

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

FORMATS = ("common", "combined", "json")

# Bytes handed to the writer and not yet written, past which new lines are dropped.
MAX_BACKLOG = 8 * 1024 * 1024

# Lines are handed to the writer thread in batches: when this many are gathered, or this long
# after the first of a batch, whichever comes first. Each hand-over wakes the writer (a thread
# switch and the GIL passed twice), so a busy server pays for it once per thousand lines, and
# a quiet one sees its lines in the file within a tenth of a second.
FLUSH_LINES = 1024
FLUSH_DELAY = 0.1

# Request parts and field values kept ready to write; they are keyed by what clients send, so
# the set is emptied when it reaches this size.
MAX_KEPT_PIECES = 4096

# How long close() waits for the writer to finish: a stuck disk must not hold up the exit.
CLOSE_WAIT = 2.0

_UNSAFE = re.compile(r'[\x00-\x1f"\\\x7f-\xff]')
_REOPEN = object()
_STOP = object()
_DROPPED = object()   # lines were dropped: say how many once the writer gets here


def _escape(text: str) -> str:
    return _UNSAFE.sub(lambda m: "\\x%02X" % ord(m.group()), text)


def _quoted_text(value) -> str:
    """A field value (None or ABSENT_FIELD: absent) as the text formats write it: quoted and
    escaped, `"-"` when absent or empty."""
    if not value or value == ABSENT_FIELD:
        return '"-"'
    return '"%s"' % _escape(value.decode("latin-1"))


def _quoted_json(value) -> str:
    if value is None or value == ABSENT_FIELD:
        return "null"
    return json.dumps(value.decode("latin-1"))


class AccessLog:
    """Write lines to `stream` (stderr, say), or to the file at `path`, opened here in append
    mode and reopened by reopen(). `schedule(delay, callback)` runs a callback later on the
    loop (Loop.call_later).

    A line is put together from pieces made once and kept: the request's part (method,
    target, protocol and status, escaped), per second the time, per value the referer and
    user agent as written; only the client, the bytes and (JSON) the duration are new in
    each line. `wants_fields`: whether the format needs the Referer and User-Agent values."""

    def __init__(self, stream=None, schedule=None, format: str = "common", path=None):
        if format not in FORMATS:
            raise ValueError(f"log format {format!r} is not one of {', '.join(FORMATS)}")
        self.path = path
        self.stream = open(path, "a", encoding="utf-8") if path is not None else stream
        self.schedule = schedule
        self.format = format
        self.wants_fields = format != "common"
        self.lines = []
        self._quote = _quoted_json if format == "json" else _quoted_text
        self._parts = {}    # (method, target, version, status) -> the request's part of a line
        self._quoted = {}   # a field value (None: absent) -> as the format writes it
        self._stamp = 0
        self._when = ""
        self._sources = []   # see add_source
        self._flush_due = False
        self._queue = queue.SimpleQueue()
        self._backlog = 0
        self._dropped = 0
        self._lock = threading.Lock()
        self._writer = None

    def log(self, client, request, status: int, sent: int, started: float = 0.0):
        """One line for a response that has ended: `sent` body bytes actually written,
        `started` the loop time its request arrived (0: unknown)."""
        referer = agent = None
        if self.wants_fields:
            referer, agent = request.header(b"referer"), request.header(b"user-agent")
        self._emit(client[0], started, [(self._part(request, status), sent, referer, agent)])

    def log_ready(self, client, logged, keys, answers, fields, started: float):
        """The lines of the fast lane's answers to one read, all written in full: `logged[key]`
        is (request, status, head length) of each, `answers` their messages (as many as were
        answered, from the first key on), `fields` what RequestParser.scan_plain reported of
        their Referer and User-Agent values (when wants_fields, else None), `started` the
        loop time of the read."""
        rows = []
        for i, message in enumerate(answers):
            request, status, head = logged[keys[i]]
            part = self._part(request, status)
            if fields is None:
                rows.append((part, len(message) - head, None, None))
            else:
                rows.append((part, len(message) - head, fields[3 * i + 1], fields[3 * i + 2]))
        self._emit(client[0], started, rows)

    def ready_part(self, request, status: int, sent: int) -> bytes:
        """What a line of a text format holds after the client and the time, for an answer to
        `request` with `status` and `sent` body bytes: for lines written elsewhere from kept
        pieces (the fast lane's C side, see add_source)."""
        return (self._part(request, status) + str(sent)).encode("ascii")

    def add_source(self, take):
        """Lines of this log's format written elsewhere (see ready_part): `take()` returns
        those written since it was last called, as text. They are taken before each line of
        this log's own is added, so that a connection's lines keep their order, and at each
        flush. Returns what the source calls when it has lines again after being taken, so
        that they reach the writer within FLUSH_DELAY."""
        self._sources.append(take)
        return self._flush_soon

    def _flush_soon(self):
        if not self._flush_due:
            self._flush_due = True
            self.schedule(FLUSH_DELAY, self.flush)

    def _take_sources(self):
        for take in self._sources:
            text = take()
            if text:
                self.lines.append(text)

    def _emit(self, host: str, started: float, rows):
        """The lines of responses that end now, from the client `host`, whose requests arrived
        at the loop time `started` (0: unknown): `rows` of (request part, body bytes sent,
        referer, user agent)."""
        now = time.time()
        when = self._when if int(now) == self._stamp else self._timestamp(now)
        quoted = self._quoted
        kept = self._kept_quote
        if self.format == "common":
            prefix = "%s - - [%s] " % (host, when)
            lines = [prefix + part + str(sent) + "\n" for part, sent, _, _ in rows]
        elif self.format == "combined":
            prefix = "%s - - [%s] " % (host, when)
            lines = [prefix + part + str(sent) + " " + (quoted.get(referer) or kept(referer))
                     + " " + (quoted.get(agent) or kept(agent)) + "\n"
                     for part, sent, referer, agent in rows]
        else:
            prefix = '{"time": "%s.%03dZ", "client": %s' % (when, now * 1000 % 1000,
                                                             json.dumps(host))
            duration = ', "duration_ms": %s, "referer": ' % (
                repr(round((time.monotonic() - started) * 1000, 3)) if started else "null")
            lines = [prefix + part + str(sent) + duration + (quoted.get(referer) or kept(referer))
                     + ', "user_agent": ' + (quoted.get(agent) or kept(agent)) + "}\n"
                     for part, sent, referer, agent in rows]
        self._add(lines)

    def _timestamp(self, now: float) -> str:
        """The second of `now` (time.time()) as the format writes it; JSON adds milliseconds."""
        second = int(now)
        t = time.gmtime(second)
        if self.format == "json":
            self._when = time.strftime("%Y-%m-%dT%H:%M:%S", t)
        else:
            self._when = "%02d/%s/%04d:%02d:%02d:%02d +0000" % (
                t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)
        self._stamp = second
        return self._when

    def _part(self, request, status: int) -> str:
        """The request's part of a line (method, target, protocol, status), kept."""
        method, target, version = request.method, request.target, request.version
        return (self._parts.get((method, target, version, status))
                or self._new_part(method, target, version, status))

    def _new_part(self, method: str, target: str, version: int, status: int) -> str:
        """The request's part of a line (method, target, protocol, status), made and kept."""
        if self.format == "json":
            part = ', "method": %s, "path": %s, "protocol": "HTTP/%d.%d", "status": %d, ' \
                   '"bytes": ' % (json.dumps(method), json.dumps(target), *divmod(version, 10),
                                  status)
        else:
            part = '"%s %s HTTP/%d.%d" %d ' % (_escape(method), _escape(target),
                                               *divmod(version, 10), status)
        if len(self._parts) >= MAX_KEPT_PIECES:
            self._parts.clear()
        self._parts[(method, target, version, status)] = part
        return part

    def _kept_quote(self, value) -> str:
        """A field value as the format writes it, made and kept."""
        quoted = self._quote(value)
        if len(self._quoted) >= MAX_KEPT_PIECES:
            self._quoted.clear()
        self._quoted[value] = quoted
        return quoted

    def _add(self, lines):
        if self._sources:
            self._take_sources()
        self._flush_soon()
        gathered = self.lines
        gathered += lines
        if len(gathered) >= FLUSH_LINES:
            self.flush()

    def flush(self):
        """Hand the lines gathered so far to the writer thread."""
        self._flush_due = False
        if self._sources:
            self._take_sources()
        lines, self.lines = self.lines, []
        if not lines:
            return
        text = "".join(lines)
        with self._lock:
            first_drop = not self._dropped
            if self._backlog + len(text) > MAX_BACKLOG:
                self._dropped += len(lines)
                text = _DROPPED if first_drop else None   # the writer says so when it can
            else:
                self._backlog += len(text)
        if text is None:
            return
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_lines, name="reactor-log",
                                            daemon=True)
            self._writer.start()
        self._queue.put(text)

    def reopen(self):
        """Close and reopen the log file (after logrotate moved it); nothing for a stream."""
        if self.path is not None:
            self.flush()
            self._queue.put(_REOPEN)
            if self._writer is None:
                self._reopen()

    def close(self):
        """Write what is gathered and stop the writer (waiting CLOSE_WAIT at most)."""
        self.flush()
        if self._writer is not None:
            self._queue.put(_STOP)
            self._writer.join(CLOSE_WAIT)
        if self.path is not None and (self._writer is None or not self._writer.is_alive()):
            try:
                self.stream.close()
            except OSError:
                pass

    # -- the writer thread -----------------------------------------------------------------

    def _write_lines(self):
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if item is _REOPEN:
                self._reopen()
                continue
            if item is _DROPPED:
                item = ""
            with self._lock:
                self._backlog -= len(item)
                dropped, self._dropped = self._dropped, 0
            if dropped:
                item += (f"reactor: {dropped} access log lines dropped: the log could not keep "
                         f"up\n")
            try:
                self.stream.write(item)
                self.stream.flush()
            except (OSError, ValueError):
                pass   # a closed or broken log stream must not take the server down

    def _reopen(self):
        try:
            fresh = open(self.path, "a", encoding="utf-8")
        except OSError:
            return   # keep writing to the old file rather than lose lines
        old, self.stream = self.stream, fresh
        try:
            old.close()
        except OSError:
            pass
