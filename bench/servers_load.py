"""Load generation for the server bench: wrk, its Lua scripts, and reading its results; h2load
for HTTP/2.

Every wrk run goes through a Lua script whose `done` hook prints one JSON line, so the figures
are read exactly (microseconds, byte counts, error kinds) instead of scraped from wrk's rounded
text. h2load has no such hook: its summary lines are read (requests and bytes are exact there).
Only ever aims at 127.0.0.1.
"""

import json
import os
import re
import subprocess
from dataclasses import dataclass

MARK = "WRKJSON "

_DONE = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    "MARK", summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
""".replace("MARK", MARK)

SCRIPTS = {
    "keepalive": _DONE,
    # The server closes after each response and wrk reconnects: one new connection per request.
    "close": 'wrk.headers["Connection"] = "close"\n' + _DONE,
    # What a browser asks for over plain HTTP: gzip is the one coding it advertises there.
    "keepalive-gzip": 'wrk.headers["Accept-Encoding"] = "gzip"\n' + _DONE,
    # 16 requests written in one go per round trip; wrk waits for all 16 answers before the next
    # batch, and its latency figures are per batch.
    "pipeline16": """
init = function(args)
  local batch = {}
  for i = 1, 16 do batch[i] = wrk.format() end
  req = table.concat(batch)
end
request = function() return req end
""" + _DONE,
}


@dataclass
class Load:
    connections: int
    script: str
    duration_s: float
    timeout_s: float = 4.0


def write_scripts(workdir: str) -> dict:
    paths = {}
    for name, text in SCRIPTS.items():
        paths[name] = os.path.join(workdir, f"wrk-{name}.lua")
        with open(paths[name], "w") as f:
            f.write(text)
    return paths


def run(port: int, path: str, load: Load, scripts: dict, cpu: int, scheme: str = "http") -> dict:
    """One wrk run pinned to `cpu`; returns its figures, or {'failed': reason}. Over https wrk
    makes a full handshake for each new connection (it resumes no session)."""
    duration = max(1, round(load.duration_s))
    argv = ["taskset", "-c", str(cpu), "wrk", "-t1", f"-c{load.connections}", f"-d{duration}s",
            f"--timeout={load.timeout_s:g}s", "-s", scripts[load.script],
            f"{scheme}://127.0.0.1:{port}{path}"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    except subprocess.TimeoutExpired:
        return {"failed": "wrk did not finish"}
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            raw = json.loads(line[len(MARK):])
            return derive(raw)
    lines = (done.stderr or done.stdout).strip().splitlines()
    return {"failed": f"wrk: {lines[-1] if lines else done.returncode}"}


def run_h2load(port: int, paths, load: Load, streams: int, requests: int, cpu: int,
               scheme: str = "http") -> dict:
    """One h2load run pinned to `cpu`: `requests` requests over `load.connections` connections
    with `streams` in flight on each, cycling through `paths` (prior knowledge on http, ALPN h2
    on https). Returns the figures, or {'failed': reason}. Its latency is a mean per request:
    there are no percentiles (p50_ms holds the mean, p99_ms is None). A count, not h2load's
    timed mode (-D): in 1.52 that mode runs at a fifth of the rate, nginx's as much as ours."""
    urls = [f"{scheme}://127.0.0.1:{port}{path}" for path in paths]
    argv = ["taskset", "-c", str(cpu), "h2load", "-c", str(load.connections), "-m",
            str(streams), "-n", str(requests), *urls]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        return {"failed": "h2load did not finish"}
    out = done.stdout
    finished = re.search(r"finished in ([\d.]+)(m?s)", out)
    counts = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    traffic = re.search(r"traffic: \S+ \((\d+)\) total", out)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    if not (finished and counts and traffic):
        lines = (done.stderr or out).strip().splitlines()
        return {"failed": f"h2load: {lines[-1] if lines else done.returncode}"}
    seconds = float(finished.group(1)) / (1000 if finished.group(2) == "ms" else 1)
    requests = int(counts.group(1))
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {"requests": requests, "duration_us": seconds * 1e6, "bytes": int(traffic.group(1)),
            "rps": requests / seconds, "mbps": int(traffic.group(1)) / seconds / 1e6,
            "errors": sum(int(counts.group(i)) for i in (2, 3, 4)),
            "p50_ms": float(mean.group(1)) * scale[mean.group(2)] if mean else None,
            "p99_ms": None}


def derive(raw: dict) -> dict:
    seconds = raw["duration_us"] / 1e6 or 1e-9
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"]
    return dict(raw,
                rps=raw["requests"] / seconds,
                mbps=raw["bytes"] / seconds / 1e6,
                errors=errors,
                p50_ms=raw["p50_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000)


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    except OSError:
        return ""
    first = (out.stdout or out.stderr).strip().splitlines()
    return first[0].split(" [")[0] if first else ""
