"""Counters of what the servers did, summed over every worker, in Prometheus' text format.

A worker counts into a local array of doubles (a few increments per request, no lock, no
system call) and copies it once a second, and before answering a scrape, into its own region
of a shared anonymous mapping that the supervisor made before forking. A scrape, answered by
whichever worker takes it, sums every region; when a worker exits, the supervisor folds its
region into the region of the departed, so totals never go back. With one process the mapping
is private and has one region.

Names: the OpenTelemetry HTTP server metric `http.server.request.duration`, exported as
`http_server_request_duration_seconds` with OTel's attribute names as labels, and buckets from
50 us (a static file takes tens of microseconds) up to OTel's advised 10 s; nginx's connection
states (reading, writing, waiting), accepted and handled connections; limit rejections by
reason; cache hits. No label takes a path or a Host, so the series are a fixed set.

Imports nothing of the server: it reads a server's counters through the attributes it is
given, and the server calls `count` where a response is decided.
"""

import array
import bisect
import mmap
import time

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
           "_OTHER")
_METHOD = {name: index for index, name in enumerate(METHODS)}
_OTHER = _METHOD["_OTHER"]
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075,
           0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
CONNECTION_STATES = ("reading", "writing", "waiting")

# Limit rejections: the status a refused request gets, and the reason it is shown under.
REJECTIONS = {400: "bad_request", 408: "header_timeout", 413: "body_too_large",
              414: "request_line_too_long", 417: "expectation", 431: "head_too_large",
              501: "transfer_coding", 505: "http_version"}
_REJECTION = {status: index for index, status in enumerate(REJECTIONS)}

# HTTP/2 guards: why a connection got GOAWAY for its peer's doing (send_timeout: a stream was
# reset because its window never opened), and what the guards counted on closed connections.
H2_GOAWAYS = ("glitches", "resets", "hpack_bomb", "flooded", "continuations", "protocol",
              "send_timeout")
H2_GUARDS = ("glitches", "resets_received", "resets_sent", "too_large")

# The layout of one region: offsets of each family of counters.
_REQUESTS = 0                                             # method x status class
_DURATION = _REQUESTS + len(METHODS) * len(STATUS_CLASSES)  # method x (buckets + +Inf)
_WIDTH = len(BUCKETS) + 1
_DURATION_SUM = _DURATION + len(METHODS) * _WIDTH          # method
_BODY_BYTES = _DURATION_SUM + len(METHODS)
_ACCEPTED = _BODY_BYTES + 1
_HANDLED = _ACCEPTED + 1
_CACHE_HITS = _HANDLED + 1
_CACHE_MISSES = _CACHE_HITS + 1
_REJECTED = _CACHE_MISSES + 1                             # per REJECTIONS entry
_H2_GOAWAYS = _REJECTED + len(REJECTIONS)                  # per H2_GOAWAYS entry
_H2_GUARDS = _H2_GOAWAYS + len(H2_GOAWAYS)                 # per H2_GUARDS entry
_CONNECTIONS = _H2_GUARDS + len(H2_GUARDS)                 # gauges, per CONNECTION_STATES
_H2_ENGINE_BYTES = _CONNECTIONS + len(CONNECTION_STATES)   # gauge
SIZE = _H2_ENGINE_BYTES + 1
_GAUGES = range(_CONNECTIONS, SIZE)

# Worker processes whose counters can be kept apart at once (with those of a rolling
# restart, which overlap). Region 0 holds the sums of the workers that have exited.
REGIONS = 256
_REGION_BYTES = SIZE * 8


