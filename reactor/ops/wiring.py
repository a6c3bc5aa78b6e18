"""What a server needs to run behind a balancer and be watched: the client's address from a
PROXY header or forwarding fields, the health path a balancer polls, the metrics and the
access log.

`install(server, config, shared, region)` wires what the Config asks for into one Server,
above it: the access log, the PROXY header reader as the server's accept filter, the metrics
counter (and its once-a-second publication to `shared`'s `region`), and `Front` around the
server's handler.
With none of it asked for, nothing is wired and nothing costs. The server imports nothing here.
"""

import sys

from ..http.errors import ConfigError
from ..http.response import Response
from .accesslog import AccessLog
from .forwarded import ForwardedRules
from .metrics import Metrics, Shared
from .proxy import HeaderReader, Networks

_NO_STORE = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]
_PROMETHEUS = [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
               ("Cache-Control", "no-store")]

# How often a worker copies its counters to the shared mapping (a scrape copies them too).
PUBLISH_INTERVAL = 1.0


def install(server, config, shared=None, region=None):
    """Raises ConfigError (one line) when the access log file cannot be opened."""
    server.access_log = open_access_log(config, server.loop.call_later)
    if config.proxy_protocol:
        server.accept_filter = HeaderReader(server.loop, config.proxy_protocol,
                                            Networks(config.trusted_proxies),
                                            config.header_timeout)
    if config.metrics:
        server.metrics = Metrics(server, shared or Shared(regions=1), region)

        def publish():
            server.metrics.publish()
            server.loop.call_later(PUBLISH_INTERVAL, publish)

        server.loop.call_later(PUBLISH_INTERVAL, publish)
    if config.forwarded_allow_ips or config.health or config.metrics:
        server.handler = Front(server.handler, server, config)


def open_access_log(config, schedule):
    """The AccessLog a Config asks for, or None."""
    if not config.access_log:
        return None
    try:
        return AccessLog(sys.stderr, schedule, config.log_format, config.access_log_file)
    except OSError as error:
        raise ConfigError(f"cannot open the access log {config.access_log_file}: "
                          f"{error.strerror}") from None


class Front:
    """The handler in front of the application: forwarding fields first, then the health and
    metrics paths; everything else goes to `handler`."""

    def __init__(self, handler, server, config):
        self.handler = handler
        self.server = server
        self.health = config.health
        self.metrics = config.metrics
        self.metrics_allow = Networks(config.metrics_allow)
        self.paths = {path for path in (config.health, config.metrics) if path}
        self.forwarded = (ForwardedRules(Networks(config.forwarded_allow_ips))
                          if config.forwarded_allow_ips else None)
        self.ready_hits = getattr(handler, "ready_hits", None)
        self.streams_bodies = getattr(handler, "streams_bodies", False)

    def __call__(self, request):
        if self.forwarded is not None:
            self.forwarded.apply(request)
        target = request.target
        if target in self.paths or ("?" in target and request.path in self.paths):
            path = request.path
            if path == self.health:
                return self.health_response()
            if request.client in self.metrics_allow:
                return Response(200, _PROMETHEUS, self.server.metrics.render())
        return self.handler(request)

    def early_response(self, request):
        if self.forwarded is not None:
            self.forwarded.apply(request)
        if self.health is not None and request.path == self.health:
            return self.health_response()
        early = getattr(self.handler, "early_response", None)
        return early(request) if early is not None else None

    def ready(self, target: str, accept):
        """The fast lane's question (see StaticFiles.ready), answered by the handler behind
        for every path of its own, while no forwarding fields need reading."""
        ready = getattr(self.handler, "ready", None)
        if ready is None or self.forwarded is not None or target.partition("?")[0] in self.paths:
            return None
        return ready(target, accept)

    def health_response(self) -> Response:
        if self.server.draining:
            return Response(503, _NO_STORE, b"draining\n")
        return Response(200, _NO_STORE, b"ok\n")

    def close(self):
        close = getattr(self.handler, "close", None)
        if close is not None:
            close()
