"""Restarts under load: wrk with 1,000 keep-alive connections, through HAProxy in front of
three reactor instances (PROXY v2, --health checks) and directly against one instance of four
workers, while the instances are restarted in every way reactor offers.

Each event gets a wrk run of its own, from before the event until a few seconds after it:

- through HAProxy: none (baseline); SIGHUP to each instance in turn (rolling restart of its
  workers); SIGUSR2 to each in turn (the supervisor re-executes itself); SIGKILL of one whole
  instance, then starting it again;
- directly: none; SIGHUP; SIGUSR2; SIGKILL of one worker of four. The last may fail the
  requests that worker was answering, at most one per connection it held, counted from
  /proc just before the kill;
- both ways, SIGHUP again with the load going on for the whole drain grace (reactor's
  default --shutdown-grace, 10 s) after the last old worker was told to drain, and a little
  more: wrk never pauses, so a worker that waited for its keep-alive connections to fall
  idle would hold them all that time and then cut them, requests in flight included. The
  other runs end a few seconds after the restart is done, which may be before the grace.

Prints, per event, the requests, wrk's socket errors (connect, read, write, timeout), the
non-2xx answers, the p99 latency and how long the event took (for a restart: until no old
worker was left). The targets: zero failures through SIGHUP and SIGUSR2, both ways, past the
grace too, with restarts done in about the time the new workers take to start; after the
SIGKILL, failures no more than the in-flight bound.

The reactor processes run on core 0, wrk and HAProxy on core 1. Run it under the bench lock:
`flock /tmp/reactor-bench.lock python bench/restart.py [--quick]`.
"""

import argparse
import functools
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time

import cluster
import servers_load as load

SETTLE_BEFORE = 2.0     # seconds of load before an event
SETTLE_AFTER = 3.0      # and after it, so that what it broke shows
DRAIN_GRACE = 10.0      # reactor's default --shutdown-grace: the longest a worker drains


def restart_timeout(instance) -> float:
    """Long enough for a restart in which every old worker drains for the whole grace, one
    after the other: that is a figure to report, not a hang."""
    return instance.workers * (DRAIN_GRACE + 5)


class Wrk:
    """wrk on `url` until stopped; its figures are read from the done() hook's JSON line."""

    def __init__(self, url, connections, script, cpu):
        argv = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{connections}", "-d600s",
                "--timeout=4s", "-s", script, url]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGINT)   # wrk reports what it did so far
        out, err = self.proc.communicate(timeout=30)
        for line in out.splitlines():
            if line.startswith(load.MARK):
                return load.derive(json.loads(line[len(load.MARK):]))
        return {"failed": (err or out).strip()[-200:]}


def run_event(name, url, args, script, action, note=None, settle=SETTLE_AFTER):
    """A wrk run around `action()`, going on for `settle` seconds after it: (row for the
    table, the action's note)."""
    wrk = Wrk(url, args.connections, script, args.wrk_cpu)
    time.sleep(SETTLE_BEFORE)
    started = time.monotonic()
    detail = action()
    took = time.monotonic() - started
    time.sleep(settle)
    result = wrk.stop()
    result.update(event=name, took_s=took, note=detail or note or "")
    socket_errors = sum(result.get(k, 0) for k in ("connect", "read", "write", "timeout"))
    result["socket_errors"] = socket_errors
    print(f"  {name:34} {result.get('requests', 0):8,} requests, {socket_errors} socket errors "
          f"({_kinds(result)}), {result.get('status', 0)} non-2xx, "
          f"p99 {result.get('p99_ms', 0):.1f} ms, event took {took:.1f} s"
          f"{'; ' + result['note'] if result['note'] else ''}", flush=True)
    return result


def _kinds(result) -> str:
    return ", ".join(f"{kind} {result.get(kind, 0)}" for kind in ("connect", "read", "write",
                                                                  "timeout"))


