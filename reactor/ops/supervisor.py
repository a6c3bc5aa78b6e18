"""The supervisor of `--workers N`: the process tree and what its signals do.

It binds one listening socket that every worker inherits (or, with `--reuse-port`, lets each
worker bind its own), forks the workers, replaces those that die, and turns signals into
operations: a rolling restart (SIGHUP), more or fewer workers (SIGTTIN/SIGTTOU),
re-executing itself with its sockets (SIGUSR2) and a graceful stop (SIGINT/SIGTERM).

Imports the server's listeners, the worker and the socket hand-over, never HTTP; the server
knows nothing of this module. With inherit.py, the only module that forks or execs.
"""

import dataclasses
import logging
import os
import select
import signal
import socket
import sys
import time
import traceback

from ..http.errors import ConfigError
from ..net.server import open_listener, tcp_socket
from .inherit import exec_successor, tell_predecessor
from .metrics import Shared
from .process import describe, write_pid_file
from .worker import run_worker

log = logging.getLogger("reactor")

# A worker that dies within STABLE_AFTER seconds of its start doubles its restart delay, from
# RESTART_DELAY up to RESTART_DELAY_MAX: a worker that cannot start (a broken app, a port
# taken) then costs a fork every few seconds instead of a whole core. One that lived longer
# is replaced at once.
RESTART_DELAY = 0.1
RESTART_DELAY_MAX = 10.0
STABLE_AFTER = 5.0

# A new worker of a rolling restart, or a re-executed supervisor, must report ready within
# this long (importing a large application takes seconds) or the operation is abandoned and
# the old processes keep serving.
READY_TIMEOUT = 60.0

