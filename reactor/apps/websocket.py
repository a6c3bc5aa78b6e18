"""The ASGI `websocket` scope: RFC 6455 through the `websockets` package's sans-I/O protocol.

The server has parsed the upgrade request already; websockets' ServerProtocol checks it and
negotiates permessage-deflate (RFC 7692), then parses and builds frames, answers pings and
the close handshake, and enforces the message size limit (1009). Here: the handshake answer
the application chooses (accept with its subprotocol and headers, a denial response, or
403 for a close before accept), reassembly of fragmented messages, the server's pings, and
the hand-over of the connection after the 101 (the session is the connection's tunnel, see
response.Upgrade). A server shutdown closes with 1001.

Must not import sockets, the loop or the connection.
"""

import logging
from collections import deque

from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.http11 import Request as HandshakeRequest
from websockets.protocol import OPEN, SERVER, Protocol, State
from websockets.server import ServerProtocol

from ..http import limits
from ..http.response import (
    Deferred,
    Response,
    Upgrade,
    error_response,
    render_app_fields,
    render_fields,
)
from .asgi import ClientDisconnected, start_task

log = logging.getLogger("reactor.websocket")

# websockets logs every open and close at INFO; the access log has them already.
_protocol_log = logging.getLogger("reactor.websocket.protocol")
_protocol_log.setLevel(logging.WARNING)

WEBSOCKET_EXTENSIONS = {"websocket.http.response": {}}

# Close codes (RFC 6455 §7.4.1).
GOING_AWAY = 1001
ABNORMAL = 1006
INTERNAL_ERROR = 1011
INVALID_DATA = 1007


def open_session(handler, request):
    """The answer to an upgrade request: the handshake's error, or a Deferred of the
    application's answer (a 101 carrying the session, or its denial response)."""
    opening = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()],
                             logger=_protocol_log)
    handshake = opening.accept(HandshakeRequest(
        request.target, Headers((name.decode("latin-1"), value.decode("latin-1"))
                                for name, value in request.headers)))
    if handshake.status_code != 101:
        return Response(handshake.status_code, list(handshake.headers.raw_items()),
                        handshake.body)
    # The request was read by the server, so the frames start a protocol that is open
    # already, with the extensions the handshake agreed on.
    frames = Protocol(SERVER, state=OPEN, max_size=handler.ws_max_size, logger=_protocol_log)
    frames.extensions = opening.extensions
    return Session(handler, request, frames, handshake).run()


