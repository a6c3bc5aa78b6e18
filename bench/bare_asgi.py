"""The ASGI ceiling: the least a Python server can do to run an ASGI application on uvloop.

One reader callback per connection: recv, the C parser of reactor, the scope the spec asks
for, one asyncio task per request running the application, and its send() writing status line,
Date, the application's fields and the body in one send. Nothing else: no limits, deadlines,
errors, pipelining order, request bodies, streaming, access log or metrics. Whatever reactor's
ASGI path costs beyond this is the price of being a real server; `bench/asgi.py` runs it beside
the servers to show how much of that price is left, and how far any server of this kind can go
past uvicorn.

    python bench/bare_asgi.py --port 8080 [--bind 127.0.0.1]   (serves bench/asgi.py's app)
"""

import argparse
import asyncio
import signal
import socket
from email.utils import formatdate

import uvloop
from asgi import app

from reactor.http.parser import RequestParser

ASGI = {"version": "3.0", "spec_version": "2.4"}
STATUS = {200: b"HTTP/1.1 200 OK\r\n", 404: b"HTTP/1.1 404 Not Found\r\n"}


def date_line() -> bytes:
    return b"Date: %s\r\nServer: bare-asgi\r\n" % formatdate(usegmt=True).encode()


class Cycle:
    """One request's receive and send."""

    __slots__ = ("sock", "head")

    def __init__(self, sock):
        self.sock = sock
        self.head = b""

    async def receive(self):
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message):
        if message["type"] == "http.response.start":
            self.head = b"".join((STATUS[message["status"]], Server.date,
                                  *(b"%s: %s\r\n" % pair for pair in message["headers"]),
                                  b"\r\n"))
        else:
            self.sock.send(self.head + message.get("body", b""))


async def run(scope, cycle):
    await app(scope, cycle.receive, cycle.send)


class Server:
    date = date_line()

    def __init__(self, loop, listener):
        self.loop = loop
        self.listener = listener
        self.parser = RequestParser()
        self.buffer = bytearray(65536)
        self.view = memoryview(self.buffer)
        self.address = listener.getsockname()[:2]
        loop.add_reader(listener.fileno(), self.accept)
        self.tick()

    def tick(self):
        Server.date = date_line()
        self.loop.call_later(1.0, self.tick)

    def accept(self):
        while True:
            try:
                sock, client = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.loop.add_reader(sock.fileno(), self.readable, sock, client[:2])

    def readable(self, sock, client):
        try:
            n = sock.recv_into(self.buffer)
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if not n:
            self.loop.remove_reader(sock.fileno())
            sock.close()
            return
        requests, _, _ = self.parser.parse(self.view[:n])
        for request in requests:
            path, _, query = request.target.partition("?")
            pairs = iter(request.fields)
            scope = {"type": "http", "asgi": ASGI, "http_version": "1.1",
                     "method": request.method, "scheme": "http", "path": path,
                     "raw_path": path.encode("latin-1"), "query_string": query.encode("latin-1"),
                     "root_path": "", "headers": list(zip(pairs, pairs)), "client": client,
                     "server": self.address, "state": {}, "extensions": {}}
            self.loop.create_task(run(scope, Cycle(sock)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    listener = socket.create_server((args.bind, args.port), backlog=1024)
    listener.setblocking(False)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    Server(loop, listener)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, loop.stop)
    loop.run_forever()


if __name__ == "__main__":
    main()
