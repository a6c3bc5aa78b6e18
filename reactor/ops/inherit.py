"""Listening sockets that cross a process boundary: those systemd or `--fd` hand to this
process, and those a supervisor hands to its re-executed successor (at fds 3.., as systemd
would, with a pipe on which the successor says when it is ready).

Imports nothing of reactor but the errors; the supervisor and `serve` use it.
"""

import os
import socket
import sys
import traceback

from ..http.errors import ConfigError

# systemd passes its sockets as the descriptors from 3 on (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3

# A re-executed supervisor finds here the pipe on which to tell its predecessor that its
# workers are ready (the predecessor then drains and exits).
UPGRADE_FD_VARIABLE = "REACTOR_UPGRADE_FD"


def inherited_listeners(config, upgrade=False) -> list:
    """Listening sockets handed to this process: systemd's (LISTEN_FDS naming this pid) and
    `--fd`. Empty when there are none; ConfigError when one is not a listening socket. After
    a re-exec (`upgrade`) the LISTEN_FDS are every listener, `--fd` included."""
    fds = []
    if os.environ.get("LISTEN_PID") == str(os.getpid()):
        try:
            count = int(os.environ.get("LISTEN_FDS", "0"))
        except ValueError:
            raise ConfigError(f"LISTEN_FDS={os.environ['LISTEN_FDS']!r} is not a number") from None
        fds.extend(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))
        # As sd_listen_fds(1) does: the variables describe this process, not its children.
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)
    if config.fd is not None and not upgrade:
        fds.append(config.fd)
    return [_listening_socket(fd) for fd in fds]


def _listening_socket(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as error:
        raise ConfigError(f"inherited fd {fd} is not a socket: {error.strerror}") from None
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET,
                                                             socket.SO_ACCEPTCONN):
        sock.detach()
        raise ConfigError(f"inherited fd {fd} is not a listening stream socket")
    # Applications that start subprocesses must not pass the listener on.
    sock.set_inheritable(False)
    sock.setblocking(False)
    return sock


def upgrade_fd():
    """The predecessor's pipe when this process is a re-executed supervisor, else None."""
    value = os.environ.pop(UPGRADE_FD_VARIABLE, None)
    if value is None:
        return None
    fd = int(value)
    os.set_inheritable(fd, False)
    return fd


def tell_predecessor(fd):
    try:
        os.write(fd, b"ready\n")
        os.close(fd)
    except OSError:
        pass   # it is gone already: nothing is left to drain


def exec_successor(listeners, ready_w, argv):
    """In a forked child: put `listeners` at fds 3.. as systemd would, the pipe `ready_w`
    after them, and exec `python -m reactor argv`. Never returns."""
    try:
        # Out of the way first: the numbers 3.. may be held by the very sockets we move.
        moved = [os.dup(sock.fileno()) for sock in listeners]
        pipe = os.dup(ready_w)
        for number, fd in enumerate(moved, SD_LISTEN_FDS_START):
            os.dup2(fd, number)           # dup2 makes the copy inheritable
        upgrade = os.dup2(pipe, SD_LISTEN_FDS_START + len(moved))
        os.environ.update(LISTEN_FDS=str(len(moved)), LISTEN_PID=str(os.getpid()))
        os.environ[UPGRADE_FD_VARIABLE] = str(upgrade)
        os.execv(sys.executable, [sys.executable, "-m", "reactor", *argv])
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(1)
