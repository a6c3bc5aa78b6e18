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

Lines are gathered during one loop iteration and handed to the writer thread once; if the
writer falls MAX_BACKLOG bytes behind, lines are dropped (and the drop is noted in the log
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

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

FORMATS = ("common", "combined", "json")

# Bytes handed to the writer and not yet written, past which new lines are dropped.
MAX_BACKLOG = 8 * 1024 * 1024

# How long close() waits for the writer to finish: a stuck disk must not hold up the exit.
CLOSE_WAIT = 2.0

_UNSAFE = re.compile(r'[\x00-\x1f"\\\x7f-\xff]')
_REOPEN = object()
_STOP = object()


def _escape(text: str) -> str:
    return _UNSAFE.sub(lambda m: "\\x%02X" % ord(m.group()), text)


def _field(request, name: bytes):
    value = request.header(name)
    return None if value is None else value.decode("latin-1")


class AccessLog:
    """Write lines to `stream` (stderr, say), or to the file at `path`, opened here in append
    mode and reopened by reopen()."""

    def __init__(self, stream=None, schedule=None, format: str = "common", path=None):
        if format not in FORMATS:
            raise ValueError(f"log format {format!r} is not one of {', '.join(FORMATS)}")
        self.path = path
        self.stream = open(path, "a", encoding="utf-8") if path is not None else stream
        self.schedule = schedule
        self.format = format
        self.lines = []
        self._stamp = 0
        self._when = ""
        self._queue = queue.SimpleQueue()
        self._backlog = 0
        self._dropped = 0
        self._lock = threading.Lock()
        self._writer = None

    def _timestamp(self) -> str:
        now = int(time.time())
        if now != self._stamp:
            t = time.gmtime(now)
            self._when = "%02d/%s/%04d:%02d:%02d:%02d +0000" % (
                t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)
            self._stamp = now
        return self._when

    def log(self, client, request, status: int, sent: int, started: float = 0.0):
        """One line for a response that has ended: `sent` body bytes actually written,
        `started` the loop time its request arrived (0: unknown)."""
        if not self.lines:
            self.schedule(self.flush)
        if self.format == "json":
            self.lines.append(self._json(client, request, status, sent, started))
            return
        line = '%s - - [%s] "%s %s HTTP/%d.%d" %d %d' % (
            client[0], self._timestamp(), _escape(request.method), _escape(request.target),
            *divmod(request.version, 10), status, sent)
        if self.format == "combined":
            line += ' "%s" "%s"' % (_escape(_field(request, b"referer") or "-"),
                                    _escape(_field(request, b"user-agent") or "-"))
        self.lines.append(line + "\n")

    def _json(self, client, request, status, sent, started) -> str:
        now = time.time()
        return json.dumps({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
                    + ".%03dZ" % (now * 1000 % 1000),
            "client": client[0], "method": request.method, "path": request.target,
            "protocol": "HTTP/%d.%d" % divmod(request.version, 10), "status": status,
            "bytes": sent,
            "duration_ms": round((time.monotonic() - started) * 1000, 3) if started else None,
            "referer": _field(request, b"referer"),
            "user_agent": _field(request, b"user-agent"),
        }) + "\n"

    def flush(self):
        """Hand the lines gathered so far to the writer thread."""
        lines, self.lines = self.lines, []
        if not lines:
            return
        text = "".join(lines)
        with self._lock:
            if self._backlog + len(text) > MAX_BACKLOG:
                self._dropped += len(lines)
                return
            self._backlog += len(text)
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
