"""The server bench: reactor against its peers, side by side, in one run.

    python bench/server.py [--quick] [--json PATH] [--svg PATH] [--servers reactor,nginx,...]

Builds a fixed tree (1 KiB HTML, 100 KiB image, 10 MiB file, 50 KiB script), starts every server
on one core and wrk on the other, and measures requests/s and latency for the small file
(keep-alive at 50 and 1,000 connections, a new connection per request, 16 pipelined requests),
throughput for the two larger files, the script with and without Accept-Encoding: gzip (reactor
against nginx, also with gzip on), the same over HTTPS (reactor against nginx with ssl, one
certificate and cipher list for both; 1 KiB keep-alive and per new connection, 100 KiB, 10 MiB),
HTTP/2 with h2load against nginx with http2 (h2c 1 KiB with 10 connections of 100 streams,
the same over TLS, a page of 60 assets, 10 MiB; the pure-Python engine as a row of its own),
and resident memory. Runs are interleaved (each scenario visits every server
in turn, in a rotated order each round) and repeated, and ratios are the median of per-round
ratios, so that a noisy shared machine moves all servers together instead of skewing one.
Missing tools are installed; a server that cannot run is reported, never dropped.
"""

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import chart
import servers_load as load
import servers_setup as setup

ORDER = ("reactor", "reactor-py", "reactor-log", "reactor-full", "nginx", "nginx-log",
         "nginx-tuned", "nginx-gzip", "aiohttp", "http.server", "bare-loop", "reactor-tls",
         "nginx-tls", "reactor-h2", "reactor-h2py", "nginx-h2", "reactor-h2-tls", "nginx-h2-tls")
# reactor-full (the fast lane off) runs only when asked for: it shows what the lane is worth.
DEFAULT = tuple(name for name in ORDER if name != "reactor-full")
# Fixed per server, so charts from different runs read the same way.
COLORS = {"reactor": "#2b6cb0", "reactor-py": "#63b3ed", "reactor-log": "#90cdf4",
          "reactor-full": "#2c5282",
          "nginx": "#38a169", "nginx-log": "#68d391", "nginx-tuned": "#276749", "nginx-gzip": "#9ae6b4",
          "aiohttp": "#dd6b20", "http.server": "#805ad5", "bare-loop": "#a0aec0",
          "reactor-tls": "#1a365d", "nginx-tls": "#22543d",
          "reactor-h2": "#3182ce", "reactor-h2py": "#bee3f8", "nginx-h2": "#48bb78",
          "reactor-h2-tls": "#2a4365", "nginx-h2-tls": "#1c4532"}
# Ratios, the chart and the targets of the project are all stated against nginx.
BASELINE = "nginx"


@dataclass
class Scenario:
    key: str
    title: str
    short: str
    path: str
    script: str
    connections: int
    metric: str  # "rps" or "mbps"
    # HTTP/2 (h2load): requests in flight per connection, and requests in a 5 s run's worth
    # (scaled by the run's duration); `paths` cycled through instead of `path`.
    streams: int = 0
    requests: int = 0
    paths: tuple = ()

    @property
    def http2(self) -> bool:
        return self.streams > 0


