"""What the server bench runs against: the file tree, the peers, and their processes.

Owns: building the fixed tree, installing missing tools (apt for wrk and nginx-light, pip for
aiohttp), how each server is started (pinned with taskset), the check that it serves the tree
correctly before it is measured, stopping it, and reading its resident memory from /proc.
Imports nothing of reactor: reactor is started as a command, like every other peer.
"""

import hashlib
import http.client
import os
import random
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# The fixed tree: (URL path, size in bytes). Contents are deterministic so every run serves the
# same bytes and the check below can compare them.
SMALL = ("/index.html", 1024)
MEDIUM = ("/image.png", 100 * 1024)
LARGE = ("/big.bin", 10 * 1024 * 1024)
# A minified-looking JavaScript bundle, for compression on the fly.
SCRIPT = ("/app.js", 50 * 1024)
# A page as a browser fetches it over HTTP/2: 60 assets of 1 to 100 KiB (sizes spread as a
# real page's are: many small, a few large).
PAGE = tuple((f"/page/asset-{i:02d}.bin", 1024 + (i * i * 1709) % (99 * 1024)) for i in range(60))
FILES = (SMALL, MEDIUM, LARGE, SCRIPT) + PAGE

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


class Unavailable(Exception):
    """A server that cannot be measured; the message is the reason shown in the table."""


# -- the tree ------------------------------------------------------------------------------------

