"""The release: one place, read by the package, the Server header and the build."""

__version__ = "0.1.0"