class Shared:
    """The shared mapping: REGIONS regions of SIZE doubles. Make it before forking."""

    def __init__(self, regions: int = REGIONS):
        self.map = mmap.mmap(-1, regions * _REGION_BYTES,
                             flags=mmap.MAP_SHARED | getattr(mmap, "MAP_ANONYMOUS", 0x20))
        self.view = memoryview(self.map).cast("d")
        self.free = list(range(regions - 1, 0, -1))

    def region(self, index: int) -> memoryview:
        return self.view[index * SIZE:(index + 1) * SIZE]

    def take(self):
        """A free region's index for a new worker, or None when all are in use."""
        return self.free.pop() if self.free else None

    def release(self, index: int):
        """Fold a departed worker's counters into region 0 and free its region."""
        region, departed = self.region(index), self.region(0)
        for i in range(SIZE):
            if i not in _GAUGES:
                departed[i] += region[i]
            region[i] = 0.0
        self.free.append(index)

    def totals(self) -> list:
        """The sums over every region. A region whose worker accepted nothing holds nothing
        (all it counts follows from connections), so it is skipped."""
        sums = self.region(0).tolist()
        view = self.view
        for start in range(SIZE, len(view), SIZE):
            if view[start + _ACCEPTED]:
                sums = [a + b for a, b in zip(sums, view[start:start + SIZE].tolist())]
        return sums


