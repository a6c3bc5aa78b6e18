"""Worker processes and what they share: the supervisor that forks, restarts and drains them,
the listening sockets (SO_REUSEPORT, inherited, or handed over by systemd) and the open-file
limit.

Imports server (Server, open_listener, ready_line), config and errors, never HTTP. The only
module that forks; server.serve calls it for `--workers N` and for the checks every run makes.
"""

import dataclasses
import logging
import os
import resource
import select
import signal
import socket
import sys
import time
import traceback

from .errors import ConfigError
from .server import Server, open_listener, ready_line

log = logging.getLogger("reactor")

# systemd passes its sockets as the descriptors from 3 on (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3

# Descriptors a worker needs besides its connections: stdio, the selector, the loop's wake-up
# pair, the listeners and the files being sent. Only used to say when the limit is too low.
RESERVED_FDS = 32

# A worker that dies within STABLE_AFTER seconds of its start doubles its restart delay, from
# RESTART_DELAY up to RESTART_DELAY_MAX: a worker that cannot start (a broken app, a port
# taken) then costs a fork every few seconds instead of a whole core. One that lived longer
# is replaced at once.
RESTART_DELAY = 0.1
RESTART_DELAY_MAX = 10.0
STABLE_AFTER = 5.0

# After forwarding SIGTERM, workers get their shutdown grace plus this margin to drain before
# they are killed: a worker stuck in application code must not keep the supervisor alive.
KILL_MARGIN = 5.0

# How often a worker checks that its supervisor still exists; an orphan drains and exits.
PARENT_CHECK = 1.0

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_HANDLED = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD}


# -- what every run checks ---------------------------------------------------------------------

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


def inherited_listeners(config) -> list:
    """Listening sockets handed to this process: systemd's (LISTEN_FDS naming this pid) and
    `--fd N`. Empty when there are none; ConfigError when one is not a listening socket."""
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
    if config.fd is not None:
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


def describe(config, listener) -> str:
    """The ready line for `listener`, which may be an inherited socket the Config does not
    name."""
    if listener.family == socket.AF_UNIX:
        name = listener.getsockname()
        if isinstance(name, bytes):
            name = name.decode(errors="replace")
        config = dataclasses.replace(config, unix=name or f"fd {listener.fileno()}")
    elif config.unix:
        config = dataclasses.replace(config, unix=None)
    return ready_line(config, listener)


# -- the supervisor ----------------------------------------------------------------------------

class Slot:
    """One worker position: the process filling it now and its restart back-off."""

    __slots__ = ("index", "pid", "started", "delay", "due")

    def __init__(self, index):
        self.index = index
        self.pid = 0
        self.started = 0.0
        self.delay = 0.0
        self.due = 0.0     # monotonic time of the next start; 0 while a worker runs


