import pytest

from swarm_route.bench.aiq import aiq, hull, reach


def test_the_hull_keeps_what_mixing_and_spending_less_can_reach():
    points = [(1.0, 0.5), (2.0, 0.55), (3.0, 0.9), (4.0, 0.85), (2.5, 0.6), (3.0, 0.7)]
    # (2, 0.55) and (2.5, 0.6) lie under the segment (1, 0.5)-(3, 0.9); (4, 0.85) costs more for less
    assert hull(points) == [(1.0, 0.5), (3.0, 0.9)]
    assert reach(hull(points), 2.0) == pytest.approx(0.7)
    assert reach(hull(points), 10.0) == 0.9 and reach(hull(points), 0.5) == 0.0


def test_aiq_is_the_mean_height_of_the_hull_over_the_range():
    # flat at 0.8 from cost 1: over [1, 3] the mean is 0.8; over [0, 2] half of it is unreachable
    assert aiq([(1.0, 0.8)], 1.0, 3.0) == pytest.approx(0.8)
    assert aiq([(1.0, 0.8)], 0.0, 2.0) == pytest.approx(0.4)
    # a line from (0, 0.4) to (2, 0.8), flat after: over [0, 4] → (2·0.6 + 2·0.8) / 4
    assert aiq([(0.0, 0.4), (2.0, 0.8), (1.0, 0.5)], 0.0, 4.0) == pytest.approx(0.7)
    assert aiq([], 0.0, 1.0) == 0.0


def test_a_router_that_dominates_another_has_the_higher_aiq():
    singles = [(0.05, 0.54), (0.5, 0.7), (3.3, 0.87)]
    router = [*singles, (0.6, 0.8), (1.2, 0.86)]
    assert aiq(router, 0.05, 3.3) > aiq(singles, 0.05, 3.3)
