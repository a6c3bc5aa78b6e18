"""reactor: a fast, strict and safe HTTP/1.1 server on one selectors loop.

The names an application imports are here: `from reactor import App, Response`. The layers
below (http, net, static, apps, ops) are the server's own; see README.md, "How it is built".
"""

__version__ = "0.1.0"

from .apps.app import App, form, html, redirect  # noqa: E402  (they need __version__ first)
from .http.errors import HTTPError  # noqa: E402
from .http.request import Request  # noqa: E402
from .http.response import FileSlice, Response  # noqa: E402

__all__ = ["App", "FileSlice", "HTTPError", "Request", "Response", "form", "html", "redirect"]
