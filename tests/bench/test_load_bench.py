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
