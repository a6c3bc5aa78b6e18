"""Static file serving: StaticFiles is the handler; the modules beside it are its parts."""

from .handler import StaticFiles

__all__ = ["StaticFiles"]
