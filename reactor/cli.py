"""The command line: argv → Config, shaped like `python -m http.server`.

The only place that prints usage errors; every error is one line and a non-zero exit.
Opens nothing itself: supervisor.serve does the work.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

from ._version import __version__
from .config import Config
from .http.errors import ConfigError
from .static.site import Cors, HeaderRule


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"reactor: {message} (see --help)\n")


def _seconds(text: str) -> float:
    value = _seconds_or_zero(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _seconds_or_zero(text: str) -> float:
    value = float(text.rstrip("s"))
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds")
    return value


def _workers(text: str) -> int:
    if text == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return int(text)


def _error_page(text: str) -> tuple:
    status, eq, path = text.partition("=")
    if not eq or not status.isdigit() or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not STATUS=FILE (like 404=missing.html)")
    return int(status), path


def build_parser() -> argparse.ArgumentParser:
    p = _OneLineParser(prog="python -m reactor",
                       description="Serve a directory (or an app) over HTTP/1.1.")
    p.add_argument("port_arg", nargs="?", type=int, metavar="port",
                   help="port to listen on (default 8000)")
    p.add_argument("-p", "--port", type=int, help="port to listen on (same as the positional)")
    p.add_argument("-b", "--bind", metavar="ADDR", default="",
                   help="address to bind (default: all interfaces)")
    p.add_argument("-d", "--directory", "--root", dest="root", metavar="DIR",
                   help="directory to serve (default: the demo site in a checkout, else .)")
    p.add_argument("--unix", metavar="PATH", help="listen on a unix socket instead of TCP")
    p.add_argument("--fd", type=int, metavar="N",
                   help="serve the listening socket inherited as file descriptor N "
                        "(systemd's LISTEN_FDS are used without it)")
    p.add_argument("--protocol", help=argparse.SUPPRESS)   # http.server's; always HTTP/1.1 here
    p.add_argument("--no-access-log", dest="access_log", action="store_false",
                   help="do not log each request")
    p.add_argument("--access-log", dest="access_log_file", metavar="FILE",
                   help="append the access log to FILE instead of stderr (reopened on SIGUSR1)")
    p.add_argument("--log-format", choices=("common", "combined", "json"), default="common",
                   help="access log format (default common)")
    p.add_argument("--no-fast-lane", dest="fast_lane", action="store_false",
                   help="answer every request through the full path (the same bytes, slower; "
                        "for comparison)")
    p.add_argument("--no-listing", dest="listing", action="store_false",
                   help="answer 404 for directories without an index file")
    p.add_argument("--hidden", action="store_true", help="serve dotfiles")
    p.add_argument("--no-symlinks", dest="symlinks", action="store_false",
                   help="refuse (404) any path with a symlink in it, even one inside the root")
    p.add_argument("--index", action="append", metavar="NAME",
                   help="index file name for directories (repeatable; default index.html)")
    p.add_argument("--cache-control", metavar="VALUE", help="Cache-Control for file responses")
    p.add_argument("--no-precompressed", dest="precompressed", action="store_false",
                   help="never serve name.br / name.zst / name.gz in place of name")
    p.add_argument("--no-compress", dest="compress", action="store_false",
                   help="never compress on the fly (sidecar files are still served)")
    p.add_argument("--compress-cache", metavar="DIR",
                   help="keep large compressed results in DIR (default: a temporary directory "
                        "removed at exit)")
    p.add_argument("--header", action="append", metavar="'[SCOPE] Name: value'",
                   help="add a field to static responses (repeatable); SCOPE is a /prefix "
                        "or a *glob of paths")
    p.add_argument("--cors", nargs="?", const="*", metavar="ORIGINS",
                   help="allow cross-origin requests from ORIGINS (default *), with preflight")
    p.add_argument("--spa", nargs="?", const="index.html", metavar="FILE",
                   help="answer navigations to paths that exist nowhere with FILE "
                        "(default index.html)")
    p.add_argument("--error-page", action="append", type=_error_page, metavar="STATUS=FILE",
                   help="the page sent with STATUS (default: 404.html in the root)")
    p.add_argument("--clean-urls", action="store_true",
                   help="serve /about from about.html; redirect /about.html to /about")
    p.add_argument("--app", metavar="MODULE:ATTR", help="serve a reactor App")
    p.add_argument("--wsgi", metavar="MODULE:ATTR", help="serve a WSGI application")
    p.add_argument("--threads", type=int, default=8, help="WSGI worker threads (default 8)")
    p.add_argument("--asgi", metavar="MODULE:ATTR",
                   help="serve an ASGI 3 application (FastAPI, Starlette, ...); with --root, "
                        "files there are served first and the application gets the rest")
    p.add_argument("--factory", action="store_true",
                   help="--asgi names a function that returns the application")
    p.add_argument("--loop", dest="asgi_loop", choices=("auto", "asyncio", "uvloop"),
                   default="auto", help="the asyncio loop of --asgi (default: uvloop when "
                                        "installed)")
    p.add_argument("--lifespan", choices=("auto", "on", "off"), default="auto",
                   help="the ASGI lifespan protocol (default auto: used when the app speaks it)")
    p.add_argument("--root-path", default="", metavar="PATH",
                   help="the ASGI root_path: the prefix a proxy mounts the application under")
    p.add_argument("--ws-max-size", type=int, metavar="BYTES",
                   help="largest WebSocket message (default 16 MiB; larger ones close with 1009)")
    p.add_argument("--ws-ping-interval", type=float, metavar="SECONDS",
                   help="ping idle WebSockets this often, closing those that miss a pong "
                        "(default 20; 0: never)")
    p.add_argument("--workers", type=_workers, default=1, metavar="N|auto",
                   help="worker processes sharing the listening socket (default 1)")
    p.add_argument("--reuse-port", action="store_true",
                   help="each worker binds its own SO_REUSEPORT socket instead of sharing one "
                        "(connections queued on a worker that exits are reset)")
    p.add_argument("--pid-file", metavar="PATH",
                   help="write the pid of the serving (or supervising) process here")
    p.add_argument("--proxy-protocol", choices=("v1", "v2", "auto"),
                   help="connections from --trusted-proxy begin with a PROXY protocol header "
                        "naming the client")
    p.add_argument("--trusted-proxy", action="append", metavar="ADDR[,NET]",
                   help="balancers that send the PROXY header (addresses or networks)")
    p.add_argument("--forwarded-allow-ips", action="append", metavar="ADDR[,NET]",
                   help="proxies whose Forwarded / X-Forwarded-For / X-Forwarded-Proto are "
                        "believed ('*' for any)")
    p.add_argument("--health", metavar="PATH",
                   help="answer PATH with 200 while serving and 503 while draining")
    p.add_argument("--metrics", metavar="PATH",
                   help="Prometheus metrics at PATH (e.g. /metrics), summed over the workers")
    p.add_argument("--metrics-allow", action="append", metavar="ADDR[,NET]",
                   help="clients that may read --metrics (default 127.0.0.1,::1)")
    p.add_argument("--max-connections", type=int, metavar="N")
    p.add_argument("--max-body", type=int, metavar="BYTES")
    p.add_argument("--max-keepalive-requests", type=int, metavar="N")
    p.add_argument("--header-timeout", type=_seconds, metavar="SECONDS")
    p.add_argument("--body-timeout", type=_seconds, metavar="SECONDS")
    p.add_argument("--body-min-rate", type=int, metavar="BYTES/S",
                   help="a request body must average this rate after a 10 s grace (default 500)")
    p.add_argument("--keepalive-timeout", type=_seconds, metavar="SECONDS")
    p.add_argument("--send-timeout", type=_seconds, metavar="SECONDS")
    p.add_argument("--shutdown-grace", type=_seconds, metavar="SECONDS",
                   help="longest a draining worker (a stop, a restart) finishes what it has "
                        "under way before closing the rest (default 10)")
    p.add_argument("--defer-accept", type=_seconds_or_zero, metavar="SECONDS",
                   help="a plain connection is taken once its client has sent something, or "
                        "after this long (TCP_DEFER_ACCEPT, Linux; default 1, 0: at once)")
    p.add_argument("--handshake-timeout", type=_seconds, metavar="SECONDS",
                   help="time a client has to complete its TLS handshake (default 10)")
    p.add_argument("--tls-cert", action="append", metavar="FILE",
                   help="serve HTTPS with this PEM certificate (chain included); repeatable, "
                        "the client's SNI name picks one, the first is the default")
    p.add_argument("--tls-key", action="append", metavar="FILE",
                   help="the private key of the --tls-cert in the same position "
                        "(default: the key is in the certificate file)")
    p.add_argument("--tls-password-file", metavar="FILE",
                   help="file whose first line is the password of encrypted keys")
    p.add_argument("--tls-port", type=int, metavar="N",
                   help="HTTPS on port N, plain HTTP on the main port "
                        "(default: the main port speaks HTTPS)")
    p.add_argument("--redirect-https", action="store_true",
                   help="the plain port answers every request with 301 to its HTTPS URL")
    p.add_argument("--hsts", type=int, metavar="SECONDS", default=0,
                   help="add Strict-Transport-Security: max-age=SECONDS to HTTPS responses")
    p.add_argument("--http2", action=argparse.BooleanOptionalAction, default=True,
                   help="HTTP/2: h2 by ALPN on HTTPS, h2c with prior knowledge on plain ports "
                        "(default on where an engine is installed)")
    p.add_argument("--http2-engine", choices=("nghttp2", "h2"), default="",
                   help="the HTTP/2 engine (default: libnghttp2, else the h2 package; h2 is "
                        "far slower, for comparison)")
    p.add_argument("--version", action="store_true",
                   help="print the version, the parser backend and the HTTP/2 engine")
    return p


def default_root() -> str:
    """The demo site when run from a checkout of this project, else the current directory."""
    checkout = Path(__file__).resolve().parent.parent
    if Path.cwd().resolve() == checkout and (checkout / "static" / "index.html").is_file():
        return "static"
    return "."


_LIMIT_FLAGS = ("max_connections", "max_body", "max_keepalive_requests", "header_timeout",
                "body_timeout", "body_min_rate", "keepalive_timeout", "send_timeout",
                "shutdown_grace", "defer_accept", "handshake_timeout", "ws_max_size",
                "ws_ping_interval")


def _given(name, values) -> dict:
    """{name: tuple(values)} when the flag was given, so that Config keeps its default."""
    return {name: tuple(values)} if values else {}


def config_from_args(args) -> Config:
    port = args.port if args.port is not None else args.port_arg
    overrides = {name: getattr(args, name) for name in _LIMIT_FLAGS
                 if getattr(args, name) is not None}
    config = Config(
        root=args.root or default_root(), host=args.bind,
        port=8000 if port is None else port, unix=args.unix, access_log=args.access_log,
        access_log_file=args.access_log_file, log_format=args.log_format,
        listing=args.listing, hidden=args.hidden, symlinks=args.symlinks, index=tuple(args.index or ("index.html",)),
        cache_control=args.cache_control, precompressed=args.precompressed, app=args.app,
        wsgi=args.wsgi, threads=args.threads, asgi=args.asgi, asgi_factory=args.factory,
        asgi_files=bool(args.asgi and args.root), asgi_loop=args.asgi_loop,
        lifespan=args.lifespan, root_path=args.root_path, workers=args.workers,
        reuse_port=args.reuse_port, pid_file=args.pid_file, fd=args.fd,
        proxy_protocol=args.proxy_protocol, trusted_proxies=tuple(args.trusted_proxy or ()),
        forwarded_allow_ips=tuple(args.forwarded_allow_ips or ()), health=args.health,
        metrics=args.metrics, **_given("metrics_allow", args.metrics_allow),
        headers=tuple(args.header or ()), cors=args.cors, spa=args.spa,
        error_pages=tuple(args.error_page or ()), clean_urls=args.clean_urls,
        compress=args.compress, compress_cache=args.compress_cache,
        tls_cert=tuple(args.tls_cert or ()), tls_key=tuple(args.tls_key or ()),
        tls_password_file=args.tls_password_file, tls_port=args.tls_port,
        redirect_https=args.redirect_https, hsts=args.hsts, fast_lane=args.fast_lane,
        http2=args.http2, http2_engine=args.http2_engine, **overrides,
    ).checked()
    _check_site_rules(config)
    return config


def _check_site_rules(config):
    """Parse --header and --cors here, so a mistake is one line before anything starts."""
    for text in config.headers:
        HeaderRule.parse(text)
    if config.cors is not None:
        Cors(config.cors)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.version:
        from .http.h2 import ENGINE
        from .http.parser import BACKEND
        print(f"reactor {__version__} (parser: {BACKEND}, http2: {ENGINE or 'none'}, "
              f"Python {sys.version.split()[0]})")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        config = config_from_args(args)
        if config.http2 and not config.http2_engine:
            from .http.h2 import ENGINE, WHY_NOT
            if ENGINE is None:
                print(f"reactor: HTTP/1.1 only: no HTTP/2 engine ({WHY_NOT}; install "
                      f"libnghttp2's headers and rebuild, or pip install 'reactor[http2]')",
                      file=sys.stderr)
        from .ops.serve import serve
        serve(config, ready=lambda line: print(line, flush=True), argv=argv)
    except ConfigError as error:
        print(f"reactor: {error}", file=sys.stderr)
        return 1
    return 0
