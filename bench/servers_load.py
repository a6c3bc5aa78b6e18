"""Load generation for the server bench: wrk, its Lua scripts, and reading its results.

Every run goes through a Lua script whose `done` hook prints one JSON line, so the figures are
read exactly (microseconds, byte counts, error kinds) instead of scraped from wrk's rounded text.
Only ever aims at 127.0.0.1.
"""

import json
import os
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
