"""Fields a site adds to what it serves: `--header` rules scoped to paths, and CORS.

Pure: parses rule text and decides fields from a path and request field values; imports
nothing of reactor beyond errors, and no I/O.

- A header rule is `Name: value`, or `SCOPE Name: value` where SCOPE starts with `/` or `*`
  (a field name never does). A SCOPE with a glob character (`*?[`) matches the whole path
  with fnmatch, whose `*` crosses slashes (`*.js` is every JavaScript file); any other SCOPE
  is a path prefix (`/assets/`). Paths are decoded and start with '/'.
- CORS with `*` allows every origin and never sends credentials (the Fetch standard refuses
  a wildcard with credentials anyway). With a list of origins, an allowed Origin is echoed
  with `Access-Control-Allow-Credentials: true`, and every response says `Vary: Origin`,
  whether or not it echoed, so a shared cache never hands one origin's answer to another.
- A preflight (OPTIONS with Origin and Access-Control-Request-Method) gets the methods the
  handler allows, the request headers it asked for (echoed when they are a clean token
  list), and a max age of two hours, Chromium's cap.
"""

import re
from fnmatch import fnmatchcase

from ..http.errors import ConfigError

# Fields the server itself frames or stamps (Response's contract), so no rule may set them.
_RESERVED = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive",
                       "upgrade", "trailer", "date", "server", "te"))

_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN = re.compile(_TCHARS + r"\Z")
_TOKEN_LIST = re.compile((_TCHARS + r"(?:[ \t]*,[ \t]*" + _TCHARS + r")*\Z").encode())
_ORIGIN = re.compile(r"https?://[^/\s?#]+\Z")

PREFLIGHT_MAX_AGE = "7200"


class HeaderRule:
    """One `--header`: the field and the paths it applies to (None: every path)."""

    __slots__ = ("scope", "name", "value")

    def __init__(self, name: str, value: str, scope=None):
        self.name = name
        self.value = value
        self.scope = scope

    @classmethod
    def parse(cls, text: str) -> "HeaderRule":
        scope = None
        text = text.strip()
        if text[:1] in ("/", "*"):
            scope, _, text = text.partition(" ")
        name, colon, value = text.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _TOKEN.match(name):
            raise ConfigError(f"--header {text!r} is not 'Name: value' (optionally after a "
                              f"/prefix or *glob)")
        if name.lower() in _RESERVED:
            raise ConfigError(f"--header cannot set {name}: the server writes it itself")
        if any(ch in value for ch in "\r\n\0"):
            raise ConfigError(f"--header {name} has a line break in its value")
        return cls(name, value, scope)

    def applies(self, path: str) -> bool:
        scope = self.scope
        if scope is None:
            return True
        if "*" in scope or "?" in scope or "[" in scope:
            return fnmatchcase(path, scope)
        return path.startswith(scope)


class Cors:
    """The CORS policy of `--cors [ORIGINS]`: '*' or origins separated by commas or spaces."""

    def __init__(self, origins: str = "*"):
        names = [name.rstrip("/") for name in re.split(r"[\s,]+", origins.strip()) if name]
        if not names:
            raise ConfigError("--cors needs '*' or at least one origin")
        self.wildcard = "*" in names
        if self.wildcard and len(names) > 1:
            raise ConfigError("--cors takes '*' or a list of origins, not both")
        for name in names:
            if name != "*" and not _ORIGIN.match(name):
                raise ConfigError(f"--cors origin {name!r} is not scheme://host[:port]")
        self.origins = frozenset(name.lower().encode("latin-1") for name in names)

    @property
    def echoes(self) -> bool:
        """Whether answers depend on the request's Origin (so they cannot be shared)."""
        return not self.wildcard

    def static_fields(self) -> list:
        """Fields every response carries, whatever the request's Origin."""
        if self.wildcard:
            return [("Access-Control-Allow-Origin", "*")]
        return [("Vary", "Origin")]

    def echo_fields(self, origin) -> bytes:
        """The rendered fields that allow `origin` (bytes or None): b'' when it is not allowed
        or the policy is a wildcard (whose fields are static)."""
        if self.wildcard or origin is None or origin.lower() not in self.origins:
            return b""
        return (b"Access-Control-Allow-Origin: %s\r\nAccess-Control-Allow-Credentials: true\r\n"
                % origin)

    def preflight_fields(self, origin, allow: str, request_headers) -> list:
        """The fields of a 204 answering a preflight; only Vary when `origin` is refused."""
        fields = [("Vary", "Origin, Access-Control-Request-Headers")]
        if self.wildcard:
            fields.append(("Access-Control-Allow-Origin", "*"))
        elif origin is not None and origin.lower() in self.origins:
            fields += [("Access-Control-Allow-Origin", origin),
                       ("Access-Control-Allow-Credentials", "true")]
        else:
            return fields
        fields += [("Access-Control-Allow-Methods", allow),
                   ("Access-Control-Max-Age", PREFLIGHT_MAX_AGE)]
        if request_headers and _TOKEN_LIST.match(request_headers):
            fields.append(("Access-Control-Allow-Headers", request_headers))
        return fields
