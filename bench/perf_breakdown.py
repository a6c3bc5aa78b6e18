"""Where a read event's time goes: `perf` profiles of reactor and of the bare loop under the
same wrk load, split per read event into the kernel (by system call), Python's socket and
select modules, `selectors`, the loop, the connection, the fast lane's Python and its C.

    python bench/perf_breakdown.py [--servers reactor,bare-loop] [--scenario ka50]
        [--python PYTHON] [--seconds 4] [--rounds 2] [--keep DIR]

Each server runs on core 0 under `PYTHON -X perf` (Python 3.12 or later writes the map that
names Python frames: give one with --python; the default is the running interpreter), wrk
on core 1. In each round, while wrk runs: a counting window (`perf stat` of the system calls
and scheduler wake-ups the server makes, and its CPU time from /proc), then a sampling window
(`perf record --call-graph dwarf`, which unwinds up to the innermost Python frame). The CPU
time per read event (one `recvfrom`) comes from the counting window, the shares of it from
the samples. Only 127.0.0.1 is used. Needs perf with access to tracepoints (root).
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import servers_load as load
import servers_setup as setup

SCENARIOS = {"ka50": ("keepalive", 50, setup.SMALL[0]),
             "ka1000": ("keepalive", 1000, setup.SMALL[0]),
             "close": ("close", 50, setup.SMALL[0]),
             "pipe16": ("pipeline16", 50, setup.SMALL[0]),
             "100k": ("keepalive", 16, setup.MEDIUM[0])}
SERVERS = {"reactor": "reactor", "reactor-log": "reactor-log", "bare-loop": "bare-loop",
           "reactor-full": "reactor-full"}

SYSCALLS = ("recvfrom", "sendto", "sendfile64", "epoll_wait", "epoll_ctl", "accept4", "close",
            "shutdown", "setsockopt", "getsockname", "ioctl", "newfstatat", "openat", "write")
COUNTED = ([f"syscalls:sys_enter_{name}" for name in SYSCALLS]
           + ["raw_syscalls:sys_enter", "sched:sched_wakeup", "sched:sched_switch"])

# Kernel entry points by system call; a sample in the kernel outside every one of them is an
# interrupt, a page fault or the entry and exit code.
_SYSCALL_FRAME = re.compile(r"^(?:__x64_sys|__do_sys|__se_sys|ksys)_(\w+)")
_LIBC_WRAPPER = {"__libc_recv": "recvfrom", "recv": "recvfrom", "__libc_send": "sendto",
                 "__send": "sendto", "send": "sendto", "epoll_wait": "epoll_wait",
                 "epoll_ctl": "epoll_ctl", "sendfile64": "sendfile64", "sendfile": "sendfile64",
                 "__libc_write": "write", "accept4": "accept4", "__close": "close",
                 "__libc_close": "close"}
_SYSCALL_ALIAS = {"recvfrom": "recvfrom", "recvmsg": "recvfrom", "read": "recvfrom",
                  "sendto": "sendto", "sendmsg": "sendto", "write": "write",
                  "epoll_wait": "epoll_wait", "epoll_pwait": "epoll_wait", "sendfile64": "sendfile64",
                  "sendfile": "sendfile64"}

# Where a send on loopback wakes the task waiting to read it (wrk, on the other core): the
# part of the kernel's time that depends most on how the machine delivers a wake-up.
_WAKING = {"sock_def_readable", "ep_poll_callback", "__wake_up_sync_key", "try_to_wake_up"}

# Python frames, by the file of the innermost one, as the table's rows.
_PYTHON_ROWS = (("selectors.py", "selectors (Python)"), ("/net/loop.py", "loop bookkeeping"),
                ("/net/lanewait.py", "the loop's wait in C (Python)"),
                ("/net/connection.py", "connection"), ("/net/laneanswers.py", "connection"),
                ("/net/output.py", "connection"),
                ("/net/transport.py", "connection"), ("/net/server.py", "accepting"),
                ("/net/fastlane.py", "fast lane (Python)"), ("_cparser.py", "fast lane (Python)"),
                ("/net/_creadevent.py", "fast lane (Python)"),
                ("/ops/", "access log and metrics"), ("/http/", "full path (protocol, parser)"),
                ("/static/", "full path (static handler)"))
_BARE_ROWS = {"serve": "loop bookkeeping", "readable": "connection", "flush": "connection",
              "close": "connection"}


def classify(frames) -> str:
    """The row of one sample; `frames` are (symbol, dso) pairs from the leaf outwards."""
    leaf_symbol, leaf_dso = frames[0]
    if leaf_dso == "[kernel.kallsyms]":
        if any(symbol in _WAKING for symbol, _ in frames):
            return "kernel: waking the peer (in sendto)"
        for symbol, dso in frames:
            if dso != "[kernel.kallsyms]":
                call = _LIBC_WRAPPER.get(symbol)
                return f"kernel: {call}" if call else "kernel: entry, exit, faults"
            found = _SYSCALL_FRAME.match(symbol)
            if found:
                name = found.group(1)
                return "kernel: " + _SYSCALL_ALIAS.get(name, name)
            if symbol.startswith(("asm_sysvec", "asm_common_interrupt", "irq_exit")):
                return "kernel: interrupts"
        return "kernel: entry, exit, faults"
    if "vdso" in leaf_dso:
        return "clock readings (vDSO)"
    if "_native" in leaf_dso:
        return "C (parser, lane)"
    if "_cffi_backend" in leaf_dso:
        return "cffi"
    for symbol, dso in frames:
        if symbol.startswith("py::"):
            name, _, where = symbol[4:].partition(":")
            if where.endswith("bare_loop.py"):
                return _BARE_ROWS.get(name.rpartition(".")[2], "connection")
            for part, row in _PYTHON_ROWS:
                if part in where:
                    return row
            return "other Python"
        if "_socket." in dso:
            return "socket module (C)"
        if "select." in dso:
            return "select module (C)"
    return "interpreter, no Python frame"


def read_samples(path: str) -> collections.Counter:
    """Rows of every sample in a perf.data file."""
    script = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym,dso"],
                            capture_output=True, text=True, errors="replace")
    rows = collections.Counter()
    frames = []
    for line in script.stdout.splitlines() + [""]:
        line = line.strip()
        if not line:
            if frames:
                rows[classify(frames)] += 1
            frames = []
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        symbol, _, dso = rest.rpartition(" (")
        symbol = re.sub(r"\+0x[0-9a-f]+$", "", symbol.strip())
        frames.append((symbol, dso.rstrip(")")))
    return rows


def counted(pid: int, seconds: float) -> tuple:
    """({event: count}, server CPU seconds) over a window of `seconds`."""
    before = setup._cpu_s([pid])
    done = subprocess.run(["perf", "stat", "-x", ",", "-e", ",".join(COUNTED), "-p", str(pid),
                           "--", "sleep", str(seconds)], capture_output=True, text=True)
    cpu = setup._cpu_s([pid]) - before
    counts = {}
    for line in done.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[0].strip().isdigit():
            counts[fields[2].split(":")[-1].replace("sys_enter_", "")] = int(fields[0])
    return counts, cpu


def sampled(pid: int, seconds: float, path: str) -> None:
    subprocess.run(["perf", "record", "-q", "-F", "1999", "--call-graph", "dwarf,16384",
                    "-p", str(pid), "-o", path, "--", "sleep", str(seconds)],
                   capture_output=True, check=True)


def profile(name: str, scenario: str, python: str, seconds: float, rounds: int, workdir: str,
            tree: str, digests: dict, scripts: dict) -> dict:
    spec = setup.SPECS[SERVERS[name]]
    argv = spec.argv
    # The same server, under the interpreter asked for and with its perf map on.
    spec = setup.Spec(spec.name, spec.label,
                      lambda *a: [python, "-X", "perf"] + argv(*a)[1:], paths=spec.paths)
    script, connections, path = SCENARIOS[scenario]
    server = setup.Server(spec, tree, workdir, 0, digests)
    server.start()
    pid = server.proc.pid if not server.pids else server.pids[-1]
    totals = collections.Counter()
    rows = collections.Counter()
    cpu = 0.0
    try:
        load.run(server.port, path, load.Load(connections, script, 1.0), scripts, 1)
        for r in range(rounds):
            wrk = subprocess.Popen(
                ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}",
                 f"-d{int(2 * seconds + 3)}s", "-s", scripts[script],
                 f"http://127.0.0.1:{server.port}{path}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            counts, used = counted(pid, seconds)
            totals.update(counts)
            cpu += used
            data = os.path.join(workdir, f"{name}-{scenario}-{r}.data")
            sampled(pid, seconds, data)
            wrk.wait()
            rows.update(read_samples(data))
    finally:
        server.stop()
    return {"counts": totals, "cpu_s": cpu, "rows": rows}


def table(results: dict) -> str:
    names = list(results)
    per_event = {}
    for name, result in results.items():
        events = result["counts"].get("recvfrom", 0) or 1
        cpu_us = result["cpu_s"] * 1e6 / events
        samples = sum(result["rows"].values()) or 1
        per_event[name] = (cpu_us, {row: cpu_us * n / samples for row, n in result["rows"].items()},
                           {event: n / events for event, n in result["counts"].items()})
    rows = sorted({row for _, shares, _ in per_event.values() for row in shares},
                  key=lambda row: (not row.startswith("kernel"), row))
    lines = ["| per read event | " + " | ".join(names) + " |",
             "|---" * (len(names) + 1) + "|"]
    lines.append("| server CPU, µs | " + " | ".join(f"**{per_event[n][0]:.2f}**" for n in names)
                 + " |")
    for row in rows:
        lines.append(f"| {row} | " + " | ".join(f"{per_event[n][1].get(row, 0):.2f}"
                                                for n in names) + " |")
    for event in ("raw_syscalls:sys_enter", "sendto", "epoll_wait", "epoll_ctl",
                  "sched_wakeup", "sched_switch"):
        key = event.split(":")[-1] if "raw" not in event else "sys_enter"
        label = {"sys_enter": "system calls", "sched_wakeup": "wake-ups made",
                 "sched_switch": "sleeps (context switches)"}.get(key, f"`{key}` calls")
        lines.append(f"| {label} | " + " | ".join(f"{per_event[n][2].get(key, 0):.2f}"
                                                  for n in names) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--servers", default="reactor,bare-loop")
    ap.add_argument("--scenario", default="ka50", choices=sorted(SCENARIOS))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--keep", metavar="DIR", help="keep the perf.data files here")
    args = ap.parse_args(argv)
    if not shutil.which("perf") or not shutil.which("wrk"):
        print("perf_breakdown: needs perf and wrk", file=sys.stderr)
        return 1
    workdir = args.keep or tempfile.mkdtemp(prefix="reactor-perf-")
    os.makedirs(workdir, exist_ok=True)
    tree = os.path.join(workdir, "root")
    os.makedirs(tree, exist_ok=True)
    digests = setup.build_tree(tree)
    scripts = load.write_scripts(workdir)
    results = {}
    for name in args.servers.split(","):
        results[name] = profile(name, args.scenario, args.python, args.seconds, args.rounds,
                                workdir, tree, digests, scripts)
    print(f"{args.scenario}, {args.python} -X perf, load average before: "
          f"{os.getloadavg()[0]:.2f}")
    print(table(results))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