class Session:
    """One WebSocket, from the application's first word to the closed connection."""

    def __init__(self, handler, request, protocol, handshake):
        self.handler = handler
        self.request = request
        self.protocol = protocol
        self.handshake = handshake
        self.future = Deferred()    # the server's answer to the upgrade request
        self.inbox = deque([{"type": "websocket.connect"}])
        self.waiter = None          # receive() waiting for the inbox
        self.drained = None         # send() waiting for the client to read
        self.channel = None         # the connection, once the 101 is written
        self.unsent = []            # bytes sent by the application before that
        self.accepted = False
        self.denial = None          # [status, headers, body parts] of a denial response
        self.closed = False         # the application has been told of the disconnect
        self.fragments = None       # the parts of a fragmented message
        self.pinged = False         # a ping is out without its pong
        self.ping_timer = None

    def run(self):
        handler = self.handler
        scheme = "wss" if self.request.scheme == "https" else "ws"
        scope = handler.scope(self.request, "websocket", scheme, WEBSOCKET_EXTENSIONS)
        del scope["method"]
        offered = self.request.header(b"sec-websocket-protocol")
        scope["subprotocols"] = ([item.strip() for item in offered.decode("latin-1").split(",")]
                                 if offered else [])
        task = start_task(handler.loop, handler.app(scope, self.receive, self.send))
        task.add_done_callback(self._finished)
        return self.future

    # -- the application's side ---------------------------------------------------------------

    async def receive(self) -> dict:
        while not self.inbox:
            if self.waiter is None:
                self.waiter = self.handler.loop.create_future()
            await self.waiter
        return self.inbox.popleft()

    async def send(self, message: dict):
        kind = message["type"]
        if not self.accepted and self.denial is None:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._answer(error_response(403))
            elif kind == "websocket.http.response.start":
                headers, _ = render_app_fields(message.get("headers", ()))
                self.denial = [message["status"], headers, []]
            else:
                raise RuntimeError(f"{kind!r} before websocket.accept")
            return
        if self.denial is not None:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"{kind!r} during a denial response")
            status, headers, parts = self.denial
            parts.append(message.get("body", b""))
            if not message.get("more_body", False):
                self._answer(Response(status, headers, b"".join(parts)))
            return
        if self.closed or self.protocol.state is not State.OPEN:
            raise ClientDisconnected("the WebSocket is closed")
        if kind == "websocket.send":
            text = message.get("text")
            if text is not None:
                self.protocol.send_text(text.encode())
            else:
                self.protocol.send_binary(message["bytes"])
        elif kind == "websocket.close":
            self.protocol.send_close(message.get("code", 1000), message.get("reason") or "")
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in the websocket scope")
        self._flush()
        channel = self.channel
        if channel is not None and channel.backlog >= limits.SEND_BUFFER:
            self.drained = self.handler.loop.create_future()
            await self.drained

    def _accept(self, message):
        handshake = self.handshake
        headers = handshake.headers
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            headers["Sec-WebSocket-Protocol"] = subprotocol
        extra, _ = render_app_fields(message.get("headers", ()))
        del headers["Date"]   # the server writes its own
        self.accepted = True
        self._answer(Upgrade(render_fields(headers.raw_items()) + extra, self))

    def _answer(self, response):
        self.future.resolve(response)

    def _finished(self, task):
        error = None if task.cancelled() else task.exception()
        if error is not None and not isinstance(error, ClientDisconnected):
            log.error("ASGI application failed on WebSocket %s", self.request.target,
                      exc_info=error)
        if not self.future.done:
            if error is None and self.denial is None:
                log.error("ASGI application returned without accepting or closing the "
                          "WebSocket %s", self.request.target)
            self._answer(error_response(500 if error is not None or self.denial else 403))
        elif self.accepted and self.protocol.state is State.OPEN:
            # Finished without closing: close for it (1011 when it failed).
            self.protocol.send_close(INTERNAL_ERROR if error is not None else 1000)
            self._flush()

    # -- the connection's side (the tunnel) ---------------------------------------------------

    def attach(self, channel):
        self.channel = channel
        for data in self.unsent:
            channel.write(data)
        self.unsent = []
        interval = self.handler.ws_ping_interval
        if interval:
            self.ping_timer = self.handler.loop.call_later(interval, self._ping, interval)

    def received(self, data: bytes):
        protocol = self.protocol
        protocol.receive_data(data)
        for frame in protocol.events_received():
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if frame.fin:
                    self._deliver(opcode is Opcode.TEXT, frame.data)
                else:
                    self.fragments = (opcode is Opcode.TEXT, [frame.data])
            elif opcode is Opcode.CONT:
                text, parts = self.fragments
                parts.append(frame.data)
                if frame.fin:
                    self.fragments = None
                    self._deliver(text, b"".join(parts))
            elif opcode is Opcode.PONG:
                self.pinged = False
        self._flush()
        if protocol.close_rcvd is not None or protocol.parser_exc is not None:
            self._disconnected()

    def _deliver(self, text: bool, data: bytes):
        if text:
            try:
                message = {"type": "websocket.receive", "text": data.decode()}
            except UnicodeDecodeError:
                self.protocol.fail(INVALID_DATA, "invalid UTF-8")
                return
        else:
            message = {"type": "websocket.receive", "bytes": data}
        self._post(message)

    def _flush(self):
        """Write what the protocol has to send; its end-of-stream closes the connection."""
        for data in self.protocol.data_to_send():
            if not data:
                if self.channel is not None:
                    self.channel.end()
            elif self.channel is None:
                self.unsent.append(data)
            else:
                self.channel.write(data)

    def _ping(self, interval):
        if self.closed or self.protocol.state is not State.OPEN:
            return
        if self.pinged:
            log.info("WebSocket %s: no pong within %.0fs; closing", self.request.target,
                     interval)
            self.protocol.fail(INTERNAL_ERROR, "keepalive ping timeout")
            self._flush()
            self._disconnected()
            return
        self.pinged = True
        self.protocol.send_ping(b"")
        self._flush()
        self.ping_timer = self.handler.loop.call_later(interval, self._ping, interval)

    def writable(self):
        drained, self.drained = self.drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def drain(self):
        """The server is shutting down: close with 1001, once."""
        if self.protocol.state is State.OPEN:
            try:
                self.protocol.send_close(GOING_AWAY, "server shutting down")
            except InvalidState:
                return
            self._flush()

    def lost(self):
        self.channel = None
        if self.ping_timer is not None:
            self.ping_timer.cancel()
        self.writable()
        if self.protocol.state is not State.CLOSED:
            self.protocol.receive_eof()
        self._disconnected()

    def _disconnected(self):
        if self.closed:
            return
        self.closed = True
        protocol = self.protocol
        close = protocol.close_rcvd or protocol.close_sent
        self._post({"type": "websocket.disconnect",
                    "code": close.code if close is not None else ABNORMAL,
                    "reason": close.reason if close is not None else ""})

    def _post(self, message):
        self.inbox.append(message)
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
