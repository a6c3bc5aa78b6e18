"""Parser bench: ns per fully parsed request on the shared corpus, reactor against its peers.

Parsers, all measured in the same run on the same bytes:
- reactor-c / reactor-py: RequestParser.parse, then every request's header pairs built
  (req.headers), so each yields method, target, version and all (name, value) pairs.
- httptools: llhttp with callbacks collecting the URL and every header pair, then method and
  version read per request.
- h11: its request reader (one Connection per request; it will not read ahead of a response).
- reactor-c-server: the server's own path, parse() producing Request objects, against
- httptools-server: httptools with callbacks building the same Request objects (lower-cased
  flat fields, method and target as str, version, keep-alive, and a pass over the fields for
  Content-Length, Transfer-Encoding and Expect, with none of reactor's checks).

Usage: python bench/parser.py [--corpus DIR] [--repeat N] [--python-only] [--json PATH] [--svg PATH]
Prints a table of ns per request with ratios against httptools (and the server pair against
httptools-server). Measures the installed reactor (`pip install -e '.[bench]'` from a checkout)
and stops with one line when its C backend cannot be loaded, unless --python-only; httptools
and h11 come with the bench extra, and a peer that is missing is left out of the table. The
corpus is ../shared/corpus beside the checkout, $REACTOR_CORPUS, or --corpus DIR.
"""

import argparse
import json
import os
import statistics
import sys
import time

from chart import grouped_bars  # bench/ is sys.path[0] when run as a script

try:
    from reactor.http import _pyparser
    from reactor.http.request import Request
except ImportError:
    raise SystemExit("bench/parser.py: reactor is not installed "
                     "(from the checkout: pip install -e '.[bench]')") from None

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.environ.get("REACTOR_CORPUS",
                        os.path.join(os.path.dirname(CHECKOUT), "shared", "corpus"))
CASES = [("a_bench_get", "browser GET"), ("b_minimal", "minimal GET"),
         ("c_many_headers", "30 headers"), ("d_pipelined16", "16 pipelined GETs")]


def reactor_full(module):
    parser = module.RequestParser()

    def run(buf):
        requests = parser.parse(buf)[0]
        return [(r.method, r.target, r.version, r.headers) for r in requests]
    return run


def reactor_server(module):
    parse = module.RequestParser().parse

    def run(buf):
        return parse(buf)[0]
    return run


def httptools_full():
    import httptools

    class Collect:
        __slots__ = ("parser", "out", "url", "headers")

        def on_message_begin(self):
            self.headers = []

        def on_url(self, url):
            self.url = url

        def on_header(self, name, value):
            self.headers.append((name, value))

        def on_headers_complete(self):
            p = self.parser
            self.out.append((p.get_method(), self.url, p.get_http_version(), self.headers))

    def run(buf):
        c = Collect()
        c.out = []
        c.parser = httptools.HttpRequestParser(c)
        c.parser.feed_data(buf)
        return c.out
    return run


FRAMING = frozenset((b"content-length", b"transfer-encoding", b"expect"))


def httptools_server():
    import httptools

    class Build:
        __slots__ = ("parser", "out", "url", "fields")

        def on_message_begin(self):
            self.fields = []

        def on_url(self, url):
            self.url = url

        def on_header(self, name, value):
            self.fields += (name.lower(), value)

        def on_headers_complete(self):
            # The framing fields the server needs, which llhttp does not hand out as values.
            fields = self.fields
            content_length, chunked, expect = None, False, False
            for i in range(0, len(fields), 2):
                name = fields[i]
                if name in FRAMING:
                    if name == b"content-length":
                        content_length = int(fields[i + 1])
                    elif name == b"transfer-encoding":
                        chunked = True
                    else:
                        expect = True
            p = self.parser
            self.out.append(Request(p.get_method().decode("ascii"), self.url.decode("latin-1"),
                                    11 if p.get_http_version() == "1.1" else 10, fields,
                                    content_length, chunked, p.should_keep_alive(), expect))

    def run(buf):
        b = Build()
        b.out = []
        b.parser = httptools.HttpRequestParser(b)
        b.parser.feed_data(buf)
        return b.out
    return run


def h11_full(heads):
    import h11

    def run(buf):
        out = []
        for head in heads[buf]:
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(head)
            event = conn.next_event()
            out.append((event.method, event.target, event.http_version, list(event.headers)))
        return out
    return run


def split_heads(buf):
    """The corpus items as separate heads (for h11, which reads one request per cycle)."""
    return [part + b"\r\n\r\n" for part in buf.split(b"\r\n\r\n") if part]


