import numpy as np
import pytest

from swarm_route.bench.aiq import aiq, aiq_draws, hull, reach


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


def test_bootstrap_draws_score_every_curve_on_the_same_prompts():
    """A cheap model right half the time, a dear one 90%, and a router that asks the cheap one and, where it
    is wrong, the dear one too: on every draw of the prompts the router's curve is above the singles'."""
    rng = np.random.default_rng(1)
    n = 300
    cheap = ((rng.random(n) < 0.5).astype(float), np.full(n, 0.001))
    dear = ((rng.random(n) < 0.9).astype(float), np.full(n, 0.01))
    cascade = (np.maximum(cheap[0], dear[0]), np.where(cheap[0] == 1, 0.001, 0.011))
    curves = {"singles": [cheap, dear], "same": [dear, cheap], "router": [cheap, cascade]}
    draws = aiq_draws(curves, [cheap, dear], dear, resamples=200, seed=3)
    assert {k: v.shape for k, v in draws.items()} == {k: (200,) for k in curves}
    assert np.array_equal(draws["singles"], draws["same"]), "the same points on the same draws: the same AIQ"
    assert (draws["router"] > draws["singles"]).all()
    assert draws["singles"].std() > 0, "draws differ"
    whole = aiq([(c.sum(), s.mean()) for s, c in curves["singles"]], 0.001 * n, 0.01 * n)
    low, high = np.percentile(draws["singles"], [2.5, 97.5])
    assert low < whole < high
    assert np.array_equal(draws["router"], aiq_draws(curves, [cheap, dear], dear, 200, seed=3)["router"])