class Metrics:
    """One worker's counters. `count` is on the request path; the rest runs once a second."""

    def __init__(self, server, shared: Shared, region):
        self.server = server
        self.shared = shared
        self.local = [0.0] * SIZE    # a list: its items are cheaper to add to than an array's
        self.region = shared.region(region) if region is not None else None
        self._clock = time.monotonic

    def count(self, method: str, status: int, length, started: float):
        """One response decided: `started` is the loop time its request arrived."""
        local = self.local
        m = _METHOD.get(method, _OTHER)
        local[m * 5 + status // 100 - 1] += 1.0
        elapsed = self._clock() - started
        # Most answers take well under a millisecond: the first buckets without a search.
        if elapsed <= 0.0001:
            bucket = 0 if elapsed <= 0.00005 else 1
        else:
            bucket = bisect.bisect_left(BUCKETS, elapsed)
        local[_DURATION + m * _WIDTH + bucket] += 1.0
        local[_DURATION_SUM + m] += elapsed
        if length:
            local[_BODY_BYTES] += length

    def count_ready(self, logged, keys, answers, started: float):
        """The fast lane's answers to one read: `logged[key]` is (request, status, head
        length) of each, `answers` their messages. One call and one clock reading for all of
        them, as they go out together: this is the cheapest path, and counted as such."""
        local = self.local
        elapsed = self._clock() - started
        if elapsed <= 0.0001:
            bucket = 0 if elapsed <= 0.00005 else 1
        else:
            bucket = bisect.bisect_left(BUCKETS, elapsed)
        for key, message in zip(keys, answers):
            request, status, head = logged[key]
            m = _METHOD.get(request.method, _OTHER)
            local[m * 5 + status // 100 - 1] += 1.0
            local[_DURATION + m * _WIDTH + bucket] += 1.0
            local[_DURATION_SUM + m] += elapsed
            local[_BODY_BYTES] += len(message) - head

    def publish(self):
        """Copy the counters, and the gauges read now, to this worker's shared region."""
        local = self.local
        server = self.server
        local[_ACCEPTED] = server.accepted
        local[_HANDLED] = server.handled
        from ..static.handler import CACHE_COUNTS
        local[_CACHE_HITS], local[_CACHE_MISSES] = CACHE_COUNTS
        for status, count in server.rejected.items():
            index = _REJECTION.get(status)
            if index is not None:
                local[_REJECTED + index] = count
        for start, names, counts in ((_H2_GOAWAYS, H2_GOAWAYS, server.h2_goaways),
                                     (_H2_GUARDS, H2_GUARDS, server.h2_guards)):
            for i, name in enumerate(names):
                local[start + i] = counts.get(name, 0)
        states = [0, 0, 0]
        for connection in server.connections:
            states[_STATE.get(connection.state.name, 1)] += 1
        local[_CONNECTIONS:_H2_ENGINE_BYTES] = states
        local[_H2_ENGINE_BYTES] = server.h2_engine_bytes()
        if self.region is not None:
            self.region[:] = array.array("d", local)

    def render(self) -> bytes:
        self.publish()
        totals = self.shared.totals() if self.region is not None else self.local
        return exposition(totals)


_STATE = {"IDLE": 2, "READING_HEAD": 0, "READING_BODY": 0, "WRITING": 1, "CLOSING": 1}


def exposition(totals) -> bytes:
    """The Prometheus text format (version 0.0.4) of a region's worth of sums."""
    out = []

    def family(name, kind, text):
        out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")

    family("http_server_requests_total", "counter", "Responses by method and status class.")
    for m, method in enumerate(METHODS):
        for c, status_class in enumerate(STATUS_CLASSES):
            value = totals[_REQUESTS + m * 5 + c]
            if value:
                out.append(f'http_server_requests_total{{http_request_method="{method}",'
                           f'http_response_status_class="{status_class}"}} {value:.0f}\n')
    family("http_server_request_duration_seconds", "histogram",
           "Time from a request's arrival to its response being ready.")
    for m, method in enumerate(METHODS):
        counts = totals[_DURATION + m * _WIDTH:_DURATION + (m + 1) * _WIDTH]
        if not any(counts):
            continue
        labels = f'http_request_method="{method}"'
        running = 0.0
        for bound, count in zip((*BUCKETS, "+Inf"), counts):
            running += count
            out.append(f'http_server_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                       f"{running:.0f}\n")
        out.append(f"http_server_request_duration_seconds_sum{{{labels}}} "
                   f"{totals[_DURATION_SUM + m]!r}\n")
        out.append(f"http_server_request_duration_seconds_count{{{labels}}} {running:.0f}\n")
    for name, index, text in (
            ("reactor_http_response_body_bytes_total", _BODY_BYTES, "Response body bytes."),
            ("reactor_connections_accepted_total", _ACCEPTED, "Connections accepted."),
            ("reactor_connections_handled_total", _HANDLED,
             "Connections served (accepted, less those closed for a bad PROXY header)."),
            ("reactor_cache_hits_total", _CACHE_HITS,
             "Static GET/HEAD answered from the answers kept in memory."),
            ("reactor_cache_misses_total", _CACHE_MISSES, "Static GET/HEAD that took the full path.")):
        family(name, "counter", text)
        out.append(f"{name} {totals[index]:.0f}\n")
    family("reactor_limit_rejections_total", "counter", "Requests refused by a limit or rule.")
    for i, reason in enumerate(REJECTIONS.values()):
        out.append(f'reactor_limit_rejections_total{{reason="{reason}"}} '
                   f"{totals[_REJECTED + i]:.0f}\n")
    family("reactor_http2_goaways_total", "counter",
           "HTTP/2 connections ended (streams reset, for send_timeout) by a guard, by reason.")
    for i, reason in enumerate(H2_GOAWAYS):
        out.append(f'reactor_http2_goaways_total{{reason="{reason}"}} '
                   f"{totals[_H2_GOAWAYS + i]:.0f}\n")
    family("reactor_http2_guard_events_total", "counter",
           "What the HTTP/2 guards counted on closed connections: glitches (frames that ask "
           "for nothing), resets received and provoked, header lists over the limit.")
    for i, name in enumerate(H2_GUARDS):
        out.append(f'reactor_http2_guard_events_total{{event="{name}"}} '
                   f"{totals[_H2_GUARDS + i]:.0f}\n")
    family("reactor_connections", "gauge", "Open connections by state (as nginx counts them).")
    for i, state in enumerate(CONNECTION_STATES):
        out.append(f'reactor_connections{{state="{state}"}} {totals[_CONNECTIONS + i]:.0f}\n')
    family("reactor_http2_engine_bytes", "gauge",
           "Memory the HTTP/2 engine's library holds for the open HTTP/2 connections.")
    out.append(f"reactor_http2_engine_bytes {totals[_H2_ENGINE_BYTES]:.0f}\n")
    return "".join(out).encode()