def small_html() -> bytes:
    head = b"<!doctype html>\n<html><head><title>reactor bench</title></head><body>\n<p>"
    tail = b"</p>\n</body></html>\n"
    filler = b"The quick brown fox jumps over the lazy dog. "
    need = SMALL[1] - len(head) - len(tail)
    return head + (filler * (need // len(filler) + 1))[:need] + tail


def script_js(rnd) -> bytes:
    """Code-like text that compresses about as well as a real minified bundle (to a third)."""
    words = ("function", "return", "const", "let", "var", "if", "else", "this", "props",
             "state", "value", "length", "push", "map", "filter", "then", "await", "null",
             "undefined", "true", "false", "document", "window", "e", "t", "n", "r", "i")
    marks = ("(", ")", "{", "}", "=", ".", ",", ";", "=>", "&&", "||", "!", "[", "]", "+")
    out, size = [], 0
    while size < SCRIPT[1]:
        piece = rnd.choice(words) + rnd.choice(marks)
        if rnd.random() < 0.2:
            piece += "%s%d" % (rnd.choice("abcdefghijklmnopqrstuvwxyz"), rnd.randrange(100))
        out.append(piece)
        size += len(piece)
    return "".join(out).encode()[:SCRIPT[1]]


def build_tree(root: str) -> dict:
    """Write the files under root; return {url path: sha256 hex} for the serving check."""
    rnd = random.Random(20240601)
    contents = {
        SMALL[0]: small_html(),
        MEDIUM[0]: b"\x89PNG\r\n\x1a\n" + rnd.randbytes(MEDIUM[1] - 8),
        LARGE[0]: rnd.randbytes(LARGE[1]),
        SCRIPT[0]: script_js(rnd),
        **{path: rnd.randbytes(size) for path, size in PAGE},
    }
    os.mkdir(os.path.join(root, "page"))
    digests = {}
    for path, data in contents.items():
        with open(os.path.join(root, path.lstrip("/")), "wb") as f:
            f.write(data)
        digests[path] = hashlib.sha256(data).hexdigest()
    # nginx workers drop root privileges to nobody; mkdtemp's 0700 would hide the tree from them.
    os.chmod(os.path.dirname(root), 0o755)
    os.chmod(root, 0o755)
    os.chmod(os.path.join(root, "page"), 0o755)
    for path in contents:
        os.chmod(os.path.join(root, path.lstrip("/")), 0o644)
    return digests


# -- installing what is missing ------------------------------------------------------------------

_apt_updated = False


def _apt_install(package: str) -> str:
    """Install a Debian package; return '' on success or a one-line reason."""
    global _apt_updated
    if shutil.which("apt-get") is None:
        return "apt-get not found"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for attempt in range(2):
        if attempt == 1 or not _apt_updated:
            # A fresh machine's package lists may be missing or stale; refresh once, then retry.
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=300)
            _apt_updated = True
        done = subprocess.run(["apt-get", "install", "-y", "-qq", package], env=env,
                              capture_output=True, text=True, timeout=600)
        if done.returncode == 0:
            return ""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return f"apt-get install {package} failed: {lines[-1] if lines else done.returncode}"


def which(command: str):
    """shutil.which that also looks in the sbin directories, where Debian puts nginx."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which(command, path=path)


def ensure_command(command: str, package: str) -> str:
    """Make `command` available, installing `package` if needed; '' or a reason."""
    if which(command):
        return ""
    print(f"installing {package} ...", flush=True)
    reason = _apt_install(package)
    if reason:
        return reason
    return "" if which(command) else f"{package} installed but {command} not found"


def ensure_module(module: str, package: str) -> str:
    """Make a Python module importable by this interpreter; '' or a reason."""
    probe = [sys.executable, "-c", f"import {module}"]
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return ""
    print(f"installing {package} ...", flush=True)
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", package],
                          capture_output=True, text=True, timeout=600)
    if subprocess.run(probe, capture_output=True).returncode == 0:
        return ""
    lines = (done.stderr or done.stdout).strip().splitlines()
    return f"pip install {package} failed: {lines[-1] if lines else done.returncode}"


# -- the peers -----------------------------------------------------------------------------------

@dataclass
class Spec:
    name: str
    label: str
    # (port, tree, workdir) -> argv, run behind `taskset -c CPU`.
    argv: object
    env: dict = field(default_factory=dict)
    # URL paths it is checked on; the bare loop answers one fixed body only.
    paths: tuple = tuple(p for p, _ in FILES)
    # Scenario keys it sits out, with the reason shown in the table.
    skip: dict = field(default_factory=dict)
    cwd: str = REPO
    tls: bool = False   # speaks HTTPS, with the certificate of tls_files()
    http2: bool = False   # measured over HTTP/2 (h2load), checked with curl over HTTP/2


def _reactor_argv(port, tree, workdir):
    return _reactor_command(port, tree) + ["--no-access-log"]


def _reactor_full_path_argv(port, tree, workdir):
    return _reactor_argv(port, tree, workdir) + ["--no-fast-lane"]


def _reactor_command(port, tree):
    return [sys.executable, "-m", "reactor", "--root", tree, "--port", str(port),
            "--bind", "127.0.0.1"]


def _reactor_logging_argv(port, tree, workdir):
    """With the access log on, in the combined format (nginx's default) to a file in workdir."""
    return _reactor_command(port, tree) + [
        "--access-log", os.path.join(workdir, f"reactor-access-{port}.log"),
        "--log-format", "combined"]


def tls_files(workdir: str) -> tuple:
    """(certificate, key) that every HTTPS server of the run uses: ECDSA P-256, the kind a
    public CA issues by default, made once per run."""
    cert, key = os.path.join(workdir, "tls-cert.pem"), os.path.join(workdir, "tls-key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj",
                        "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def _reactor_tls_argv(port, tree, workdir):
    cert, key = tls_files(workdir)
    return _reactor_argv(port, tree, workdir) + ["--tls-cert", cert, "--tls-key", key]


# h2load keeps its connections for the whole run and does not reconnect after a GOAWAY, so
# neither server may end a connection after some number of requests (reactor's default is
# 10,000, nginx's keepalive_requests 1,000): those requests would count as failures.
UNCAPPED = 100_000_000
NGINX_UNCAPPED = f"    keepalive_requests {UNCAPPED};\n"


def _reactor_h2_argv(port, tree, workdir):
    return _reactor_argv(port, tree, workdir) + ["--max-keepalive-requests", str(UNCAPPED)]


def _reactor_h2_tls_argv(port, tree, workdir):
    return _reactor_tls_argv(port, tree, workdir) + ["--max-keepalive-requests", str(UNCAPPED)]


def _reactor_h2py_argv(port, tree, workdir):
    return _reactor_h2_argv(port, tree, workdir) + ["--http2-engine", "h2"]


def _http_server_argv(port, tree, workdir):
    return [sys.executable, "-m", "http.server", str(port), "-d", tree, "-b", "127.0.0.1"]


def _aiohttp_argv(port, tree, workdir):
    return [sys.executable, os.path.join(HERE, "aiohttp_static.py"), "--root", tree,
            "--port", str(port), "--bind", "127.0.0.1"]


def _bare_loop_argv(port, tree, workdir):
    return [sys.executable, os.path.join(HERE, "bare_loop.py"), "--port", str(port),
            "--bind", "127.0.0.1", "--body", os.path.join(tree, SMALL[0].lstrip("/"))]


# What a user who cares about speed adds to nginx's defaults: descriptors and stat results
# cached (no open/fstat/close per request), sendfile with the head corked into the first
# packet, and keep-alive connections that are not cut every 1,000 requests.
NGINX_TUNED = """\
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    keepalive_requests 100000000;
"""


# What Debian's nginx.conf turns on (`gzip on`), with JavaScript among the types, as gzip_types
# is only text/html by default. The level stays nginx's default, 1: it compresses per request.
NGINX_GZIP = """\
    gzip on;
    gzip_types text/javascript;
"""


def nginx_tls(workdir: str) -> str:
    """HTTPS as reactor does it: the same certificate, protocols and TLS 1.2 suites (TLS 1.3
    suites are OpenSSL's defaults in both), and resumption on (a session cache and tickets)."""
    from reactor.net.tls import TLS12_CIPHERS

    cert, key = tls_files(workdir)
    return f"""\
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {TLS12_CIPHERS};
        ssl_session_cache shared:SSL:10m;
        ssl_session_tickets on;
"""


def nginx_config(port: int, tree: str, workdir: str, tuned: bool = False,
                 gzip: bool = False, tls: bool = False, http2: bool = False,
                 logged: bool = False) -> str:
    """One worker and no access log, otherwise nginx's own defaults (`tuned`: NGINX_TUNED on
    top, `gzip`: NGINX_GZIP, `tls`: HTTPS by nginx_tls, `http2`: the listener speaks h2, by
    ALPN with `tls`, else h2c with prior knowledge only, `logged`: its access log on, in its
    default combined format, to a file); every path it writes lies under workdir."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if nofile == resource.RLIM_INFINITY:
        nofile = 65536
    temp = os.path.join(workdir, "nginx-temp")
    return f"""\
worker_processes 1;
daemon off;
pid {workdir}/nginx-{port}.pid;
error_log {workdir}/nginx-error.log warn;
worker_rlimit_nofile {nofile};
events {{
    worker_connections {min(nofile, 16384)};
}}
http {{
    access_log {f"{workdir}/nginx-access-{port}.log" if logged else "off"};
{NGINX_UNCAPPED if http2 else ""}{NGINX_TUNED if tuned else ""}{NGINX_GZIP if gzip else ""}\
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    types {{
        text/html html;
        image/png png;
        text/javascript js;
    }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port}{" ssl" if tls else ""}{" http2" if http2 else ""} backlog=4096;
        root {tree};
{nginx_tls(workdir) if tls else ""}\
    }}
}}
"""


def _nginx_argv(port, tree, workdir, tuned=False, gzip=False, tls=False, http2=False,
                logged=False):
    conf = os.path.join(workdir, f"nginx-{port}.conf")
    os.makedirs(os.path.join(workdir, "nginx-temp"), exist_ok=True)
    with open(conf, "w") as f:
        f.write(nginx_config(port, tree, workdir, tuned, gzip, tls, http2, logged))
    return [which("nginx") or "nginx", "-p", workdir, "-c", conf,
            "-e", os.path.join(workdir, "nginx-error.log")]


def _nginx_tuned_argv(port, tree, workdir):
    return _nginx_argv(port, tree, workdir, tuned=True)


def _nginx_logging_argv(port, tree, workdir):
    return _nginx_argv(port, tree, workdir, logged=True)


def _nginx_gzip_argv(port, tree, workdir):
    return _nginx_argv(port, tree, workdir, gzip=True)


def _nginx_tls_argv(port, tree, workdir):
    return _nginx_argv(port, tree, workdir, tls=True)


def _nginx_h2_argv(port, tree, workdir):
    return _nginx_argv(port, tree, workdir, http2=True)


def _nginx_h2_tls_argv(port, tree, workdir):
    return _nginx_argv(port, tree, workdir, tls=True, http2=True)


# The compression scenarios compare reactor with nginx only; the other peers sit them out.
_NOT_JS = {"js50": "compression is reactor against nginx", "js50gz": "compression is reactor "
           "against nginx"}
# nginx with gzip on is there for the compressed scenario alone.
_ONLY_GZIP = {key: "gzip on matters only to the compressed scenario"
              for key in ("ka50", "ka1000", "close", "pipe16", "100k", "10m", "js50")}


# The servers with an access log on show what it costs on the 1 KiB scenarios.
_LOGGED_ONLY = {"100k": "log cost shown at 1 KiB", "10m": "log cost shown at 1 KiB", **_NOT_JS}

# The HTTPS scenarios compare the two HTTPS servers only, which sit out the plain ones.
TLS_SCENARIOS = ("tls-ka50", "tls-close", "tls-100k", "tls-10m")
PLAIN_SCENARIOS = ("ka50", "ka1000", "close", "pipe16", "100k", "10m", "js50", "js50gz")
_NOT_TLS = {key: "HTTPS is reactor against nginx with ssl" for key in TLS_SCENARIOS}
_ONLY_TLS = {key: "plain HTTP is measured without TLS" for key in PLAIN_SCENARIOS}

# HTTP/2 (h2load): h2c against nginx's h2c listener, h2 over TLS against nginx's ssl http2 one.
H2C_SCENARIOS = ("h2c",)
H2_TLS_SCENARIOS = ("h2-tls", "h2-page", "h2-10m")
_NOT_H2 = {key: "HTTP/2 is measured on the HTTP/2 servers"
           for key in H2C_SCENARIOS + H2_TLS_SCENARIOS}
_ONLY_H2C = {key: "h2c servers run the h2c scenario"
             for key in PLAIN_SCENARIOS + TLS_SCENARIOS + H2_TLS_SCENARIOS}
_ONLY_H2_TLS = {key: "h2 over TLS servers run the h2 scenarios"
                for key in PLAIN_SCENARIOS + TLS_SCENARIOS + H2C_SCENARIOS}

SPECS = {
    "reactor": Spec("reactor", "reactor (C parser)", _reactor_argv),
    "reactor-py": Spec("reactor-py", "reactor (pure-Python parser)", _reactor_argv,
                       env={"REACTOR_NO_EXTENSIONS": "1"}, skip=_NOT_JS),
    "reactor-full": Spec("reactor-full", "reactor, fast lane off", _reactor_full_path_argv),
    "reactor-log": Spec("reactor-log", "reactor, access log on", _reactor_logging_argv,
                        skip=_LOGGED_ONLY),
    "http.server": Spec("http.server", "python -m http.server", _http_server_argv, skip=_NOT_JS),
    "aiohttp": Spec("aiohttp", "aiohttp web.static", _aiohttp_argv, skip=_NOT_JS),
    "nginx": Spec("nginx", "nginx (1 worker, defaults)", _nginx_argv),
    "nginx-log": Spec("nginx-log", "nginx (1 worker, defaults, access log on)",
                      _nginx_logging_argv, skip=_LOGGED_ONLY),
    "nginx-tuned": Spec("nginx-tuned", "nginx (1 worker, tuned)", _nginx_tuned_argv,
                        skip=_NOT_JS),
    "nginx-gzip": Spec("nginx-gzip", "nginx (1 worker, gzip on)", _nginx_gzip_argv,
                       skip=_ONLY_GZIP),
    "bare-loop": Spec("bare-loop", "bare selectors loop", _bare_loop_argv, paths=(SMALL[0],),
                      skip={"close": "ignores Connection: close", "100k": "one fixed body",
                            "10m": "one fixed body", **_NOT_JS}),
    "reactor-tls": Spec("reactor-tls", "reactor HTTPS", _reactor_tls_argv, skip=_ONLY_TLS,
                        tls=True),
    "nginx-tls": Spec("nginx-tls", "nginx HTTPS (1 worker, defaults)", _nginx_tls_argv,
                      skip=_ONLY_TLS, tls=True),
    "reactor-h2": Spec("reactor-h2", "reactor h2c (libnghttp2)", _reactor_h2_argv,
                       skip=_ONLY_H2C, http2=True),
    "reactor-h2py": Spec("reactor-h2py", "reactor h2c (pure-Python h2)", _reactor_h2py_argv,
                         skip=_ONLY_H2C, http2=True),
    "nginx-h2": Spec("nginx-h2", "nginx h2c (1 worker, defaults)", _nginx_h2_argv,
                     skip=_ONLY_H2C, http2=True),
    "reactor-h2-tls": Spec("reactor-h2-tls", "reactor h2 (libnghttp2)", _reactor_h2_tls_argv,
                           skip=_ONLY_H2_TLS, tls=True, http2=True),
    "nginx-h2-tls": Spec("nginx-h2-tls", "nginx h2 (1 worker, defaults)", _nginx_h2_tls_argv,
                         skip=_ONLY_H2_TLS, tls=True, http2=True),
}
for _spec in SPECS.values():
    if not _spec.tls:
        _spec.skip = {**_spec.skip, **_NOT_TLS}
    if not _spec.http2:
        _spec.skip = {**_spec.skip, **_NOT_H2}


def prerequisite(name: str) -> str:
    """Install what a server needs; return '' when it can be tried, else the reason it cannot."""
    if SPECS[name].http2:
        reason = ensure_command("h2load", "nghttp2-client") or ensure_command("curl", "curl")
        if reason:
            return reason
    if name.startswith("nginx"):
        reason = ensure_command("nginx", "nginx-light")
        if reason or not SPECS[name].tls:
            return reason
    if SPECS[name].tls and not which("openssl"):
        return "no openssl command to make the certificate"
    if name == "aiohttp":
        return ensure_module("aiohttp", "aiohttp")
    if name.startswith("reactor"):
        if SPECS[name].http2 and not _reactor_http2_engine(name):
            return "its HTTP/2 engine is not installed"
        backend, reason = _reactor_backend(name)
        if reason:
            return reason
        if name != "reactor-py" and backend != "c":
            # The C-parser row must measure the C parser, not the silent fallback to Python.
            print("building the C parser (setup.py build_ext --inplace) ...", flush=True)
            build = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"],
                                   cwd=REPO, capture_output=True, text=True, timeout=600)
            backend, reason = _reactor_backend(name)
            if backend != "c":
                lines = build.stderr.strip().splitlines()
                return reason or ("C parser not available" +
                                  (f": {lines[-1]}" if build.returncode and lines else ""))
    return ""


def _reactor_backend(name: str):
    """(parser backend named by `python -m reactor --version`, '' or the reason it failed)."""
    env = dict(os.environ, **SPECS[name].env)
    try:
        done = subprocess.run([sys.executable, "-m", "reactor", "--version"], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "", "python -m reactor --version did not answer in 30 s"
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return "", f"python -m reactor --version: {lines[-1] if lines else done.returncode}"
    match = re.search(r"parser: (\w+)", done.stdout)
    return (match.group(1) if match else "unknown"), ""


def _reactor_http2_engine(name: str) -> str:
    """The name of the HTTP/2 engine the server `name` runs with ('' when it is missing)."""
    wanted = "h2" if name == "reactor-h2py" else "nghttp2"
    env = dict(os.environ, **SPECS[name].env)
    probe = f"from reactor.http import h2; print(h2.engine({wanted!r}).NAME)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


def version(name: str) -> str:
    """A one-line version string for the report; '' where none can be had."""
    try:
        if name.startswith("nginx"):
            out = subprocess.run([which("nginx") or "nginx", "-v"], capture_output=True,
                                 text=True).stderr
            return out.strip().split("/")[-1]
        if name == "aiohttp":
            probe = "import aiohttp; print(aiohttp.__version__)"
            return subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                  text=True).stdout.strip()
        if name.startswith("reactor"):
            env = dict(os.environ, **SPECS[name].env)
            return subprocess.run([sys.executable, "-m", "reactor", "--version"], cwd=REPO,
                                  env=env, capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        if name in ("http.server", "bare-loop"):
            return "Python " + sys.version.split()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    return ""


# -- processes -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One running server: started pinned, checked, measured, stopped."""

    def __init__(self, spec: Spec, tree: str, workdir: str, cpu: int, digests: dict):
        self.spec = spec
        self.tree = tree
        self.workdir = workdir
        self.cpu = cpu
        self.digests = digests
        self.port = 0
        self.proc = None
        self.log_path = os.path.join(workdir, f"{spec.name}.log")
        self.pids = []

    def start(self) -> None:
        """Start and check the server; raise Unavailable with the reason if it does not serve."""
        self.port = free_port()
        argv = ["taskset", "-c", str(self.cpu)] + self.spec.argv(self.port, self.tree,
                                                                  self.workdir)
        env = dict(os.environ, **self.spec.env)
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, cwd=self.spec.cwd, env=env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        except OSError as e:
            raise Unavailable(f"cannot start: {e}") from e
        finally:
            log.close()
        try:
            self._wait_ready()
            self._check()
        except Unavailable:
            self.stop()
            raise
        self.pids = process_tree(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 4000))
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_tail()
                raise Unavailable(f"exited with {self.proc.returncode}" +
                                  (f": {tail}" if tail else ""))
            try:
                status, _, _ = fetch(self.port, self.spec.paths[0], self.spec.tls,
                                     self.spec.http2)
                return
            except OSError:
                time.sleep(0.1)
        raise Unavailable(f"not answering on 127.0.0.1:{self.port} after {READY_TIMEOUT_S:.0f} s")

    def _check(self) -> None:
        for path in self.spec.paths:
            try:
                status, headers, body = fetch(self.port, path, self.spec.tls, self.spec.http2)
            except OSError as e:
                raise Unavailable(f"GET {path} failed: {e}") from e
            if status != 200:
                raise Unavailable(f"GET {path} answered {status}")
            if hashlib.sha256(body).hexdigest() != self.digests[path]:
                raise Unavailable(f"GET {path} served {len(body)} bytes that differ from the file")

    def stop(self) -> None:
        if self.proc is None:
            return
        pids = process_tree(self.proc.pid) if self.alive() else []
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Children of the server (nginx's worker) are ended by their own id if they outlived it.
        for pid in pids[1:]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None


def fetch(port: int, path: str, tls: bool = False, http2: bool = False):
    if http2:
        return _fetch_h2(port, path, tls)
    if tls:   # the run's own certificate: checking it would prove nothing here
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                           context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def _fetch_h2(port: int, path: str, tls: bool):
    """(status, [], body) of a GET over HTTP/2 by curl (prior knowledge on a plain port);
    OSError when it does not answer over HTTP/2."""
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}{path}"
    flag = "--http2" if tls else "--http2-prior-knowledge"
    done = subprocess.run(["curl", "-sk", flag, "-w", "\n%{http_code} %{http_version}", url],
                          capture_output=True, timeout=30)
    body, _, tail = done.stdout.rpartition(b"\n")
    if done.returncode != 0 or not tail.endswith(b" 2"):
        raise ConnectionError(f"curl over HTTP/2: exit {done.returncode}, {tail!r}")
    return int(tail.split()[0]), [], body


