"""bench load's intervals: how far its overhead and p99 ratio move with which requests were drawn."""

import numpy as np

from swarm_route.bench.load import _p50_difference, _p99_ratio, interval


def test_identical_requests_give_no_spread():
    assert interval([12.0] * 50, [10.0] * 80, _p50_difference) == [2.0, 2.0]
    assert interval([30.0] * 50, [20.0] * 50, _p99_ratio) == [1.5, 1.5]


def test_the_interval_narrows_with_more_requests_and_holds_the_true_gap():
    rng = np.random.default_rng(7)

    def width(n: int) -> float:
        routed, direct = rng.gamma(4.0, 4.0, n) + 4.0, rng.gamma(4.0, 4.0, n)  # medians 4 ms apart
        low, high = interval(routed, direct, _p50_difference)
        assert low < 4.0 < high
        return high - low

    assert width(3000) < width(300) / 2
    assert interval([], [1.0], _p50_difference) is None, "a mode with no answered request has no interval"


def test_cpu_per_request_is_counted_per_mode_and_process_and_a_gone_process_is_skipped():
    import subprocess
    import sys

    import psutil

    from swarm_route.bench.load import ProcessCpu

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    cpu = ProcessCpu([("clients", psutil.Process()), ("replica", psutil.Process(child.pid))])
    before = cpu.snapshot()
    child.kill()
    child.wait()  # a replica that died meanwhile: skipped, not an error
    sum(i * i for i in range(2_000_000))  # ~0.1 s of this process's CPU
    cpu.add("routed", before, cpu.snapshot(), requests=10, wall_s=1.0)
    figures = cpu.per_request()["routed"]
    assert figures["clients"] > 1.0 and figures["total"] == figures["clients"] and "replica" not in figures
    assert 0 < figures["cores_busy"] <= 1.0
    assert ProcessCpu.NAMES[0][0].search("ray::ServeReplica:swarm_route:Ingress").group(1) == "Ingress"