# After SIGTERM, a worker gets its shutdown grace plus this margin to drain before it is
# killed: a worker stuck in application code must not keep the supervisor alive.
KILL_MARGIN = 5.0

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_HANDLED = {signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP, signal.SIGTTIN,
            signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2}


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
    """Forks `config.workers` workers, replaces those that die, and acts on signals:

    - SIGINT/SIGTERM: forward it, wait for the workers to drain, return;
    - SIGHUP: rolling restart, one slot at a time: the certificates are re-read (bad new
      files keep the old ones), then a new worker starts (importing the application afresh
      and opening its files), and only once it reports ready is the old one told to drain.
      A new worker that exits or stays silent ends the restart there and the old workers
      keep serving;
    - SIGTTIN/SIGTTOU: one worker more, one fewer (never fewer than one);
    - SIGUSR2: re-execute this program with the listening sockets inherited; once the new
      supervisor's workers are ready, this one drains its workers and returns.
    """

    def __init__(self, config, listeners, ready=print, argv=None, upgrade_fd=None, tls=None,
                 tls_listeners=()):
        self.config = config
        self.ready = ready
        self.argv = argv
        self.upgrade_fd = upgrade_fd    # where a predecessor waits for our ready line
        self.tls = tls                  # Certificates, loaded before the workers fork
        self.tls_listeners = list(tls_listeners)   # HTTPS sockets every worker inherits
        self.slots = [Slot(i) for i in range(config.workers)]
        self.stop_signal = None
        self.kill_at = 0.0
        self.handed_over = False        # a successor serves our sockets now
        self.requests = []              # signals still to act on, in order
        self.retiring = {}              # pid of a worker told to drain -> when to kill it
        self.restart_queue = []         # slots a rolling restart has still to replace
        self.replacing = None           # (slot, new pid, deadline) while a new one starts
        self.successor = None           # (pid, pipe, deadline) of a re-executed supervisor
        self.shared = list(listeners)   # sockets every worker inherits
        self.reservation = None         # holds a SO_REUSEPORT port while no worker listens
        self.metrics = Shared() if config.metrics else None
        self.regions = {}               # pid -> its region of the metrics
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
                write_pid_file(self.config)
                self.ready(describe(self.config, (self.shared or [self.reservation])[0],
                                    self.tls, self.tls_listeners))
                if self.upgrade_fd is not None:
                    tell_predecessor(self.upgrade_fd)
                    self.upgrade_fd = None   # closed: a worker forked from now on has none
            self._supervise()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self._close()

    def _on_signal(self, signum, frame):
        if signum in _STOP_SIGNALS:
            if self.stop_signal is None:
                self.stop_signal = signum
        elif signum != signal.SIGCHLD:   # SIGCHLD has a handler only to write the wake-up fd
            self.requests.append(signum)

    # -- main loop -----------------------------------------------------------------------------

    def _wait_until_ready(self):
        waiting = {slot.pid for slot in self.slots}
        while waiting and self.stop_signal is None:
            self._sleep(None)
            waiting -= self._ready_pids()
            for slot, status in self._reap():
                self._stop_all(signal.SIGTERM)
                self._wait_for_exit()
                raise ConfigError(f"worker {slot.index} {exit_text(status)} during start-up")

    def _supervise(self):
        while True:
            ready = self._ready_pids()
            for slot, status in self._reap():
                self._schedule_restart(slot, status)
            if self.stop_signal is not None and not self.kill_at:
                self._stop_all(self.stop_signal)
            if self.kill_at:
                if not any(slot.pid for slot in self.slots) and not self.retiring:
                    return
                if time.monotonic() >= self.kill_at:
                    self._kill_stragglers()
                    return
            else:
                self._act_on_requests()
                self._advance_restart(ready)
                self._check_successor()
            self._kill_late_retirees()
            now = time.monotonic()
            for slot in self.slots:
                if slot.due and slot.due <= now and not self.kill_at:
                    self._start(slot)
            self._sleep(self._next_wake(now))

    def _next_wake(self, now):
        if self.kill_at:
            return max(self.kill_at - now, 0)
        due = [slot.due for slot in self.slots if slot.due]
        due.extend(self.retiring.values())
        if self.replacing:
            due.append(self.replacing[2])
        if self.successor:
            due.append(self.successor[2])
        return max(min(due) - now, 0) if due else None

    def _sleep(self, timeout):
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        poller.register(self._ready_r, select.POLLIN)
        if self.successor:
            poller.register(self.successor[1], select.POLLIN)
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

    def _ready_pids(self) -> set:
        """Pids of the workers that reported ready since the last call."""
        return {int(pid) for pid in self._drain(self._ready_r).split()}

    # -- signals -------------------------------------------------------------------------------

    def _act_on_requests(self):
        while self.requests:
            signum = self.requests.pop(0)
            if signum == signal.SIGHUP:
                self._begin_restart()
            elif signum == signal.SIGTTIN:
                slot = Slot(len(self.slots))
                self.slots.append(slot)
                self._start(slot)
                log.info("worker %d added: %d workers", slot.index, len(self.slots))
            elif signum == signal.SIGTTOU:
                self._remove_worker()
            elif signum == signal.SIGUSR2:
                self._begin_upgrade()
            elif signum == signal.SIGUSR1:
                self._reopen_logs()

    def _reopen_logs(self):
        """Each worker reopens its access log file (after log rotation)."""
        for slot in self.slots:
            if slot.pid:
                try:
                    os.kill(slot.pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass

    def _begin_restart(self):
        if self.tls is not None:
            self.tls.reload()   # the new workers inherit what this process holds
        self.restart_queue = list(self.slots)
        log.info("rolling restart of %d workers", len(self.slots))

    def _advance_restart(self, ready):
        """Replace the slots of a rolling restart one at a time, each only once its new
        worker is ready."""
        if self.replacing is not None:
            slot, pid, deadline = self.replacing
            if pid in ready:
                self.replacing = None
                if slot.pid:
                    self._retire(slot.pid)
                slot.pid, slot.started, slot.due = pid, time.monotonic(), 0.0
                if slot not in self.slots:   # removed by SIGTTOU meanwhile
                    self._retire(pid)
            elif time.monotonic() >= deadline:
                log.error("new worker %d not ready after %.0fs; rolling restart abandoned, "
                          "the old workers keep serving", slot.index, READY_TIMEOUT)
                self._kill(pid)
                self._abandon_restart()
            else:
                return
        while self.restart_queue and self.replacing is None:
            slot = self.restart_queue.pop(0)
            if slot in self.slots and slot.pid:   # a dead slot restarts with new code anyway
                pid = self._fork_worker()
                self.replacing = (slot, pid, time.monotonic() + READY_TIMEOUT)

    def _abandon_restart(self):
        self.replacing = None
        self.restart_queue = []

    def _remove_worker(self):
        if len(self.slots) == 1:
            log.warning("SIGTTOU ignored: one worker is the fewest")
            return
        slot = self.slots.pop()
        if slot.pid:
            self._retire(slot.pid)
        log.info("worker %d removed: %d workers", slot.index, len(self.slots))

    def _retire(self, pid):
        """Tell a worker to drain; it is killed if it has not exited in time."""
        self.retiring[pid] = time.monotonic() + self.config.shutdown_grace + KILL_MARGIN
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _kill_late_retirees(self):
        now = time.monotonic()
        for pid, deadline in list(self.retiring.items()):
            if deadline <= now:
                log.warning("worker %d did not drain in time; killing it", pid)
                self._kill(pid)

    @staticmethod
    def _kill(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # -- re-executing --------------------------------------------------------------------------

    def _begin_upgrade(self):
        if self.successor is not None:
            log.warning("SIGUSR2 ignored: a new supervisor is starting already")
            return
        if self.argv is None or not self.shared:
            log.warning("SIGUSR2 ignored: re-executing needs the command line and a shared "
                        "listening socket (not --reuse-port)")
            return
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            exec_successor(self.shared + self.tls_listeners, ready_w, self.argv)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        self.successor = (pid, ready_r, time.monotonic() + READY_TIMEOUT)
        log.info("re-executing: new supervisor %d starting", pid)

    def _check_successor(self):
        if self.successor is None:
            return
        pid, pipe, deadline = self.successor
        if b"ready" in self._drain(pipe):
            log.info("new supervisor %d is ready; draining the old workers", pid)
            os.close(pipe)
            self.successor = None
            self.handed_over = True
            self.stop_signal = signal.SIGTERM
            self._stop_all(signal.SIGTERM)
            return
        failed = None
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                failed = exit_text(status)
        except ChildProcessError:
            failed = "exited"
        if failed is None and time.monotonic() >= deadline:
            self._kill(pid)
            failed = f"was not ready after {READY_TIMEOUT:.0f}s"
        if failed is not None:
            log.error("new supervisor %d %s; the old one keeps serving", pid, failed)
            os.close(pipe)
            self.successor = None

    # -- workers -------------------------------------------------------------------------------

    def _start(self, slot):
        slot.pid = self._fork_worker()
        slot.started = time.monotonic()
        slot.due = 0.0

    def _fork_worker(self) -> int:
        region = self.metrics.take() if self.metrics is not None else None
        if self.metrics is not None and region is None:
            log.warning("no free metrics region: a new worker's counts are not shown")
        sys.stdout.flush()
        sys.stderr.flush()   # else a worker's first write repeats what the buffers held
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        try:
            pid = os.fork()
            if pid == 0:
                self._become_worker(region)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
        if region is not None:
            self.regions[pid] = region
        return pid

    def _become_worker(self, region):
        code = 1
        try:
            # Default dispositions until the worker's server installs its own: a stop signal
            # before then ends a worker that has nothing to drain yet. The operations'
            # signals are the supervisor's: a worker ignores them (SIGUSR1 until its server
            # can reopen its log).
            for signum in _HANDLED:
                signal.signal(signum, signal.SIG_DFL)
            for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1,
                           signal.SIGUSR2):
                signal.signal(signum, signal.SIG_IGN)
            signal.set_wakeup_fd(-1)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED)
            for fd in (self._wake_r, self._wake_w, self._ready_r):
                os.close(fd)
            if self.successor is not None:
                os.close(self.successor[1])
            if self.upgrade_fd is not None:
                os.close(self.upgrade_fd)
            if self.reservation is not None:
                self.reservation.close()
            run_worker(self.config, self.shared, self._notify_ready, os.getppid(),
                       metrics=(self.metrics, region), tls=self.tls,
                       tls_listeners=self.tls_listeners)
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
        os.write(self._ready_w, b"%d\n" % os.getpid())
        os.close(self._ready_w)

    def _reap(self):
        """(slot, wait status) of each worker in a slot that has exited; retired workers and
        failed replacements are dealt with here."""
        by_pid = {slot.pid: slot for slot in self.slots if slot.pid}
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            region = self.regions.pop(pid, None)
            if region is not None:
                self.metrics.release(region)
            if self.retiring.pop(pid, None) is not None:
                continue
            if self.replacing is not None and pid == self.replacing[1]:
                log.error("new worker %d %s during start-up; rolling restart abandoned, the "
                          "old workers keep serving", self.replacing[0].index,
                          exit_text(status))
                self._abandon_restart()
                continue
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
        log.warning("worker %d %s; restarting in %.1fs", slot.index, exit_text(status),
                    slot.delay)

    def _stop_all(self, signum):
        pids = [slot.pid for slot in self.slots if slot.pid] + list(self.retiring)
        if self.replacing is not None:
            pids.append(self.replacing[1])
        for slot in self.slots:
            slot.due = 0.0
        for pid in pids:
            try:
                os.kill(pid, signum)
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
        pids = [slot.pid for slot in self.slots if slot.pid] + list(self.retiring)
        if self.replacing is not None:
            pids.append(self.replacing[1])
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for slot in self.slots:
            slot.pid = 0
        self.retiring.clear()

    def _close(self):
        for fd in (self._wake_r, self._wake_w, self._ready_r, self._ready_w):
            os.close(fd)
        for sock in self.shared + self.tls_listeners:
            sock.close()
        if self.reservation is not None:
            self.reservation.close()


def _reserve_port(config) -> socket.socket:
    """A bound, never listening SO_REUSEPORT socket: it fixes the port (port 0 becomes a real
    one) for the workers' own listeners and takes no connections itself, so none is queued on
    a socket that nobody accepts from."""
    host = config.host or "0.0.0.0"
    sock = tcp_socket(host)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, config.port))
    except OSError as error:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{config.port}: {error.strerror}") from None
    return sock


def exit_text(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"

