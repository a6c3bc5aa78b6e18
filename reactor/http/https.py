"""What the HTTPS port changes above the transport, as handler wrappers: the request's scheme,
Strict-Transport-Security on HTTPS responses, and the plain port's redirect to HTTPS.

Knows requests and responses, never sockets or TLS: the server picks the wrapper per listener.
"""

import re
from concurrent.futures import Future

from .response import Response, error_response

# A Host value fit to be put into a Location: a DNS name or IPv4 address, or a bracketed IPv6
# address, with an optional port (which is replaced by the HTTPS one).
_HOST = re.compile(r"([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]*)?")


class HTTPSHandler:
    """`handler` for requests that came over TLS: scheme "https", and with `hsts_seconds`
    a Strict-Transport-Security field on every response. It offers `ready` (the fast lane's
    question) where `handler` does, with the same answers, marked the same way."""

    def __init__(self, handler, hsts_seconds: int = 0):
        self.handler = handler
        self.streams_bodies = getattr(handler, "streams_bodies", False)
        self.hsts = b"Strict-Transport-Security: max-age=%d\r\n" % hsts_seconds \
            if hsts_seconds else None
        if hasattr(handler, "ready"):
            self.ready = self._ready
            self.ready_hits = getattr(handler, "ready_hits", None)

    def __call__(self, request):
        request.scheme = "https"
        response = self.handler(request)
        hsts = self.hsts
        if hsts is None:
            return response
        if not isinstance(response, Future):
            return response.with_fields(hsts)
        marked = Future()

        def done(future):
            try:
                marked.set_result(future.result().with_fields(hsts))
            except Exception as error:
                marked.set_exception(error)

        response.add_done_callback(done)
        return marked

    def _ready(self, target, accept):
        found = self.handler.ready(target, accept)
        if found is None or self.hsts is None:
            return found
        response, until = found
        return response.with_fields(self.hsts), until


def redirect_to_https(port: int):
    """A handler answering every request with 301 to the same target on the HTTPS `port`."""
    def redirect(request):
        host = request.header(b"host", b"").decode("latin-1")
        matched = _HOST.fullmatch(host)
        if matched is None:
            return error_response(400, "no valid Host to redirect to HTTPS")
        authority = matched.group(1) if port == 443 else f"{matched.group(1)}:{port}"
        target = request.target if request.target.startswith("/") else "/"
        location = f"https://{authority}{target}"
        return Response(301, [("Location", location),
                              ("Content-Type", "text/plain; charset=utf-8")],
                        f"Moved to {location}\n".encode("latin-1"))
    return redirect
