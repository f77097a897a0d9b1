import random

import pytest

from swarm_route.core import aco
from swarm_route.core.graph import SINK, SOURCE, Hop, PathGraph
from tests.core.helpers import MATH, WEATHER, agent


def test_single_stage_has_one_path_per_agent_model():
    g = PathGraph.single_stage([agent("a", "x", MATH, {"m1": 0, "m2": 1}), agent("b", "y", WEATHER)])
    paths = g.paths()
    assert sorted(str(p) for p in paths) == ["a/m1", "a/m2", "b/m"]
    assert paths[0].edges[0].startswith(SOURCE + ">") and paths[0].edges[-1].endswith(">" + SINK)


def test_multi_stage_paths_cross_every_stage():
    g = PathGraph([[Hop("solver", "a"), Hop("solver", "b")], [Hop("verifier", "v")]])
    paths = g.paths()
    assert len(paths) == 2 and all(p.agents == ("solver", "verifier") for p in paths)
    assert len(paths[0].edges) == 3


def test_probabilities_follow_tau_and_eta():
    p = aco.probabilities([1, 4], [1, 1], alpha=1, beta=2)
    assert p == pytest.approx([0.2, 0.8])
    p = aco.probabilities([1, 1], [1, 2], alpha=1, beta=2)
    assert p == pytest.approx([0.2, 0.8])


def test_choose_exploits_at_q0_one_and_explores_below():
    rng = random.Random(0)
    assert {aco.choose([0.1, 0.9], 1.0, rng) for _ in range(50)} == {1}
    picks = [aco.choose([0.3, 0.7], 0.0, rng) for _ in range(2000)]
    assert 0.25 < picks.count(0) / 2000 < 0.35


def test_heuristic_prefers_cheap_and_fast():
    cheap = aco.heuristic(1.0, cost_usd=0.001, cost_scale=0.001, cost_weight=1.0, latency_s=None)
    dear = aco.heuristic(1.0, cost_usd=0.01, cost_scale=0.001, cost_weight=1.0, latency_s=None)
    slow = aco.heuristic(1.0, cost_usd=0.001, cost_scale=0.001, cost_weight=1.0, latency_s=4.0)
    assert cheap.eta > dear.eta and cheap.eta > slow.eta