def calibrate(run, buf, budget=0.02):
    """Loops of run(buf) that take about `budget` seconds."""
    loops = 1
    while True:
        t = time.perf_counter()
        for _ in range(loops):
            run(buf)
        if time.perf_counter() - t > budget:
            return loops
        loops *= 2


def measure(found, buf, requests, repeat):
    """{parser: median ns per request}. The parsers take turns within every round, so load
    from other processes on the machine falls on all of them alike."""
    loops = {name: calibrate(run, buf) for name, run in found.items()}
    rounds = {name: [] for name in found}
    for _ in range(repeat):
        for name, run in found.items():
            n = loops[name]
            t = time.perf_counter_ns()
            for _ in range(n):
                run(buf)
            rounds[name].append((time.perf_counter_ns() - t) / (n * requests))
    return {name: statistics.median(r) for name, r in rounds.items()}


def parsers(bufs, python_only):
    found = {}
    if not python_only:
        try:
            from reactor.http import _cparser
        except ImportError as error:
            raise SystemExit(f"bench/parser.py: the C parser of the reactor in "
                             f"{os.path.dirname(_pyparser.__file__)} cannot be loaded ({error}); "
                             f"build it with pip install -e . or pass --python-only") from None
        found["reactor-c"] = reactor_full(_cparser)
        found["reactor-c-server"] = reactor_server(_cparser)
    found["reactor-py"] = reactor_full(_pyparser)
    try:
        found["httptools"] = httptools_full()
        found["httptools-server"] = httptools_server()
    except ImportError:
        print("httptools left out: pip install httptools", file=sys.stderr)
    try:
        found["h11"] = h11_full({buf: split_heads(buf) for buf in bufs})
    except ImportError:
        print("h11 left out: pip install h11", file=sys.stderr)
    return found


ORDER = ["reactor-c", "reactor-py", "httptools", "h11", "reactor-c-server", "httptools-server"]


def table(results):
    names = [n for n in ORDER if any(n in r for r in results.values())]
    lines = ["ns per request (median); x = time / httptools "
             "(server path: / httptools-server); lower is better", ""]
    lines.append(f"{'case':<16}" + "".join(f"{n:>22}" for n in names))
    for case, row in results.items():
        cells = []
        for n in names:
            ns = row.get(n)
            base = row.get("httptools-server" if n.endswith("-server") else "httptools")
            if ns is None:
                cells.append(f"{'-':>22}")
            elif base:
                cells.append(f"{ns:>12,.0f} ({ns / base:4.2f}x)")
            else:
                cells.append(f"{ns:>22,.0f}")
        lines.append(f"{case:<16}" + "".join(cells))
    return "\n".join(lines)


def svg(results, path):
    """The table as a chart: ns per request for each corpus item, log scale."""
    names = [n for n in ORDER if any(n in r for r in results.values())]
    values = {n: {case: row.get(n) for case, row in results.items()} for n in names}
    labels = {n: {case: f"{v:,.0f}" for case, v in row.items() if v} for n, row in values.items()}
    with open(path, "w") as f:
        f.write(grouped_bars("Request parsers: ns per request (lower is better)", list(results),
                             names, values, log=True, ylabel="ns per request", labels=labels))


def read_corpus(directory) -> dict:
    names = [name for name, _ in CASES]
    missing = [n + ".txt" for n in names if not os.path.isfile(os.path.join(directory, n + ".txt"))]
    if missing:
        raise SystemExit(f"bench/parser.py: the corpus in {directory} lacks {', '.join(missing)} "
                         f"(pass --corpus DIR or set REACTOR_CORPUS)")
    bufs = {}
    for name in names:
        with open(os.path.join(directory, name + ".txt"), "rb") as f:
            bufs[name] = f.read()
    return bufs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=CORPUS)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--only", help="comma-separated parser names")
    ap.add_argument("--python-only", action="store_true",
                    help="measure without reactor's C backend")
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument("--svg", metavar="PATH")
    args = ap.parse_args(argv)

    bufs = read_corpus(args.corpus)
    found = parsers(list(bufs.values()), args.python_only)
    if args.only:
        found = {n: run for n, run in found.items() if n in args.only.split(",")}

    results = {}
    for case, buf in bufs.items():
        want = len(split_heads(buf))
        for name, run in found.items():
            got = run(buf)
            if len(got) != want:
                raise SystemExit(f"{name} parsed {len(got)} requests of {case}, not {want}")
        results[case] = measure(found, buf, want, args.repeat)
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if args.svg:
        svg(results, args.svg)


if __name__ == "__main__":
    main()
