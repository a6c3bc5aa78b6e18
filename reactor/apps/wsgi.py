"""The WSGI adapter (PEP 3333): a handler that runs a WSGI application on a thread pool.

Owns the environ, start_response, wsgi.file_wrapper and the hand-over of results to the
server as Futures. A WSGI application blocks, so it never runs on the loop: the call, the first
body item and every later item of a streamed body are produced on the pool, and the loop only
sees Futures. Must not import sockets, the loop or the connection.

Content-Length from the application is not passed on: the server frames the body itself.
It is checked instead. A buffered body longer than declared is cut to the declared length
(PEP 3333: a server must not send more); a shorter one becomes a 500, as nothing has been sent
yet. A streamed body is sent chunked and capped at the declared length; if it ends short the
stream fails, so the server breaks the connection and the client sees an incomplete message
rather than a complete-looking wrong one.
"""

import io
import logging
import os
import stat
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote_to_bytes

from ..config import Config
from ..http.request import Request
from ..http.response import SERVER_OWNED, FileSlice, Response, error_response
from .app import import_object, request_path

log = logging.getLogger("reactor.wsgi")

# Fields the environ carries under their CGI names rather than as HTTP_*.
_CGI_FIELDS = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}

_END = object()


class FileWrapper:
    """wsgi.file_wrapper: the server sends a regular file with sendfile; anything else (a pipe,
    a BytesIO) is read in blocks like any iterable."""

    def __init__(self, filelike, blksize: int = 64 * 1024):
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self):
        read = self.filelike.read
        while True:
            block = read(self.blksize)
            if not block:
                return
            yield block

    def close(self):
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def file_slice(self, limit):
        """A FileSlice from the file's position to its end (at most `limit` bytes), or None
        when the file has no descriptor of a regular file."""
        try:
            fd = self.filelike.fileno()
            info = os.fstat(fd)
        except (AttributeError, OSError, io.UnsupportedOperation):
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        if hasattr(self.filelike, "tell"):
            offset = self.filelike.tell()
        else:
            offset = os.lseek(fd, 0, os.SEEK_CUR)
        count = max(0, info.st_size - offset)
        if limit is not None:
            count = min(count, limit)
        return FileSlice(fd, offset, count, release=lambda _fd: self.close())


