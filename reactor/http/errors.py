"""Exceptions that carry the HTTP status they become. Imports nothing."""


class HTTPError(Exception):
    """A request that cannot be served; `status` is the response it gets."""

    status = 400

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ParseError(HTTPError):
    """The request bytes break HTTP/1.1 syntax or a limit. Framing is now in doubt, so the
    connection is closed after the error response."""


class ConfigError(Exception):
    """A bad command line or configuration; the CLI prints it as one line."""