SCENARIOS = (
    Scenario("ka50", "1 KiB, keep-alive, 50 connections", "1 KiB\nkeep-alive 50",
             setup.SMALL[0], "keepalive", 50, "rps"),
    Scenario("ka1000", "1 KiB, keep-alive, 1,000 connections", "1 KiB\nkeep-alive 1000",
             setup.SMALL[0], "keepalive", 1000, "rps"),
    Scenario("close", "1 KiB, new connection per request, 50 clients", "1 KiB\nnew conn",
             setup.SMALL[0], "close", 50, "rps"),
    Scenario("pipe16", "1 KiB, 16 pipelined per connection, 50 connections",
             "1 KiB\npipelined 16", setup.SMALL[0], "pipeline16", 50, "rps"),
    Scenario("100k", "100 KiB file, keep-alive, 16 connections", "100 KiB\nMB/s",
             setup.MEDIUM[0], "keepalive", 16, "mbps"),
    Scenario("10m", "10 MiB file, keep-alive, 4 connections", "10 MiB\nMB/s",
             setup.LARGE[0], "keepalive", 4, "mbps"),
    Scenario("js50", "50 KiB JavaScript, no Accept-Encoding, keep-alive, 50 connections",
             "50 KiB JS\nidentity", setup.SCRIPT[0], "keepalive", 50, "rps"),
    Scenario("js50gz", "50 KiB JavaScript, Accept-Encoding: gzip, keep-alive, 50 connections",
             "50 KiB JS\ngzip", setup.SCRIPT[0], "keepalive-gzip", 50, "rps"),
    Scenario("tls-ka50", "HTTPS 1 KiB, keep-alive, 50 connections", "HTTPS 1 KiB\nkeep-alive 50",
             setup.SMALL[0], "keepalive", 50, "rps"),
    Scenario("tls-close", "HTTPS 1 KiB, new TLS connection per request, 50 clients",
             "HTTPS 1 KiB\nnew conn", setup.SMALL[0], "close", 50, "rps"),
    Scenario("tls-100k", "HTTPS 100 KiB file, keep-alive, 16 connections", "HTTPS 100 KiB\nMB/s",
             setup.MEDIUM[0], "keepalive", 16, "mbps"),
    Scenario("tls-10m", "HTTPS 10 MiB file, keep-alive, 4 connections", "HTTPS 10 MiB\nMB/s",
             setup.LARGE[0], "keepalive", 4, "mbps"),
    Scenario("h2c", "h2c 1 KiB, 10 connections x 100 streams", "h2c 1 KiB\n-c10 -m100",
             setup.SMALL[0], "h2load", 10, "rps", streams=100, requests=200_000),
    Scenario("h2-tls", "h2 over TLS 1 KiB, 10 connections x 100 streams",
             "h2 TLS 1 KiB\n-c10 -m100", setup.SMALL[0], "h2load", 10, "rps", streams=100,
             requests=200_000),
    Scenario("h2-page", "h2 over TLS, a page of 60 assets of 1-100 KiB, 4 connections x 60 "
             "streams", "h2 TLS page\n60 assets", setup.PAGE[0][0], "h2load", 4, "rps",
             streams=60, requests=12_000, paths=tuple(path for path, _ in setup.PAGE)),
    Scenario("h2-10m", "h2 over TLS 10 MiB file, 4 connections", "h2 TLS 10 MiB\nMB/s",
             setup.LARGE[0], "h2load", 4, "mbps", streams=1, requests=80),
)
# The compression targets: reactor's gzip answers against its identity ones and against nginx
# compressing per request.
COMPRESSED, IDENTITY, PER_REQUEST = "js50gz", "js50", "nginx-gzip"
TARGETS = {"identity": 0.9, "nginx-gzip": 5.0}
# HTTPS: keep-alive at least as fast as nginx; a handshake per request and large files (no
# kTLS on these machines) within a tenth of it.
TLS_TARGETS = {"tls-ka50": 1.0, "tls-close": 0.9, "tls-10m": 0.9}
# HTTP/2: reactor ÷ nginx with http2 over TLS and h2c; h2c against reactor's own HTTP/1.1
# keep-alive (the same file, wrk at 50 connections); 10 MiB over h2 against nginx's.
H2_TARGETS = {("reactor-h2-tls", "nginx-h2-tls", "h2-tls"): 1.0,
              ("reactor-h2", "nginx-h2", "h2c"): 1.2,
              ("reactor-h2-tls", "nginx-h2-tls", "h2-10m"): 0.8}
H2_OVER_HTTP1 = (("reactor-h2", "h2c", "reactor", "ka50"), 1.0)
MEMORY_SCENARIO = "ka1000"

