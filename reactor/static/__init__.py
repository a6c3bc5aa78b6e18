"""Static file serving: StaticFiles is the handler; the modules beside it are its parts."""

from .handler import StaticFiles, options_from

__all__ = ["StaticFiles", "options_from"]
