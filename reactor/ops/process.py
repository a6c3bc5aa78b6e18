"""What every serving process does around its server, with or without a supervisor: the
open-file limit, the pid file and the ready line.

Imports the server (ready_line) only; never forks.
"""

import dataclasses
import os
import resource
import socket

from ..net.server import ready_line

# Descriptors a worker needs besides its connections: stdio, the selector, the loop's wake-up
# pair, the listeners and the files being sent. Only used to say when the limit is too low.
RESERVED_FDS = 32


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass   # macOS refuses an unlimited hard value; the soft one still works
    return soft


def connection_limit_note(config, open_files: int):
    """The line to print when `max_connections` per worker cannot fit in `open_files`."""
    room = max(open_files - RESERVED_FDS, 0)
    if open_files == resource.RLIM_INFINITY or config.max_connections <= room:
        return None
    return (f"max-connections {config.max_connections} per worker exceeds the open-file limit "
            f"of {open_files} (ulimit -n): about {room} connections fit; the rest wait to be "
            f"accepted")


def describe(config, listener, tls=None, tls_listeners=()) -> str:
    """The ready line for `listener`, which may be an inherited socket the Config does not
    name, and the HTTPS `tls_listeners`."""
    if listener.family == socket.AF_UNIX:
        name = listener.getsockname()
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        config = dataclasses.replace(config, unix=name or f"fd {listener.fileno()}")
    elif config.unix:
        config = dataclasses.replace(config, unix=None)
    return ready_line(config, listener, tls, tls_listeners)


def write_pid_file(config):
    if config.pid_file:
        temporary = f"{config.pid_file}.{os.getpid()}"
        with open(temporary, "w") as file:
            file.write(f"{os.getpid()}\n")
        os.replace(temporary, config.pid_file)   # never a half-written file to a reader


def remove_pid_file(config):
    """Remove the pid file if it still names this process (a successor rewrites it)."""
    if not config.pid_file:
        return
    try:
        with open(config.pid_file) as file:
            if file.read().strip() == str(os.getpid()):
                os.unlink(config.pid_file)
    except (OSError, ValueError):
        pass