class Supervisor:
    """Forks `config.workers` workers, replaces those that die, and on SIGINT/SIGTERM forwards
    the signal and waits for them to drain."""

    def __init__(self, config, listeners, ready=print):
        self.config = config
        self.ready = ready
        self.slots = [Slot(i) for i in range(config.workers)]
        self.stop_signal = None
        self.kill_at = 0.0
        self.shared = list(listeners)   # sockets every worker inherits
        self.reservation = None         # holds a SO_REUSEPORT port while no worker listens
        if not self.shared:
            if config.unix or not (config.reuse_port and hasattr(socket, "SO_REUSEPORT")):
                self.shared = [open_listener(config)]
            else:
                self.reservation = _reserve_port(config)
                port = self.reservation.getsockname()[1]
                self.config = dataclasses.replace(config, port=port)
        self._wake_r, self._wake_w = os.pipe()
        self._ready_r, self._ready_w = os.pipe()
        for fd in (self._wake_r, self._wake_w, self._ready_r):
            os.set_blocking(fd, False)

    def run(self):
        """Start the workers, print the ready line once all of them listen, supervise until a
        stop signal, then drain. Returns once every worker has exited."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _HANDLED}
        old_wakeup = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        try:
            for slot in self.slots:
                self._start(slot)
            self._wait_until_ready()
            if self.stop_signal is None:
                self.ready(describe(self.config, (self.shared or [self.reservation])[0]))
            self._supervise()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._close()

    def _on_signal(self, signum, frame):
        if signum in _STOP_SIGNALS and self.stop_signal is None:
            self.stop_signal = signum
        # SIGCHLD needs a handler only so that it writes to the wake-up fd.

    # -- main loop -----------------------------------------------------------------------------

    def _wait_until_ready(self):
        waiting = len(self.slots)
        while waiting and self.stop_signal is None:
            self._sleep(None)
            waiting -= len(self._drain(self._ready_r))
            for slot, status in self._reap():
                self._stop_all(signal.SIGTERM)
                self._wait_for_exit()
                raise ConfigError(f"worker {slot.index} {_exit_text(status)} during start-up")

    def _supervise(self):
        while True:
            for slot, status in self._reap():
                self._schedule_restart(slot, status)
            if self.stop_signal is not None and not self.kill_at:
                self._stop_all(self.stop_signal)
            if self.kill_at:
                if not any(slot.pid for slot in self.slots):
                    return
                if time.monotonic() >= self.kill_at:
                    self._kill_stragglers()
                    return
            now = time.monotonic()
            for slot in self.slots:
                if slot.due and slot.due <= now and not self.kill_at:
                    self._start(slot)
            self._sleep(self._next_wake(now))
            self._drain(self._ready_r)

    def _next_wake(self, now):
        if self.kill_at:
            return max(self.kill_at - now, 0)
        due = [slot.due for slot in self.slots if slot.due]
        return max(min(due) - now, 0) if due else None

    def _sleep(self, timeout):
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        poller.register(self._ready_r, select.POLLIN)
        poller.poll(None if timeout is None else timeout * 1000)
        self._drain(self._wake_r)

    @staticmethod
    def _drain(fd) -> bytes:
        data = b""
        try:
            while chunk := os.read(fd, 4096):
                data += chunk
        except (BlockingIOError, InterruptedError):
            pass
        return data

    # -- workers -------------------------------------------------------------------------------

    def _start(self, slot):
        sys.stdout.flush()
        sys.stderr.flush()   # else a worker's first write repeats what the buffers held
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        try:
            pid = os.fork()
            if pid == 0:
                self._become_worker()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        slot.pid = pid
        slot.started = time.monotonic()
        slot.due = 0.0

    def _become_worker(self):
        code = 1
        try:
            # Default dispositions until the worker's server installs its own: a stop signal
            # before then ends a worker that has nothing to drain yet.
            for signum in _HANDLED:
                signal.signal(signum, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
            for fd in (self._wake_r, self._wake_w, self._ready_r):
                os.close(fd)
            if self.reservation is not None:
                self.reservation.close()
            run_worker(self.config, self.shared, self._notify_ready, os.getppid())
            code = 0
        except ConfigError as error:
            print(f"reactor: {error}", file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _notify_ready(self):
        os.write(self._ready_w, b".")
        os.close(self._ready_w)

    def _reap(self):
        """(slot, wait status) of each worker that has exited."""
        by_pid = {slot.pid: slot for slot in self.slots if slot.pid}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = by_pid.get(pid)
            if slot is not None:
                slot.pid = 0
                yield slot, status

    def _schedule_restart(self, slot, status):
        if self.stop_signal is not None:
            return
        now = time.monotonic()
        if now - slot.started >= STABLE_AFTER:
            slot.delay = 0.0
        else:
            slot.delay = min(max(slot.delay * 2, RESTART_DELAY), RESTART_DELAY_MAX)
        slot.due = now + slot.delay if slot.delay else now
        log.warning("worker %d %s; restarting in %.1fs", slot.index, _exit_text(status),
                    slot.delay)

    def _stop_all(self, signum):
        for slot in self.slots:
            slot.due = 0.0
            if slot.pid:
                try:
                    os.kill(slot.pid, signum)
                except ProcessLookupError:
                    pass
        self.kill_at = time.monotonic() + self.config.shutdown_grace + KILL_MARGIN

    def _wait_for_exit(self):
        while any(slot.pid for slot in self.slots) and time.monotonic() < self.kill_at:
            for _ in self._reap():
                pass
            self._sleep(0.05)
        self._kill_stragglers()

    def _kill_stragglers(self):
        for slot in self.slots:
            if slot.pid:
                log.warning("worker %d did not drain in time; killing it", slot.index)
                try:
                    os.kill(slot.pid, signal.SIGKILL)
                    os.waitpid(slot.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
                slot.pid = 0

    def _close(self):
        for fd in (self._wake_r, self._wake_w, self._ready_r, self._ready_w):
            os.close(fd)
        for sock in self.shared:
            sock.close()
        if self.reservation is not None:
            self.reservation.close()


def _reserve_port(config) -> socket.socket:
    """A bound, never listening SO_REUSEPORT socket: it fixes the port (port 0 becomes a real
    one) for the workers' own listeners and takes no connections itself, so none is queued on
    a socket that nobody accepts from."""
    host = config.host or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, config.port))
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{config.port}: {error.strerror}") from None
    return sock


def _exit_text(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


# -- one worker --------------------------------------------------------------------------------

def run_worker(config, listeners, started, parent=None):
    """Serve `listeners` (or a new one) in this process until SIGINT/SIGTERM, then drain.
    `started()` is called once the server listens. A worker passes its supervisor's pid as
    `parent` and drains when that process is gone."""
    listeners = listeners or [open_listener(config)]
    server = Server(config)
    for sock in listeners:
        server.add_listener(sock)

    def stop(signum, frame):
        server.loop.call_soon_threadsafe(server.shutdown)

    def check_parent():
        if os.getppid() != parent:
            server.shutdown()
        else:
            server.loop.call_later(PARENT_CHECK, check_parent)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if parent is not None:
        server.loop.call_later(PARENT_CHECK, check_parent)
    started()
    server.serve_forever()
