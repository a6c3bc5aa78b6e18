"""Raw-socket helpers for tests: send exact bytes, read exact bytes, parse responses back."""

import http.client
import io
import re
import socket
import time

DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(target: bytes, *fields: bytes, method=b"GET", version=b"HTTP/1.1") -> bytes:
    """A request head for `target` with a Host field and `fields` (each b"Name: value")."""
    return (method + b" " + target + b" " + version + b"\r\n" + b"Host: t\r\n"
            + b"".join(f + b"\r\n" for f in fields) + b"\r\n")


def normalised(data: bytes) -> bytes:
    """Responses with their Date values masked: they say when, not what, was sent."""
    return DATE.sub(b"\r\nDate: -\r\n", data)


def fetch(port, path, method="GET", body=None, headers=None):
    """One request on a fresh connection: (response, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def assert_answered_promptly(port, path, expected: bytes):
    """`path` is served in full while other requests are held up: the loop is not blocked."""
    started = time.monotonic()
    response, body = fetch(port, path)
    assert response.status == 200 and body == expected
    assert time.monotonic() - started < 1.0


def read_until_close(sock: socket.socket, limit: int = 64 * 1024 * 1024,
                     reset_ok: bool = True) -> bytes:
    """Everything until the server's FIN (or `limit` bytes); with reset_ok False, a reset
    before the FIN raises instead of ending the read."""
    chunks = []
    size = 0
    while size < limit:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            if not reset_ok:
                raise
            break
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


def read_response(sock: socket.socket, method=b"GET") -> bytes:
    """One response framed by Content-Length (none for HEAD): its head and as many body bytes
    as that field says, or less when the server closes first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head_end = data.index(b"\r\n\r\n") + 4
    length = re.search(rb"\r\nContent-Length: (\d+)\r\n", data[:head_end])
    want = head_end + (int(length.group(1)) if length and method != b"HEAD" else 0)
    while len(data) < want:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def exchange(port: int, data: bytes, *, half_close: bool = True, timeout: float = 5.0,
             limit: int = 64 * 1024 * 1024) -> bytes:
    """Send `data` on a new connection, optionally shut the write side, and return everything
    until the server closes (or `timeout` passes with nothing more, or `limit` bytes came)."""
    with connect(port, timeout) as sock:
        return exchange_on(sock, data, half_close=half_close, limit=limit)


def exchange_on(sock: socket.socket, data: bytes, *, half_close: bool = True,
                limit: int = 64 * 1024 * 1024) -> bytes:
    """exchange() on a connection already open (a keep-alive one, say)."""
    sock.sendall(data)
    if half_close:
        sock.shutdown(socket.SHUT_WR)
    try:
        return read_until_close(sock, limit)
    except socket.timeout:
        return b""


class _UnclosableReader(io.BufferedReader):
    """http.client closes its file after each body; the next response is in the same bytes."""

    def close(self):
        pass


class _BytesSocket:
    def __init__(self, reader):
        self.reader = reader

    def makefile(self, *args, **kwargs):
        return self.reader


def parse_responses(data: bytes, methods=None) -> list:
    """Every response in `data`, in order, as http.client.HTTPResponse objects with the
    body already read into `.body`. `methods` gives each request's method (HEAD matters)."""
    reader = _UnclosableReader(io.BytesIO(data))
    responses = []
    index = 0
    while reader.peek(1):
        method = methods[index] if methods else "GET"
        response = http.client.HTTPResponse(_BytesSocket(reader), method=method)
        response.begin()
        response.body = response.read()
        responses.append(response)
        index += 1
    return responses


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
