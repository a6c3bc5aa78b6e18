"""reactor: a fast, strict and safe HTTP/1.1 server on one selectors loop.

The names an application imports are here: `from reactor import App, Response`. The layers
below (http, net, static, apps, ops) are the server's own; see README.md, "How it is built".
"""

from ._version import __version__
from .apps.app import App, form, html, redirect
from .http.errors import HTTPError
from .http.request import Request
from .http.response import FileSlice, Response

__all__ = ["__version__", "App", "FileSlice", "HTTPError", "Request", "Response", "form", "html", "redirect"]
