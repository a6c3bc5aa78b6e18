"""One worker: a Server on the given listeners, its signals, and a watch on its supervisor.

Used by `serve` for a single process and by the supervisor in each forked worker. Imports the
server, and the wiring of what the Config asks for (access log, metrics, balancer fields).
"""

import os
import signal

from ..net.server import Server, open_listener
from . import wiring

# How often a worker checks that its supervisor still exists; an orphan drains and exits.
PARENT_CHECK = 1.0


def run_worker(config, listeners, started, parent=None, metrics=(None, None), tls=None,
               tls_listeners=()):
    """Serve `listeners` (or a new one) in this process until SIGINT/SIGTERM, then drain.
    `started()` is called once the server listens. A worker passes its supervisor's pid as
    `parent` and drains when that process is gone, and `metrics`: the shared counters and
    its region of them. `tls_listeners` are served over TLS with the Certificates `tls`, and
    so are `listeners` when the Config names no separate TLS port. A single process (no
    parent) re-reads its certificates on SIGHUP."""
    listeners = listeners or [open_listener(config)]
    server = Server(config, tls=tls)
    wiring.install(server, config, *metrics)
    for sock in listeners:
        server.add_listener(sock, secure=config.tls and config.tls_port is None)
    for sock in tls_listeners:
        server.add_listener(sock, secure=True)

    def stop(signum, frame):
        server.loop.call_soon_threadsafe(server.shutdown)

    def reopen_logs(signum, frame):
        server.loop.call_soon_threadsafe(server.reopen_logs)

    def check_parent():
        if os.getppid() != parent:
            server.shutdown()
        else:
            server.loop.call_later(PARENT_CHECK, check_parent)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, reopen_logs)
    if parent is None and server.tls is not None:
        signal.signal(signal.SIGHUP, lambda signum, frame: server.loop.call_soon_threadsafe(
            server.reload_certificates))
    if parent is not None:
        server.loop.call_later(PARENT_CHECK, check_parent)
    started()
    try:
        server.serve_forever()
    finally:
        if server.metrics is not None:
            server.metrics.publish()   # the last counts, for the supervisor to fold in
