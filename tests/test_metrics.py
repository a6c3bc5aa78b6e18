"""Metrics: what one server counts, in Prometheus' text format, over real sockets; who may read
them; and the sums over workers, kept when a worker dies."""

import os
import re
import signal
import time

import pytest
from netutil import exchange, fetch, wait_until
from processes import get

from reactor.ops.metrics import _ACCEPTED as ACCEPTED
from reactor.ops.metrics import BUCKETS, SIZE, Shared


def scrape(port) -> dict:
    """{'name{labels}': value} of one scrape."""
    response, body = fetch(port, "/metrics")
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/plain; version=0.0.4")
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


@pytest.fixture
def site(tmp_path):
    (tmp_path / "index.html").write_bytes(b"x" * 1000)
    return tmp_path


def test_one_server_counts_requests_durations_bytes_rejections_and_connections(
        server_factory, site):
    running = server_factory(root=str(site), metrics="/metrics", max_body=10)
    for _ in range(3):
        assert fetch(running.port, "/")[1] == b"x" * 1000
    fetch(running.port, "/", method="HEAD")
    fetch(running.port, "/missing")
    assert exchange(running.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99\r\n\r\n"
                    ).startswith(b"HTTP/1.1 413")
    assert wait_until(lambda: not running.server.connections)   # the 413's has lingered
    samples = scrape(running.port)
    get_2xx = 'http_server_requests_total{http_request_method="GET",http_response_status_class="2xx"}'
    assert samples[get_2xx] == 3
    assert samples['http_server_requests_total{http_request_method="GET",'
                   'http_response_status_class="4xx"}'] == 1
    assert samples['http_server_requests_total{http_request_method="HEAD",'
                   'http_response_status_class="2xx"}'] == 1
    buckets = [samples[f'http_server_request_duration_seconds_bucket{{http_request_method="GET"'
                       f',le="{bound}"}}'] for bound in (*BUCKETS, "+Inf")]
    assert buckets == sorted(buckets) and buckets[-1] == 4
    assert samples['http_server_request_duration_seconds_count{http_request_method="GET"}'] == 4
    assert 0 < samples['http_server_request_duration_seconds_sum{http_request_method="GET"}'] < 4
    assert samples["reactor_http_response_body_bytes_total"] >= 3000
    assert samples["reactor_connections_accepted_total"] == 7      # the scrape's included
    assert samples["reactor_connections_handled_total"] == 7
    assert samples['reactor_limit_rejections_total{reason="body_too_large"}'] == 1
    assert samples['reactor_connections{state="writing"}'] == 1    # the scrape itself
    assert samples["reactor_cache_hits_total"] + samples["reactor_cache_misses_total"] >= 5
    again = scrape(running.port)
    assert again[get_2xx] == 4 and "/metrics" not in str(again)  # the scrape; no path label
    # Pipelined on one connection: answered by the fast lane once the answer is ready.
    exchange(running.port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 5)
    assert scrape(running.port)[get_2xx] == 10


def test_metrics_are_only_for_allowed_clients(server_factory, site):
    running = server_factory(root=str(site), metrics="/metrics", metrics_allow=("10.0.0.1",))
    response, _ = fetch(running.port, "/metrics")
    assert response.status == 404   # as if there were no such path


def test_metrics_are_summed_over_workers_and_kept_when_a_worker_dies(cli):
    server = cli("--workers", "2", "--metrics", "/metrics")
    for _ in range(40):
        assert get(server.port).startswith(b"HTTP/1.1 200")
    key = 'http_server_requests_total{http_request_method="GET",http_response_status_class="2xx"}'
    # Each worker publishes once a second; the scrapes count themselves too.
    assert wait_until(lambda: scrape(server.port).get(key, 0) >= 40, timeout=5)
    time.sleep(1.2)
    before = scrape(server.port)[key]
    victim = min(server.workers())
    os.kill(victim, signal.SIGKILL)
    assert wait_until(lambda: len(server.workers()) == 2 and victim not in server.workers())
    assert scrape(server.port)[key] >= before
    assert server.stop() == 0


def test_a_freed_region_is_folded_into_the_departed():
    shared = Shared(regions=3)
    index = shared.take()
    region = shared.region(index)
    region[0] = 5.0
    region[ACCEPTED] = 1.0
    region[SIZE - 1] = 2.0   # a gauge: not kept once its worker is gone
    assert shared.totals()[0] == 5.0 and shared.totals()[SIZE - 1] == 2.0
    shared.release(index)
    assert shared.totals()[0] == 5.0 and shared.totals()[SIZE - 1] == 0.0
    assert list(shared.region(index)) == [0.0] * SIZE and shared.take() == index


def test_exposition_has_help_and_type_for_every_family(server_factory, site):
    running = server_factory(root=str(site), metrics="/metrics")
    fetch(running.port, "/")
    body = fetch(running.port, "/metrics")[1].decode()
    families = set(re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M))
    assert ("http_server_request_duration_seconds", "histogram") in families
    for line in body.splitlines():
        if not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)   # Prometheus names
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert any(family in (name, base) for family, _ in families), line
