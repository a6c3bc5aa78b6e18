"""Runnable examples of reactor's App and WSGI adapter (see each module's docstring)."""