def held_connections(pid) -> int:
    """TCP connections open in `pid` (its sockets, less the listening one)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return max(count - 1, 0)


def through_haproxy(args, workdir, script) -> list:
    names = ("r1", "r2", "r3")
    roots = cluster.build_sites(workdir, names)
    instances = [cluster.Instance(name, f"127.0.0.{i + 2}", roots[name], workdir,
                                  workers=args.workers_behind, cpu=args.server_cpu,
                                  args=("--proxy-protocol", "v2", "--trusted-proxy",
                                        cluster.BALANCER_SOURCE, "--no-access-log"))
                 for i, name in enumerate(names)]
    balancer = None
    rows = []
    try:
        for instance in instances:
            instance.start()
        # HAProxy beside wrk, on the load's side: on the servers' core it would get a
        # seventh of it, and the queue in front of it would be all the latency measured.
        balancer = cluster.Balancer(instances, workdir, maxconn=4 * args.connections,
                                    cpu=args.wrk_cpu)
        url = f"http://127.0.0.1:{balancer.port}/index.html"
        time.sleep(1.0)   # two health checks: every instance is up

        def each(method):
            def act():
                for instance in instances:
                    getattr(instance, method)(timeout=restart_timeout(instance))
            return act

        def kill_and_restart():
            victim = instances[-1]
            victim.kill()
            time.sleep(1.0)
            victim.start()
            time.sleep(1.0)   # the balancer's check finds it back
            return f"{victim.name} killed whole, restarted after 1 s"

        rows.append(run_event("haproxy: none (baseline)", url, args, script, lambda: None))
        rows.append(run_event("haproxy: SIGHUP r1, r2, r3", url, args, script,
                              each("rolling_restart")))
        rows.append(run_event("haproxy: SIGUSR2 r1, r2, r3", url, args, script,
                              each("upgrade")))
        rows.append(run_event("haproxy: SIGKILL r3 + restart", url, args, script,
                              kill_and_restart))
        rows.append(run_event("haproxy: SIGHUP r1, r2, r3, load past the grace", url, args,
                              script, each("rolling_restart"),
                              settle=DRAIN_GRACE + SETTLE_AFTER))
    finally:
        if balancer is not None:
            balancer.stop()
            report_balancer_log(balancer.log_path)
        for instance in instances:
            instance.stop()
    return rows


_LOGGED_STATUS = re.compile(r"\] \S+ \S+ [-\d/]+ (\d{3}) ")


def report_balancer_log(path):
    """What HAProxy saw go wrong: answers it made itself (5xx) and servers it took out.
    (Requests wrk drops when it is stopped show as client aborts, and are left out.)"""
    with open(path, errors="replace") as log:
        lines = log.read().splitlines()
    failed = [line for line in lines if (m := _LOGGED_STATUS.search(line)) and m.group(1) >= "500"]
    changes = [line for line in lines if line.startswith("Server ")]
    print(f"  HAProxy: {len(failed)} answers of its own (5xx), {len(changes)} server state "
          f"changes")
    for line in (failed[:3] + changes[:6]):
        print("    " + line[:160])


def direct(args, workdir, script) -> list:
    roots = cluster.build_sites(workdir, ("direct",))
    instance = cluster.Instance("direct", "127.0.0.1", roots["direct"], workdir,
                                workers=args.workers_direct, cpu=args.server_cpu,
                                args=("--no-access-log",))
    rows = []
    try:
        instance.start()
        url = f"http://127.0.0.1:{instance.port}/index.html"

        def kill_worker():
            # The busiest worker: a shared socket does not spread connections evenly.
            held, victim = max((held_connections(pid), pid) for pid in instance.worker_pids())
            os.kill(victim, signal.SIGKILL)
            return f"the killed worker held {held} connections (the in-flight bound)"

        restart = functools.partial(instance.rolling_restart, timeout=restart_timeout(instance))
        upgrade = functools.partial(instance.upgrade, timeout=restart_timeout(instance))
        rows.append(run_event("direct: none (baseline)", url, args, script, lambda: None))
        rows.append(run_event("direct: SIGHUP", url, args, script, restart))
        rows.append(run_event("direct: SIGUSR2", url, args, script, upgrade))
        rows.append(run_event(f"direct: SIGKILL 1 worker of {args.workers_direct}", url, args,
                              script, kill_worker))
        rows.append(run_event("direct: SIGHUP, load past the grace", url, args, script,
                              restart, settle=DRAIN_GRACE + SETTLE_AFTER))
    finally:
        instance.stop()
    return rows


def report(rows, args):
    print(f"\n{args.connections} keep-alive connections, wrk and HAProxy on core {args.wrk_cpu}, "
          f"reactor on core {args.server_cpu}\n")
    print("| event | requests | socket errors (connect/read/write/timeout) | non-2xx | p99 ms "
          "| event took s | note |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        if "failed" in row:
            print(f"| {row['event']} | wrk failed: {row['failed']} | | | | | |")
            continue
        kinds = "/".join(str(row[k]) for k in ("connect", "read", "write", "timeout"))
        print(f"| {row['event']} | {row['requests']:,} | {row['socket_errors']} ({kinds}) | "
              f"{row['status']} | {row['p99_ms']:.1f} | {row['took_s']:.1f} | {row['note']} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--workers-behind", type=int, default=2,
                        help="workers of each instance behind HAProxy")
    parser.add_argument("--workers-direct", type=int, default=4)
    parser.add_argument("--only", choices=("haproxy", "direct"))
    parser.add_argument("--quick", action="store_true", help="100 connections")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--wrk-cpu", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.connections = 100
    if cluster.haproxy_path() is None and args.only != "direct":
        print("haproxy is not installed (apt-get install haproxy)", file=sys.stderr)
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))   # wrk and HAProxy inherit it
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        scripts = load.write_scripts(workdir)
        if args.only != "direct":
            rows += through_haproxy(args, workdir, scripts["keepalive"])
        if args.only != "haproxy":
            rows += direct(args, workdir, scripts["keepalive"])
    report(rows, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