FULL = dict(rounds=3, duration=5.0)
QUICK = dict(rounds=1, duration=2.0)
# Work from other users of the machine above this many cores makes a run suspect: it is run
# again once (within a budget of a fifth of all runs) and the calmer of the two is kept.
RETRY_ABOVE_CORES = 0.3
# Before each run, wait (up to a per-run and a whole-run budget) for the two CPUs to be this
# quiet: between runs the servers idle, so whatever is busy then belongs to someone else.
QUIET_BELOW_CORES = 0.15
QUIET_WAIT_PER_RUN_S = 8.0
QUIET_BUDGET = {"quick": 30.0, "full": 180.0}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 round of short runs (a smoke test)")
    ap.add_argument("--json", metavar="PATH", help="write every raw figure as JSON")
    ap.add_argument("--svg", metavar="PATH", help="write a bar chart normalised to nginx = 1")
    ap.add_argument("--servers", default=",".join(DEFAULT),
                    help=f"comma-separated subset of: {', '.join(ORDER)}")
    ap.add_argument("--scenarios", help="comma-separated subset of: "
                    + ", ".join(sc.key for sc in SCENARIOS))
    ap.add_argument("--rounds", type=int, help="override the number of rounds")
    ap.add_argument("--duration", type=float, help="override seconds per wrk run")
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--wrk-cpu", type=int, default=1)
    ap.add_argument("--checkout", metavar="TAG=DIR", action="append", default=[],
                    help="also offer every reactor server as TAG-NAME (TAG-reactor, ...) run "
                         "from the checkout at DIR, its extension built: a before and after "
                         "in one interleaved run")
    args = ap.parse_args(argv)
    for checkout in args.checkout:
        tag, _, where = checkout.partition("=")
        add_checkout(tag, os.path.abspath(where))
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    unknown = [n for n in names if n not in setup.SPECS]
    if unknown:
        ap.error(f"unknown server {', '.join(unknown)}; choose from {', '.join(ORDER)}")
    args.names = names
    keys = [sc.key for sc in SCENARIOS]
    args.scenarios = [k.strip() for k in (args.scenarios or ",".join(keys)).split(",") if k.strip()]
    unknown = [k for k in args.scenarios if k not in keys]
    if unknown:
        ap.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(keys)}")
    plan = QUICK if args.quick else FULL
    args.rounds = args.rounds or plan["rounds"]
    args.duration = args.duration or plan["duration"]
    return args


def add_checkout(tag: str, where: str):
    """TAG-NAME for every reactor server NAME: the same command from another checkout."""
    global ORDER
    for name in [n for n in ORDER if n.startswith("reactor")]:
        spec = setup.SPECS[name]
        setup.SPECS[f"{tag}-{name}"] = dataclasses.replace(
            spec, name=f"{tag}-{name}", label=f"{spec.label} ({tag})", cwd=where)
        ORDER += (f"{tag}-{name}",)
        COLORS[f"{tag}-{name}"] = COLORS[name]


def raise_nofile() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; servers and wrk inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    cpu = model or "unknown CPU"
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores"


# -- running ----------------------------------------------------------------------------------

def start_servers(args, tree, workdir, digests):
    status, running = {}, {}
    for name in args.names:
        spec = setup.SPECS[name]
        entry = status[name] = {"name": name, "label": spec.label, "state": "unavailable",
                                "reason": "", "version": "", "crashes": []}
        reason = setup.prerequisite(name)
        if reason:
            entry["reason"] = reason
            print(f"  {name:12} unavailable: {reason}", flush=True)
            continue
        server = setup.Server(spec, tree, workdir, args.server_cpu, digests)
        try:
            server.start()
        except setup.Unavailable as e:
            entry["reason"] = str(e)
            print(f"  {name:12} unavailable: {e}", flush=True)
            continue
        entry.update(state="ok", version=setup.version(name), port=server.port,
                     rss_start_kib=setup.rss_kib(server.pids))
        running[name] = server
        print(f"  {name:12} ready on port {server.port} ({entry['version']})", flush=True)
    return status, running


def revive(name, server, status, where) -> bool:
    """A server that died is noted with its last log line and started again."""
    entry = status[name]
    entry["crashes"].append(f"{where}: exited {server.proc.returncode}: {server.log_tail()}")
    print(f"  {name} died ({where}); restarting", flush=True)
    server.stop()
    try:
        server.start()
        return True
    except setup.Unavailable as e:
        entry["state"] = "crashed"
        entry["reason"] = f"died ({where}) and could not restart: {e}"
        return False


class Quiet:
    """Waits for the machine to calm down before a run, within a fixed total budget."""

    def __init__(self, cpus, budget_s):
        self.cpus = set(cpus)
        self.budget_s = budget_s
        self.waited_s = 0.0

    def load(self, window_s=0.5) -> float:
        before = setup.busy_s(self.cpus)
        time.sleep(window_s)
        return (setup.busy_s(self.cpus) - before) / window_s

    def wait(self) -> float:
        """Return the load seen when the run may start."""
        start = time.monotonic()
        cores = self.load()
        while cores > QUIET_BELOW_CORES:
            spent = time.monotonic() - start
            if self.waited_s + spent >= self.budget_s or spent >= QUIET_WAIT_PER_RUN_S:
                break
            time.sleep(0.5)
            cores = self.load()
        self.waited_s += time.monotonic() - start
        return cores


