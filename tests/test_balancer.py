"""HAProxy in front of three reactor instances (127.0.0.2-.4) sending PROXY v2 and checking
--health, under a steady load through it: each instance in turn gets SIGHUP, then SIGUSR2,
then one is killed and started again. The short form of bench/restart.py."""

import re
import sys
import time
from pathlib import Path

import pytest
from processes import Load

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import cluster  # noqa: E402

pytestmark = [
    pytest.mark.skipif(cluster.haproxy_path() is None,
                       reason="haproxy is not installed (Debian package haproxy; .ci/run "
                              "installs it)"),
    pytest.mark.skipif(not cluster.loopback_aliases_work(),
                       reason="127.0.0.2-4 are not usable loopback addresses here"),
]

NAMES = ("r1", "r2", "r3")


@pytest.fixture
def balanced(tmp_path):
    roots = cluster.build_sites(str(tmp_path), NAMES)
    instances = [cluster.Instance(name, f"127.0.0.{i + 2}", roots[name], str(tmp_path),
                                  args=("--proxy-protocol", "v2", "--trusted-proxy",
                                        cluster.BALANCER_SOURCE))
                 for i, name in enumerate(NAMES)]
    balancer = None
    try:
        for instance in instances:
            instance.start()
        balancer = cluster.Balancer(instances, str(tmp_path))
        yield balancer
    finally:
        if balancer is not None:
            balancer.stop()
        for instance in instances:
            instance.stop()


class Phases:
    """Failures of a Load counted per phase of the test."""

    def __init__(self, load):
        self.load = load
        self.counts = {}
        self._name, self._mark = None, 0

    def begin(self, name):
        self.end()
        self._name, self._mark = name, len(self.load.failures)

    def end(self):
        if self._name is not None:
            self.counts[self._name] = self.load.failures[self._mark:]
            self._name = None


def wait_for_answers(load, more=30, timeout=10):
    target = load.answered + more
    deadline = time.monotonic() + timeout
    while load.answered < target and time.monotonic() < deadline:
        time.sleep(0.02)
    assert load.answered >= target, "the load stalled"


def test_restarts_behind_haproxy_lose_nothing_and_log_the_real_client(balanced):
    instances = balanced.instances
    with Load(balanced.port, clients=8) as load:
        deadline = time.monotonic() + 10
        while load.bodies != {name.encode() for name in NAMES} and time.monotonic() < deadline:
            time.sleep(0.05)   # every instance up in the balancer's eyes
        assert load.bodies == {name.encode() for name in NAMES}
        phases = Phases(load)
        for instance in instances:
            phases.begin(f"SIGHUP {instance.name}")
            instance.rolling_restart()
            wait_for_answers(load)
        for instance in instances:
            phases.begin(f"SIGUSR2 {instance.name}")
            instance.upgrade()
            wait_for_answers(load)
        victim = instances[-1]
        phases.begin(f"SIGKILL {victim.name}")
        victim.kill()
        wait_for_answers(load)
        victim.start()
        load.bodies.clear()
        deadline = time.monotonic() + 10
        while victim.name.encode() not in load.bodies and time.monotonic() < deadline:
            time.sleep(0.05)
        phases.end()
        assert victim.name.encode() in load.bodies, "the restarted instance is back in"
    assert set(load.statuses) == {200}
    clean = {name: failures for name, failures in phases.counts.items()
             if not name.startswith("SIGKILL")}
    assert clean == {name: [] for name in clean}
    # Only the requests under way on the killed instance may fail (HAProxy retries most).
    assert len(phases.counts[f"SIGKILL {victim.name}"]) <= 8
    for instance in instances:
        log = Path(instance.log_path).read_text()
        clients = set(re.findall(r'^(\S+) - - \[[^\]]+\] "GET / ', log, re.M))
        assert clients == {"127.0.0.1"}, (instance.name, clients)
