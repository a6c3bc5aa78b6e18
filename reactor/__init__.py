"""reactor: a fast, strict and safe HTTP/1.1 server on one selectors loop."""

__version__ = "0.1.0"