class _Call:
    """One request's start_response state: what the application declared and wrote."""

    __slots__ = ("status", "headers", "length", "written", "sent")

    def __init__(self):
        self.status = None
        self.headers = None
        self.length = None       # the application's Content-Length, when it gave one
        self.written = []        # bytes passed to the legacy write() callable
        self.sent = False        # the head has been handed to the server

    def start_response(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no cycle through the traceback
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        if not isinstance(status, str) or len(status) < 4 or status[3] != " ":
            raise AssertionError(f"bad WSGI status {status!r}")
        code = int(status[:3])
        kept, length = [], None
        for name, value in headers:
            if type(name) is not str or type(value) is not str:
                raise AssertionError(f"header {name!r}: {value!r} is not a pair of str")
            raw = name.encode("latin-1")
            lower = raw.lower()
            if lower == b"content-length":
                length = int(value)
                if length < 0:
                    raise AssertionError(f"negative Content-Length {value!r}")
            if lower not in SERVER_OWNED:
                kept.append((raw, value.encode("latin-1")))
        self.status, self.headers, self.length = code, kept, length
        return self.written.append

    def response(self, body) -> Response:
        if self.status is None:
            raise AssertionError("the application returned without calling start_response")
        response = Response(self.status, self.headers, body)
        self.sent = True
        return response


class _Stream:
    """A streamed body whose items are produced on the pool.

    The server iterates it on the loop; each item after the first is a Future that a pool
    thread resolves with the next bytes (None when the application ended). A lock keeps
    next() and close() of the application's iterable from overlapping on two threads.
    """

    def __init__(self, pool, iterator, result, first: bytes, call: _Call):
        self._pool = pool
        self._iterator = iterator
        self._result = result
        self._first = first
        self._call = call
        self._left = None if call.length is None else call.length - len(first)
        self._done = self._left == 0
        self._lock = threading.Lock()
        self._closed = False

    def __iter__(self):
        return self

    def __next__(self):
        first = self._first
        if first is not None:
            self._first = None
            return first
        if self._done:
            raise StopIteration
        return self._pool.submit(self._pull)

    def _pull(self):
        with self._lock:
            if self._closed:
                self._done = True
                return None
            chunk = _next_chunk(self._iterator, self._call)
            if chunk is _END:
                self._done = True
                if self._left:
                    raise ValueError(f"the application's body ended {self._left} bytes short "
                                     "of its Content-Length")
                return None
            if self._left is not None:
                chunk = chunk[:self._left]
                self._left -= len(chunk)
                self._done = self._left == 0
            return chunk

    def close(self):
        if self._closed:
            return
        try:
            self._pool.submit(self._close)
        except RuntimeError:             # the pool has shut down: nothing can race us now
            self._close()

    def _close(self):
        with self._lock:
            if not self._closed:
                self._closed = True
                _close(self._result)


def _next_chunk(iterator, call: _Call):
    """The next non-empty bytes of the body, preceded by anything given to write(); _END
    when the application has finished."""
    for chunk in iterator:
        if call.written:
            chunk = b"".join(call.written) + chunk
            call.written.clear()
        if chunk:
            return chunk
    if call.written:
        chunk = b"".join(call.written)
        call.written.clear()
        return chunk
    return _END


def _close(result):
    close = getattr(result, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.exception("close() of a WSGI response failed")


class WSGIHandler:
    """A handler(request) -> Future[Response] that runs `app` on `threads` pool threads.

    server_name/server_port fill SERVER_NAME/SERVER_PORT (used by applications only when the
    client sent no Host); script_name is the prefix the application is mounted under.
    """

    def __init__(self, app, *, threads: int, server_name: str, server_port: int,
                 url_scheme: str = "http", script_name: str = "", multiprocess: bool = False):
        self.app = app
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="reactor-wsgi")
        self._base = {
            "SCRIPT_NAME": script_name.rstrip("/"),
            "SERVER_NAME": server_name,
            "SERVER_PORT": str(server_port),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url_scheme,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            # The body is read whole before the call, so reading to EOF is always safe.
            "wsgi.input_terminated": True,
        }

    def __call__(self, request: Request):
        return self._pool.submit(self.respond, request)

    def close(self):
        """Take no more requests. Work already queued still runs, so that every iterable
        handed out gets its close() call."""
        self._pool.shutdown(wait=False)

    def environ(self, request: Request) -> dict:
        env = self._base.copy()
        path = request_path(request)
        env["REQUEST_METHOD"] = request.method
        env["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1")
        env["QUERY_STRING"] = request.target.partition("?")[2]
        env["SERVER_PROTOCOL"] = "HTTP/%d.%d" % divmod(request.version, 10)
        if request.scheme != "http":
            env["wsgi.url_scheme"] = request.scheme
            if request.scheme == "https":
                env["HTTPS"] = "on"
        client = request.client
        if isinstance(client, tuple):
            env["REMOTE_ADDR"], env["REMOTE_PORT"] = str(client[0]), str(client[1])
        else:
            env["REMOTE_ADDR"] = ""
        fields = request.fields
        for i in range(0, len(fields), 2):
            name = fields[i]
            if b"_" in name:
                # `X_User` would land on the same key as `X-User`: a client could forge a
                # header that a proxy in front of us set. nginx and gunicorn drop these too.
                continue
            key = _CGI_FIELDS.get(name) or "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            value = fields[i + 1].decode("latin-1")
            if key in env:
                # RFC 9110 §5.3: repeated fields are one comma-separated list; Cookie is the
                # exception that is joined with "; " (RFC 9113 §8.2.3).
                env[key] += ("; " if name == b"cookie" else ", ") + value
            else:
                env[key] = value
        body = request.body
        if body or request.content_length is not None or request.chunked:
            # A chunked body has been decoded already; the application sees its real length.
            env["CONTENT_LENGTH"] = str(len(body))
        env["wsgi.input"] = io.BytesIO(body)
        return env

    def respond(self, request: Request) -> Response:
        """Run the application for one request (on a pool thread) and build the Response."""
        call = _Call()
        result = None
        try:
            result = self.app(self.environ(request), call.start_response)
            response = self._response(result, call)
        except Exception:
            log.exception("WSGI application failed on %s %s", request.method, request.target)
            _close(result)
            return error_response(500)
        if response.length is None:
            return response                  # a _Stream: it closes the result itself
        if not isinstance(response.body, FileSlice):
            _close(result)
        declared = call.length
        if declared is None or response.length >= declared:
            return response
        if request.method == "HEAD":
            # The application may skip the body of a HEAD; the server sends none, and the
            # head should carry the length a GET would have.
            response.length = declared
            return response
        log.error("WSGI response to %s %s has %d bytes, its Content-Length says %d",
                  request.method, request.target, response.length, declared)
        if isinstance(response.body, FileSlice):
            response.body.close()
        return error_response(500)

    def _response(self, result, call: _Call) -> Response:
        limit = call.length
        if isinstance(result, FileWrapper) and call.status is not None:
            body = result.file_slice(limit)
            if body is not None:
                return call.response(body)
        if isinstance(result, (list, tuple)):
            body = b"".join(call.written) + b"".join(result)
            return call.response(body[:limit] if limit is not None else body)
        iterator = iter(result)
        first = _next_chunk(iterator, call)
        if first is _END:
            return call.response(b"")
        if limit is not None and len(first) >= limit:
            # The declared length is all there: no need to stream (frameworks return
            # one-item iterators for ordinary responses).
            return call.response(first[:limit])
        return call.response(_Stream(self._pool, iterator, result, first, call))


def load_wsgi(spec: str, config: Config) -> WSGIHandler:
    """The handler for `--wsgi module:attr`."""
    app = import_object(spec)
    if not callable(app):
        raise TypeError(f"{spec} is a {type(app).__name__}, not a WSGI application")
    return WSGIHandler(app, threads=config.threads, server_name=config.host or "localhost",
                       server_port=config.port, multiprocess=config.workers > 1)
