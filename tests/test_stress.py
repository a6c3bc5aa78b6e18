"""Short forms of bench/stress.py: hostile clients beside a good one, a low open-file limit,
and many idle connections beside a fresh client. The long forms and their figures are the
script's."""

import resource
import sys
import time
from pathlib import Path

import pytest
from netutil import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import stress  # noqa: E402


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return stress.make_site(str(tmp_path_factory.mktemp("site")))


def test_hostile_clients_do_not_cost_a_good_client_its_service(server_factory, site):
    srv = server_factory(root=site, header_timeout=1.0, send_timeout=1.0)
    mix = stress.HostileMix(srv.port, dict(reset=4, stall=8, trickle=8, garbage=4), 4.0)
    time.sleep(0.5)
    latencies, errors = stress.probe(srv.port, 2.5)
    stats = mix.stats()
    assert errors == 0 and len(latencies) > 200
    assert stress.percentile(latencies, 99) < 0.5
    assert stats["resets"] and stats["garbage_refused"] == stats["garbage"] > 0
    assert stats["trickle_408"] and stats["stalled"] == 8 and not stats["connect_errors"]
    assert stress.fetch(srv.port)[0] == 200
    assert wait_until(lambda: len(srv.server.connections) == 0, 5)


def test_server_serves_normally_after_running_out_of_descriptors(site):
    with stress.Reactor(site, nofile=64) as server:
        answered, failed = stress.offer(server.port, 200, hold=1.0)
        assert 0 < answered < 200 and failed == 0
        status, seconds = stress.fetch(server.port)
        assert status == 200 and seconds < 1.5
        assert all(stress.fetch(server.port)[0] == 200 for _ in range(50))
        assert server.alive()
    assert "exceeds the open-file limit of 64" in server.errors()


def test_many_idle_connections_and_a_fresh_client(server_factory, site):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2500:
        pytest.skip("both ends of 1,000 connections need 2,500 descriptors in this process")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    srv = server_factory(root=site)
    held, errors = stress.hold_idle(srv.port, 1000)
    try:
        assert errors == 0 and len(srv.server.connections) == 1000
        status, seconds = stress.fetch(srv.port)
        assert status == 200 and seconds < 1.0
    finally:
        for sock in held:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_slow_bodies_are_refused_at_once_and_cost_a_fresh_client_nothing(server_factory, site):
    srv = server_factory(root=site)
    mix = stress.HostileMix(srv.port, dict(slowbody=20), 3.0, pauses=dict(slowbody=0.2))
    time.sleep(0.5)
    latencies, errors = stress.fresh_probe(srv.port, 2.0)
    stats = mix.stats()
    assert errors == 0 and latencies
    assert stats["slow_bodies"] > 20 and stats["slow_bodies_refused"] == stats["slow_bodies"]


def test_at_the_connection_limit_fresh_clients_are_still_answered(server_factory, site):
    srv = server_factory(root=site, max_connections=100, keepalive_timeout=60)
    held, errors = stress.hold_idle(srv.port, 100)
    try:
        assert errors == 0 and len(srv.server.connections) == 100
        mix = stress.HostileMix(srv.port, dict(trickle=20), 3.0)
        time.sleep(0.5)
        latencies, errors = stress.fresh_probe(srv.port, 2.0)
        mix.stats()
        assert errors == 0 and latencies
        assert len(srv.server.connections) <= 100
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("kind", stress.H2_FLOODS)
def test_each_h2_flood_of_the_bench_is_ended_by_its_guard(server_factory, site, kind):
    """The frames bench/stress.py floods with are the attacks they are named for: the server
    ends the connection with GOAWAY ENHANCE_YOUR_CALM (RFC 9113 §5.4.1's code for a peer that
    makes it work for nothing), and goes on serving."""
    srv = server_factory(root=site)
    opening, again = stress.h2_flood(kind)
    with stress.socket.create_connection((stress.HOST, srv.port), timeout=5) as sock:
        sock.sendall(opening)
        received = b""
        try:
            for _ in range(8):   # past every budget (1,000 frames, resets or bytes)
                sock.sendall(again)
        except OSError:
            pass   # ended while still writing
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:
            pass
    goaways = []
    at = 0
    while len(received) - at >= 9:
        length = int.from_bytes(received[at:at + 3], "big")
        if received[at + 3] == 0x7:
            goaways.append(int.from_bytes(received[at + 13:at + 17], "big"))
        at += 9 + length
    assert goaways and goaways[-1] == 0xB
    assert stress.fetch(srv.port)[0] == 200
