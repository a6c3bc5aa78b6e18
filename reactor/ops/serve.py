"""What the command line calls: serve a Config in this process, or through a Supervisor
of `--workers N`.

`serve` raises the open-file limit, takes the listening sockets handed to this process
(systemd's LISTEN_FDS, `--fd`, or a re-executed supervisor's), loads the certificates once
(before any fork, so every worker shares the TLS ticket keys) and runs one worker here or a
Supervisor that forks them.
"""

import logging
import os

from ..net.server import open_listener, remove_stale_socket
from ..net.tls import load_certificates
from .inherit import inherited_listeners, tell_predecessor, upgrade_fd
from .process import (
    connection_limit_note,
    describe,
    raise_open_files_limit,
    remove_pid_file,
    write_pid_file,
)
from .supervisor import Supervisor
from .worker import run_worker

log = logging.getLogger("reactor")


def serve(config, ready=print, argv=None):
    """Run the server of `config` until SIGINT/SIGTERM; then drain and return. With more than
    one worker a Supervisor forks them and this process only watches over them; `argv` (the
    command line's arguments) lets it re-execute itself on SIGUSR2."""
    note = connection_limit_note(config, raise_open_files_limit())
    if note:
        log.warning("%s", note)
    predecessor = upgrade_fd()
    inherited = inherited_listeners(config, upgrade=predecessor is not None)
    tls, tls_listeners = None, []
    if config.tls:
        tls = load_certificates(config)   # before the fork: every worker shares its ticket keys
        if config.tls_port is not None:
            # A predecessor passes its HTTPS socket last: the port stays open across the exec.
            handed = predecessor is not None and len(inherited) > 1
            tls_listeners.append(inherited.pop() if handed
                                 else open_listener(config, config.tls_port))
    main_pid = os.getpid()
    owns_socket_file = config.unix and not inherited
    try:
        if config.workers > 1:
            supervisor = Supervisor(config, inherited, ready, argv=argv, upgrade_fd=predecessor,
                                    tls=tls, tls_listeners=tls_listeners)
            supervisor.run()
            owns_socket_file = owns_socket_file and not supervisor.handed_over
            return
        listeners = inherited or [open_listener(config)]

        def started():
            write_pid_file(config)
            ready(describe(config, listeners[0], tls, tls_listeners))
            if predecessor is not None:
                tell_predecessor(predecessor)

        run_worker(config, listeners, started, tls=tls, tls_listeners=tls_listeners)
    finally:
        if os.getpid() == main_pid:
            remove_pid_file(config)
            # The socket file is ours to remove, unless it was handed to us or passed on.
            if owns_socket_file:
                remove_stale_socket(config.unix)
