"""What a server needs to run behind a balancer: the client's address from a PROXY header or
forwarding fields, and the health path a balancer polls.

`install(server, config)` wires what the Config asks for into one Server, above it: the PROXY
header reader as the server's accept filter, and `Front` around the server's handler. With
none of it asked for, nothing is wired and nothing costs. The server imports nothing here.
"""

from .forwarded import ForwardedRules
from .proxy import HeaderReader, Networks
from .response import Response

_NO_STORE = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]


def install(server, config):
    if config.proxy_protocol:
        server.accept_filter = HeaderReader(server.loop, config.proxy_protocol,
                                            Networks(config.trusted_proxies),
                                            config.header_timeout)
    if config.forwarded_allow_ips or config.health:
        server.handler = Front(server.handler, server, config)


class Front:
    """The handler in front of the application: forwarding fields first, then the health
    path; everything else goes to `handler`."""

    def __init__(self, handler, server, config):
        self.handler = handler
        self.server = server
        self.health = config.health
        self.forwarded = (ForwardedRules(Networks(config.forwarded_allow_ips))
                          if config.forwarded_allow_ips else None)

    def __call__(self, request):
        if self.forwarded is not None:
            self.forwarded.apply(request)
        if self.health is not None and request.path == self.health:
            return self.health_response()
        return self.handler(request)

    def health_response(self) -> Response:
        if self.server.draining:
            return Response(503, _NO_STORE, b"draining\n")
        return Response(200, _NO_STORE, b"ok\n")

    def close(self):
        close = getattr(self.handler, "close", None)
        if close is not None:
            close()