# -- memory --------------------------------------------------------------------------------------

def process_tree(root: int) -> list:
    """root and all its descendants, read from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; the fields after the last ')' do not.
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _status_kib(pid: int, key: str, name: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{name}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pids) -> int:
    return sum(_status_kib(p, "VmRSS:") for p in pids)


def pss_kib(pids) -> int:
    """Proportional set size: shared pages split among the processes that map them, so a
    master and its workers are not charged twice for the same libraries."""
    return sum(_status_kib(p, "Pss:", "smaps_rollup") for p in pids)


def hwm_kib(pids) -> int:
    return sum(_status_kib(p, "VmHWM:") for p in pids)


class RssSampler:
    """Samples the summed VmRSS and PSS of some processes in the background; keeps the largest."""

    def __init__(self, pids, interval_s: float = 0.2):
        self.pids = list(pids)
        self.interval_s = interval_s
        self.peak_kib = 0
        self.pss_peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def _sample(self):
        self.peak_kib = max(self.peak_kib, rss_kib(self.pids))
        self.pss_peak_kib = max(self.pss_peak_kib, pss_kib(self.pids))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


# -- other load on the machine -------------------------------------------------------------------

_HZ = os.sysconf("SC_CLK_TCK")


def busy_s(cpus) -> float:
    """CPU seconds spent not idle on the given CPUs since boot."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name[3:].isdigit() and int(name[3:]) in cpus:
                v = [int(x) for x in fields]
                # user nice system idle iowait irq softirq steal: idle and iowait are not busy.
                total += sum(v[:8]) - v[3] - v[4]
    return total / _HZ


def _cpu_s(pids) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _HZ


class ForeignLoad:
    """How many cores' worth of work, on the bench's two CPUs, came from neither the server, the
    load generator nor this harness: the other users of a shared machine. Runs disturbed this
    way are flagged (and retried once) rather than trusted."""

    def __init__(self, pids, cpus):
        self.pids = list(pids)
        self.cpus = set(cpus)
        self.cores = 0.0
        self.server_s = 0.0   # CPU time (user + system) the server's processes took

    def _snapshot(self):
        own = os.times()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (time.monotonic(), busy_s(self.cpus), _cpu_s(self.pids),
                own.user + own.system + children.ru_utime + children.ru_stime)

    def __enter__(self):
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc):
        end = self._snapshot()
        wall = end[0] - self._start[0]
        self.server_s = end[2] - self._start[2]
        foreign = (end[1] - self._start[1]) - self.server_s - (end[3] - self._start[3])
        self.cores = max(0.0, foreign / wall) if wall > 0 else 0.0
