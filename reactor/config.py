"""One frozen Config for a server run: every knob, its default and its check.

Imports only limits and errors (and reactor.http.h2, to check that an engine asked for is there). The CLI builds it from argv; tests and embedders build it
directly. Nothing here opens sockets or files beyond checking that the root exists.
"""

import importlib.util
import ipaddress
import os
from dataclasses import dataclass

from .http import limits
from .http.errors import ConfigError


@dataclass(frozen=True)
class Config:
    root: str = "."
    host: str = ""                     # "" = all interfaces, as http.server does
    port: int = 8000
    unix: str | None = None            # listen on a unix socket instead of TCP
    access_log: bool = True
    access_log_file: str | None = None  # the access log's file (else stderr)
    log_format: str = "common"         # common, combined or json
    listing: bool = True               # directory listing where there is no index file
    hidden: bool = False               # serve dotfiles
    symlinks: bool = True              # follow symlinks that stay inside the root
    index: tuple = ("index.html",)
    cache_control: str | None = None   # Cache-Control header on file responses
    precompressed: bool = True         # serve name.br / name.gz beside name when accepted
    headers: tuple = ()                # --header rules: "Name: value" or "SCOPE Name: value"
    cors: str | None = None            # "*" or the origins CORS allows
    spa: str | None = None             # file answering navigations to paths that exist nowhere
    error_pages: tuple = ()            # (status, file under the root); default 404.html
    clean_urls: bool = False           # /about from about.html; /about.html redirects
    compress: bool = True              # compress text files on the fly, once per version
    compress_cache: str | None = None  # directory for large compressed results (else a temp one)
    app: str | None = None             # "module:attr" of an App to serve
    wsgi: str | None = None            # "module:attr" of a WSGI application
    threads: int = 8                   # WSGI worker threads
    asgi: str | None = None            # "module:attr" of an ASGI application
    asgi_factory: bool = False         # call that attribute to get the application
    asgi_files: bool = False           # with asgi: files under `root` first, the app for the rest
    asgi_loop: str = "auto"            # asyncio loop for ASGI: auto (uvloop if installed), asyncio, uvloop
    lifespan: str = "auto"             # ASGI lifespan: auto (used if the app speaks it), on, off
    root_path: str = ""                # ASGI root_path: the prefix the app is mounted under
    ws_max_size: int = limits.WS_MAX_SIZE
    ws_ping_interval: float = limits.WS_PING_INTERVAL   # 0: no pings
    workers: int = 1
    reuse_port: bool = False           # a SO_REUSEPORT socket per worker instead of one shared
    pid_file: str | None = None
    max_request_line: int = limits.MAX_REQUEST_LINE
    max_head: int = limits.MAX_HEAD
    max_headers: int = limits.MAX_HEADERS
    max_body: int = limits.MAX_BODY
    max_pipeline: int = limits.MAX_PIPELINE
    max_connections: int = limits.MAX_CONNECTIONS
    max_keepalive_requests: int = limits.MAX_KEEPALIVE_REQUESTS
    header_timeout: float = limits.HEADER_TIMEOUT
    body_timeout: float = limits.BODY_TIMEOUT
    body_grace: float = limits.BODY_GRACE
    body_min_rate: int = limits.BODY_MIN_RATE
    keepalive_timeout: float = limits.KEEPALIVE_TIMEOUT
    send_timeout: float = limits.SEND_TIMEOUT
    shutdown_grace: float = limits.SHUTDOWN_GRACE
    defer_accept: float = limits.DEFER_ACCEPT
    fd: int | None = None              # an inherited listening socket (--fd)
    proxy_protocol: str | None = None  # "v1", "v2" or "auto": a PROXY header from trusted peers
    trusted_proxies: tuple = ()        # addresses/networks that send PROXY headers
    forwarded_allow_ips: tuple = ()    # addresses/networks whose Forwarded fields are believed
    health: str | None = None          # path answering 200 while serving, 503 while draining
    metrics: str | None = None         # path of the Prometheus metrics
    metrics_allow: tuple = ("127.0.0.1", "::1")   # who may read them (else the path is not there)
    tls_cert: tuple = ()               # PEM certificate files (chain included); first = default
    tls_key: tuple = ()                # their keys, in the same order (missing: in the cert file)
    tls_password_file: str | None = None   # first line: the password of encrypted keys
    tls_port: int | None = None        # HTTPS on this port, plain HTTP on `port`; None: `port` is HTTPS
    redirect_https: bool = False       # the plain port answers 301 to the HTTPS URL
    hsts: int = 0                      # Strict-Transport-Security max-age on HTTPS responses
    handshake_timeout: float = limits.HANDSHAKE_TIMEOUT
    http2: bool = True                 # h2 by ALPN on TLS, h2c with prior knowledge on plain ports
    http2_engine: str = ""             # "nghttp2" or "h2"; "" takes the best one installed

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)
    fast_lane: bool = True             # plain requests for ready answers skip the full path

    def checked(self) -> "Config":
        """Self, after the checks that need no network; raises ConfigError with one line."""
        if not self.unix and not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not between 0 and 65535")
        if (not (self.app or self.wsgi or self.asgi) or self.asgi_files) \
                and not os.path.isdir(self.root):
            what = "does not exist" if not os.path.exists(self.root) else "is not a directory"
            raise ConfigError(f"root {self.root!r} {what}")
        for what, rel in ((("--spa", self.spa),) if self.spa else ()) + tuple(
                (f"--error-page {status}", rel) for status, rel in self.error_pages):
            if not rel or ".." in rel.split("/") or "\0" in rel:
                raise ConfigError(f"{what} wants a file under the root, not {rel!r}")
        for status, _ in self.error_pages:
            if not 400 <= status <= 599:
                raise ConfigError(f"--error-page {status}: not an error status (400-599)")
        if self.log_format not in ("common", "combined", "json"):
            raise ConfigError(f"--log-format {self.log_format!r}: choose common, combined or json")
        if self.access_log_file is not None:
            folder = os.path.dirname(os.path.abspath(self.access_log_file))
            if not os.path.isdir(folder) or os.path.isdir(self.access_log_file):
                raise ConfigError(f"--access-log {self.access_log_file!r}: no such directory "
                                  f"to write it in" if not os.path.isdir(folder)
                                  else f"--access-log {self.access_log_file!r} is a directory")
        if self.compress_cache is not None and not os.path.isdir(self.compress_cache):
            raise ConfigError(f"--compress-cache {self.compress_cache!r} is not a directory")
        self._check_tls()
        self._check_http2()
        if self.workers < 1:
            raise ConfigError("--workers must be at least 1")
        if self.threads < 1:
            raise ConfigError("--threads must be at least 1")
        if sum(map(bool, (self.app, self.wsgi, self.asgi))) > 1:
            # One handler per server: an ASGI application gets each request at its head with
            # its body to follow, an App or WSGI one with its body read whole.
            raise ConfigError("--app, --wsgi and --asgi cannot be combined: choose one "
                              "(--root serves files beside --asgi)")
        if self.asgi_loop not in ("auto", "asyncio", "uvloop"):
            raise ConfigError(f"--loop {self.asgi_loop!r}: choose auto, asyncio or uvloop")
        if self.asgi_loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise ConfigError("--loop uvloop: uvloop is not installed (pip install uvloop)")
        if self.lifespan not in ("auto", "on", "off"):
            raise ConfigError(f"--lifespan {self.lifespan!r}: choose auto, on or off")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ConfigError(f"--root-path {self.root_path!r} must start with / and not end with it")
        if self.ws_max_size < 1 or self.ws_ping_interval < 0:
            raise ConfigError("--ws-max-size must be at least 1 and --ws-ping-interval 0 or more")
        for name in ("max_request_line", "max_head", "max_headers", "max_connections",
                     "max_pipeline", "max_keepalive_requests", "body_min_rate"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1")
        if self.proxy_protocol is not None:
            if self.proxy_protocol not in ("v1", "v2", "auto"):
                raise ConfigError(f"--proxy-protocol {self.proxy_protocol!r} is not v1, v2 or auto")
            if not self.trusted_proxies:
                raise ConfigError("--proxy-protocol needs --trusted-proxy: the addresses of "
                                  "the balancers that send the header")
        for flag, specs in (("--trusted-proxy", self.trusted_proxies),
                            ("--forwarded-allow-ips", self.forwarded_allow_ips),
                            ("--metrics-allow", self.metrics_allow)):
            _check_networks(flag, specs)
        for flag, path in (("--health", self.health), ("--metrics", self.metrics)):
            if path is not None and not path.startswith("/"):
                raise ConfigError(f"{flag} {path!r} must be a path starting with /")
        return self

    def _check_tls(self):
        if len(self.tls_key) > len(self.tls_cert):
            raise ConfigError("--tls-key given without its --tls-cert")
        if not self.tls and (self.tls_port is not None or self.redirect_https or self.hsts
                             or self.tls_password_file):
            raise ConfigError("the TLS options need --tls-cert")
        if self.tls_port is not None and not 0 <= self.tls_port <= 65535:
            raise ConfigError(f"--tls-port {self.tls_port} is not between 0 and 65535")
        if self.redirect_https and self.tls_port is None:
            raise ConfigError("--redirect-https needs --tls-port (the plain port to redirect from)")
        if self.hsts < 0:
            raise ConfigError("--hsts must be a number of seconds, 0 or more")


    def _check_http2(self):
        if not self.http2_engine:
            return
        from .http import h2
        if self.http2_engine not in h2.ENGINES:
            raise ConfigError(f"--http2-engine {self.http2_engine!r}: choose "
                              f"{' or '.join(h2.ENGINES)}")
        try:
            h2.engine(self.http2_engine)
        except ImportError as error:
            raise ConfigError(f"--http2-engine {self.http2_engine}: not available "
                              f"({error})") from None


def _check_networks(flag, specs):
    for spec in specs:
        for item in filter(None, (part.strip() for part in spec.split(","))):
            if item in ("*", "unix"):
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(f"{flag} {item!r} is not an address or network") from None