def one_run(args, server, sc, scripts, quiet):
    before = quiet.wait()
    plan = load.Load(sc.connections, sc.script, args.duration)
    scheme = "https" if server.spec.tls else "http"
    with setup.RssSampler(server.pids) as rss, \
            setup.ForeignLoad(server.pids, (args.server_cpu, args.wrk_cpu)) as other:
        if sc.http2:
            requests = max(sc.connections * sc.streams,
                           round(sc.requests * args.duration / FULL["duration"]))
            result = load.run_h2load(server.port, sc.paths or (sc.path,), plan, sc.streams,
                                     requests, args.wrk_cpu, scheme)
        else:
            result = load.run(server.port, sc.path, plan, scripts, args.wrk_cpu, scheme)
    result.update(rss_peak_kib=rss.peak_kib, pss_peak_kib=rss.pss_peak_kib,
                  foreign_cores=round(other.cores, 3), load_before_cores=round(before, 3),
                  server_cpu_s=round(other.server_s, 3))
    if result.get("requests"):
        result["cpu_us"] = other.server_s * 1e6 / result["requests"]
    return result


def measure(args, running, status, scripts):
    runs = []
    names = [n for n in ORDER if n in running]
    for name in names:
        scheme = "https" if running[name].spec.tls else "http"
        if running[name].spec.http2:
            load.run_h2load(running[name].port, (setup.SMALL[0],), load.Load(4, "h2load", 1),
                            10, 2000, args.wrk_cpu, scheme)
            continue
        load.run(running[name].port, setup.SMALL[0], load.Load(50, "keepalive", 1), scripts,
                 args.wrk_cpu, scheme)
        # The compressed scenario measures the requests after the first: this one makes the
        # result that reactor keeps.
        load.run(running[name].port, setup.SCRIPT[0], load.Load(1, "keepalive-gzip", 1),
                 scripts, args.wrk_cpu, scheme)
    chosen = [sc for sc in SCENARIOS if sc.key in args.scenarios]
    total = args.rounds * sum(1 for sc in chosen for n in names
                              if sc.key not in running[n].spec.skip)
    done = 0
    retries = max(1, total // 5)
    quiet = Quiet((args.server_cpu, args.wrk_cpu),
                  QUIET_BUDGET["quick" if args.quick else "full"])
    for rnd in range(args.rounds):
        for sc in chosen:
            # A rotated order each round, so no server always runs right after a heavy one.
            shift = rnd % len(names) if names else 0
            for name in names[shift:] + names[:shift]:
                server = running[name]
                if sc.key in server.spec.skip or status[name]["state"] != "ok":
                    continue
                if not server.alive() and not revive(name, server, status,
                                                        f"between runs, before {sc.key}"):
                    continue
                result = one_run(args, server, sc, scripts, quiet)
                if result["foreign_cores"] > RETRY_ABOVE_CORES and retries > 0:
                    retries -= 1
                    again = one_run(args, server, sc, scripts, quiet)
                    if again["foreign_cores"] < result["foreign_cores"]:
                        result = again
                    result["retried"] = True
                result.update(server=name, scenario=sc.key, round=rnd + 1)
                if not server.alive():
                    result["failed"] = result.get("failed") or "server died during the run"
                    revive(name, server, status, f"{sc.key} round {rnd + 1}")
                runs.append(result)
                done += 1
                value = (f"{result[sc.metric]:,.0f} {'req/s' if sc.metric == 'rps' else 'MB/s'}"
                         f", {result.get('cpu_us', 0):.1f} us CPU/req"
                         if "failed" not in result else f"failed: {result['failed']}")
                errors = f", {result['errors']} errors" if result.get("errors") else ""
                other = (f", other load {result['foreign_cores']:.2f} cores"
                         if result["foreign_cores"] > 0.1 else "")
                print(f"  [{done:3}/{total}] round {rnd + 1} {sc.key:7} {name:12} {value}{errors}"
                      f"{other}", flush=True)
    for name, server in running.items():
        if server.alive():
            status[name]["hwm_kib"] = setup.hwm_kib(server.pids)
    return runs, quiet.waited_s


# -- summarising ------------------------------------------------------------------------------

def _ok(runs, name, key):
    return [r for r in runs if r["server"] == name and r["scenario"] == key and "failed" not in r]


def summarise(runs, status):
    summary = {}
    for name, entry in status.items():
        per = summary[name] = {}
        for sc in SCENARIOS:
            got = _ok(runs, name, sc.key)
            if not got:
                continue
            # wrk's latency is per batch when pipelining; h2load gives a mean, no percentiles.
            timed = sc.script not in ("pipeline16", "h2load")
            per[sc.key] = {
                "value": statistics.median(r[sc.metric] for r in got),
                "cpu_us": statistics.median(r.get("cpu_us", 0.0) for r in got),
                "p50_ms": statistics.median(r["p50_ms"] for r in got) if timed else None,
                "p99_ms": statistics.median(r["p99_ms"] for r in got) if timed else None,
                "errors": sum(r["errors"] for r in got),
                "requests": sum(r["requests"] for r in got),
                "rounds": len(got),
            }
        mem = _ok(runs, name, MEMORY_SCENARIO)
        if mem:
            per["rss_1000_kib"] = statistics.median(r["rss_peak_kib"] for r in mem)
            per["pss_1000_kib"] = statistics.median(r["pss_peak_kib"] for r in mem)
        if entry.get("hwm_kib"):
            per["hwm_kib"] = entry["hwm_kib"]
    return summary


def ratio(runs, a, b, key, metric=None):
    """Median over rounds of a's figure divided by b's figure in the same round (`metric`:
    the scenario's own unless named)."""
    metric = metric or next(sc.metric for sc in SCENARIOS if sc.key == key)
    mine = {r["round"]: r[metric] for r in _ok(runs, a, key) if metric in r}
    theirs = {r["round"]: r[metric] for r in _ok(runs, b, key) if metric in r}
    pairs = [mine[k] / theirs[k] for k in mine if k in theirs and theirs[k] > 0]
    return statistics.median(pairs) if pairs else None


def all_ratios(runs, status):
    names = list(status)
    return {a: {b: {sc.key: ratio(runs, a, b, sc.key) for sc in SCENARIOS}
                for b in names if b != a} for a in names}


def _cell(v, fmt):
    return "–" if v is None else fmt.format(v)


def _name(sc):
    return sc.short.replace("\n", " ").replace(" MB/s", "")


def _heading():
    return [_name(sc) for sc in SCENARIOS]


def report(args, status, summary, ratios, meta, runs) -> str:
    names = [n for n in ORDER if n in status]
    base = BASELINE if status.get(BASELINE, {}).get("state") == "ok" else next(
        (n for n in names if status[n]["state"] == "ok"), None)
    lines = [f"Server bench, {meta['date']}, {meta['machine']}; median of {args.rounds} "
             f"round(s) of {args.duration:g} s per run; server on CPU {args.server_cpu}, "
             f"wrk on CPU {args.wrk_cpu}; waited {meta.get('waited_for_quiet_s', 0):.0f} s "
             "in all for other work on the machine to pause.", ""]
    head = ["server"] + _heading() + [
        "RSS @1000 conns", "peak RSS"]
    lines += ["Requests/s (1 KiB) and MB/s (100 KiB, 10 MiB); memory in MiB, summed over the "
              "server's processes (PSS counts pages shared between them once).", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for n in names:
        entry, per = status[n], summary.get(n, {})
        if entry["state"] != "ok" and not per:
            lines.append(f"| {entry['label']} | {entry['state']}: {entry['reason']} |"
                         + " |" * (len(head) - 2))
            continue
        skip = setup.SPECS[n].skip
        cells = ["n/a" if sc.key in skip else _cell(per.get(sc.key, {}).get("value"), "{:,.0f}")
                 for sc in SCENARIOS]
        rss = _cell(per.get("rss_1000_kib") and per["rss_1000_kib"] / 1024, "{:.1f}")
        if per.get("pss_1000_kib"):
            rss += f" (PSS {per['pss_1000_kib'] / 1024:.1f})"
        cells += [rss,
                  _cell(per.get("hwm_kib") and per["hwm_kib"] / 1024, "{:.1f}")]
        lines.append(f"| {entry['label']} | " + " | ".join(cells) + " |")

    lines += ["", "The server's own CPU time (user + system, all its processes) per request, "
              "in µs: comparable between runs and machines where requests/s is not.", "",
              "| server | " + " | ".join(_heading()) + " |", "|" + "---|" * (len(SCENARIOS) + 1)]
    for n in names:
        per = summary.get(n)
        if not per:
            continue
        cells = ["n/a" if sc.key in setup.SPECS[n].skip else
                 _cell(per.get(sc.key, {}).get("cpu_us"), "{:.1f}") for sc in SCENARIOS]
        lines.append(f"| {status[n]['label']} | " + " | ".join(cells) + " |")

    if base:
        lines += ["", f"Each server ÷ {status[base]['label']} (median of per-round ratios; "
                  "memory: plain ratio of medians, lower is leaner).", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for n in names:
            if n == base or not summary.get(n):
                continue
            cells = ["n/a" if sc.key in setup.SPECS[n].skip else
                     _cell(ratios[n][base][sc.key], "{:.2f}") for sc in SCENARIOS]
            for key in ("rss_1000_kib", "hwm_kib"):
                mine, theirs = summary[n].get(key), summary[base].get(key)
                cells.append(_cell(mine / theirs if mine and theirs else None, "{:.2f}"))
            lines.append(f"| {status[n]['label']} | " + " | ".join(cells) + " |")

    for me in ("reactor", "reactor-py", "reactor-log", "reactor-tls"):
        if not summary.get(me):
            continue
        peers = [n for n in names if n != me and summary.get(n)]
        if not peers:
            continue
        lines += ["", f"{status[me]['label']} ÷ each peer (above 1: reactor is faster).", "",
                  "| peer | " + " | ".join(_heading()) + " |", "|" + "---|" * (len(head) - 2)]
        for p in peers:
            cells = ["n/a" if sc.key in setup.SPECS[p].skip else
                     _cell(ratios[me][p][sc.key], "{:.2f}") for sc in SCENARIOS]
            lines.append(f"| {status[p]['label']} | " + " | ".join(cells) + " |")
        # The same comparison in CPU time per request, which a busy machine disturbs far less.
        lines += ["", f"Each peer's CPU time per request ÷ {status[me]['label']}'s (median of "
                  "per-round ratios; above 1: reactor spends less).", "",
                  "| peer | " + " | ".join(_heading()) + " |", "|" + "---|" * (len(head) - 2)]
        for p in peers:
            cells = ["n/a" if sc.key in setup.SPECS[p].skip else
                     _cell(ratio(runs, p, me, sc.key, "cpu_us"), "{:.2f}") for sc in SCENARIOS]
            lines.append(f"| {status[p]['label']} | " + " | ".join(cells) + " |")

    # wrk's percentiles come out inconsistent under pipelining (p99 below p50), so the
    # pipelined run reports throughput only.
    latency = [sc for sc in SCENARIOS if sc.metric == "rps" and sc.script not in ("pipeline16", "h2load")]
    lines += ["", "Latency p50 / p99 in ms.", "",
              "| server | " + " | ".join(_name(sc) for sc in latency) + " |",
              "|" + "---|" * (len(latency) + 1)]
    for n in names:
        per = summary.get(n)
        if not per:
            continue
        cells = [f"{per[sc.key]['p50_ms']:.2f} / {per[sc.key]['p99_ms']:.2f}"
                 if sc.key in per else "n/a" if sc.key in setup.SPECS[n].skip else "–"
                 for sc in latency]
        lines.append(f"| {status[n]['label']} | " + " | ".join(cells) + " |")

    lines += compression_report(runs, status, summary)
    lines += tls_report(ratios, status)
    lines += h2_report(runs, ratios, status, summary)

    notes = []
    for n in names:
        for sc in SCENARIOS:
            got = summary.get(n, {}).get(sc.key)
            if got and got["errors"]:
                notes.append(f"- {status[n]['label']}, {sc.title}: {got['errors']:,} socket "
                             f"errors or non-2xx answers over {got['requests']:,} requests.")
        skip = setup.SPECS[n].skip
        if any(key in args.scenarios for key in skip) and summary.get(n):
            notes.append(f"- {status[n]['label']} sits out " + "; ".join(
                f"{_name(sc)} ({skip[sc.key]})"
                for sc in SCENARIOS if sc.key in skip and sc.key in args.scenarios) + ".")
        busy = [r for r in runs if r["server"] == n and r["foreign_cores"] > RETRY_ABOVE_CORES]
        if busy:
            notes.append(f"- {status[n]['label']}: {len(busy)} run(s) shared the machine with "
                         f"other work (up to {max(r['foreign_cores'] for r in busy):.2f} cores).")
        for crash in status[n]["crashes"]:
            notes.append(f"- {status[n]['label']} died: {crash}")
    if notes:
        lines += ["", "Notes:"] + notes
    return "\n".join(lines)


def _pair_ratio(runs, a, a_key, b, b_key):
    """Median over rounds of a's requests/s in a_key ÷ b's in b_key in the same round."""
    mine = {r["round"]: r["rps"] for r in _ok(runs, a, a_key)}
    theirs = {r["round"]: r["rps"] for r in _ok(runs, b, b_key)}
    pairs = [mine[k] / theirs[k] for k in mine if k in theirs and theirs[k] > 0]
    return statistics.median(pairs) if pairs else None


def compression_report(runs, status, summary) -> list:
    """The compression targets, and the bytes per answer that show what was really sent."""
    if not summary.get("reactor", {}).get(COMPRESSED):
        return []
    lines = ["", "Compression: the 50 KiB script with Accept-Encoding: gzip, after the first "
             "request (reactor keeps what it compressed; nginx compresses each time).", "",
             "| server | identity req/s | gzip req/s | bytes per gzip answer | "
             "gzip CPU µs/req |", "|---|---|---|---|---|"]
    for n in ("reactor", "nginx", PER_REQUEST):
        per = summary.get(n, {})
        if not per.get(COMPRESSED) and not per.get(IDENTITY):
            continue
        got = _ok(runs, n, COMPRESSED)
        size = statistics.median(r["bytes"] / r["requests"] for r in got if r["requests"]) \
            if got else None
        lines.append(f"| {status[n]['label']} | "
                     f"{_cell(per.get(IDENTITY, {}).get('value'), '{:,.0f}')} | "
                     f"{_cell(per.get(COMPRESSED, {}).get('value'), '{:,.0f}')} | "
                     f"{_cell(size, '{:,.0f}')} | "
                     f"{_cell(per.get(COMPRESSED, {}).get('cpu_us'), '{:.1f}')} |")
    checks = (("reactor gzip ÷ reactor identity", _pair_ratio(
        runs, "reactor", COMPRESSED, "reactor", IDENTITY), TARGETS["identity"]),
              (f"reactor gzip ÷ {status.get(PER_REQUEST, {}).get('label', PER_REQUEST)} gzip",
               _pair_ratio(runs, "reactor", COMPRESSED, PER_REQUEST, COMPRESSED),
               TARGETS["nginx-gzip"]))
    lines += [""] + _verdicts(checks)
    # Requests/s of two servers move together only on a quiet machine; CPU time per request
    # is each server's own, so it holds up when other work shares the cores.
    mine = summary["reactor"][COMPRESSED].get("cpu_us")
    for n, key, what in (("reactor", IDENTITY, "identity"), (PER_REQUEST, COMPRESSED, "gzip")):
        theirs = summary.get(n, {}).get(key, {}).get("cpu_us")
        if mine and theirs:
            lines.append(f"- CPU per request, {status[n]['label']} {what} ÷ reactor gzip: "
                         f"{theirs / mine:.2f}")
    return lines


def _verdicts(checks) -> list:
    return [f"- {label}: {_cell(value, '{:.2f}')} (target ≥ {target:g}: "
            f"{'–' if value is None else 'met' if value >= target else 'NOT met'})"
            for label, value, target in checks]


def tls_report(ratios, status) -> list:
    """The HTTPS targets: reactor ÷ nginx, both with the same certificate and suites."""
    mine = ratios.get("reactor-tls", {}).get("nginx-tls")
    if not mine or all(mine[key] is None for key in TLS_TARGETS):
        return []
    titles = {sc.key: sc.title for sc in SCENARIOS}
    return ["", f"HTTPS targets, reactor ÷ {status['nginx-tls']['label']}:", ""] + _verdicts(
        (titles[key], mine[key], target) for key, target in TLS_TARGETS.items())


def h2_report(runs, ratios, status, summary) -> list:
    """The HTTP/2 targets, in requests/s (or MB/s) and in CPU per request."""
    lines = []
    titles = {sc.key: sc.title for sc in SCENARIOS}
    checks, cpu = [], []
    for (mine, theirs, key), target in H2_TARGETS.items():
        value = ratios.get(mine, {}).get(theirs, {}).get(key)
        if value is None:
            continue
        checks.append((f"{titles[key]}: {status[mine]['label']} ÷ {status[theirs]['label']}",
                       value, target))
        a = summary.get(mine, {}).get(key, {}).get("cpu_us")
        b = summary.get(theirs, {}).get(key, {}).get("cpu_us")
        if a and b:
            cpu.append(f"- CPU per request, {titles[key]}: {status[theirs]['label']} ÷ "
                       f"{status[mine]['label']}: {b / a:.2f} ({a:.1f} against {b:.1f} µs)")
    (mine, key, theirs, their_key), target = H2_OVER_HTTP1
    value = _pair_ratio(runs, mine, key, theirs, their_key)
    if value is not None:
        checks.append((f"{status[mine]['label']} {key} ÷ {status[theirs]['label']} "
                       f"{their_key} (HTTP/1.1 keep-alive)", value, target))
    slow = summary.get("reactor-h2py", {}).get("h2c", {}).get("cpu_us")
    fast = summary.get("reactor-h2", {}).get("h2c", {}).get("cpu_us")
    if slow and fast:
        cpu.append(f"- The pure-Python engine costs {slow:.1f} µs per request against "
                   f"{fast:.1f} with libnghttp2 ({slow / fast:.1f}x)")
    if checks:
        lines = ["", "HTTP/2 targets (h2load; median of per-round ratios):", ""]
        lines += _verdicts(checks) + cpu
    return lines


def _short(v, metric):
    if metric == "mbps":
        return f"{v:.0f}"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v / 1e3:.1f}k"


def svg(status, summary, ratios, meta, args) -> str:
    names = [n for n in ORDER if summary.get(n)]
    base = BASELINE if summary.get(BASELINE) else (names[0] if names else None)
    values, labels = {}, {}
    for n in names:
        label = status[n]["label"]
        values[label], labels[label] = {}, {}
        for sc in SCENARIOS:
            got = summary[n].get(sc.key)
            if not got:
                continue
            values[label][sc.short] = 1.0 if n == base else ratios[n][base][sc.key]
            labels[label][sc.short] = _short(got["value"], sc.metric)
    base_label = status[base]["label"] if base else ""
    return chart.grouped_bars(
        f"Static file serving, one core each: throughput relative to {base_label} = 1",
        [sc.short for sc in SCENARIOS], [status[n]["label"] for n in names], values,
        log=True, reference=1.0, reference_label=f"{status[base]['name'] if base else ''} = 1",
        labels=labels, colors={status[n]["label"]: COLORS[n] for n in names},
        ylabel=f"÷ {base_label} (log scale, higher is better)",
        note=f"Bar labels: req/s or MB/s. Median of {args.rounds} round(s), {meta['date']}, "
             f"{meta['machine']}.")


def main(argv=None) -> int:
    args = parse_args(argv)
    nofile = raise_nofile()
    # The harness itself (memory sampling, bookkeeping) stays off the server's core.
    os.sched_setaffinity(0, {args.wrk_cpu})
    missing = setup.ensure_command("wrk", "wrk") or setup.ensure_command("taskset", "util-linux")
    if missing:
        print(f"cannot measure anything: {missing}", file=sys.stderr)
        return 2
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(), "python": sys.version.split()[0], "wrk": load.wrk_version(),
            "rounds": args.rounds, "duration_s": args.duration, "nofile": nofile,
            "server_cpu": args.server_cpu, "wrk_cpu": args.wrk_cpu,
            "command": " ".join(["python", "bench/server.py"] + (argv or sys.argv[1:]))}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reactor-bench-") as workdir:
        tree = os.path.join(workdir, "tree")
        os.mkdir(tree)
        digests = setup.build_tree(tree)
        scripts = load.write_scripts(workdir)
        print("starting servers:", flush=True)
        status, running = start_servers(args, tree, workdir, digests)
        try:
            runs, meta["waited_for_quiet_s"] = measure(args, running, status, scripts)
        finally:
            for server in running.values():
                server.stop()
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    summary = summarise(runs, status)
    ratios = all_ratios(runs, status)
    print()
    print(report(args, status, summary, ratios, meta, runs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "scenarios": [asdict(sc) for sc in SCENARIOS],
                       "servers": status, "runs": runs, "summary": summary, "ratios": ratios},
                      f, indent=1)
        print(f"\nraw figures: {args.json}")
    if args.svg:
        with open(args.svg, "w") as f:
            f.write(svg(status, summary, ratios, meta, args))
        print(f"chart: {args.svg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
