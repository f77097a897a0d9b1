import random

import numpy as np
import pytest

from swarm_route.core.messages import SINK, SOURCE, Hop
from swarm_route.core.route import aco
from swarm_route.core.route.graph import PathGraph
from tests.core.helpers import MATH, WEATHER, agent


def test_single_stage_has_one_path_per_agent_model():
    g = PathGraph.single_stage([agent("a", "x", MATH, {"m1": 0, "m2": 1}), agent("b", "y", WEATHER)])
    paths = g.paths()
    assert sorted(str(p) for p in paths) == ["a/m1", "a/m2", "b/m"]
    assert paths[0].edges[0].startswith(SOURCE + ">") and paths[0].edges[-1].endswith(">" + SINK)


def test_multi_stage_paths_cross_every_stage():
    g = PathGraph(
        [[Hop(agent="solver", model="a"), Hop(agent="solver", model="b")], [Hop(agent="verifier", model="v")]]
    )
    paths = g.paths()
    assert len(paths) == 2 and all(p.agents == ("solver", "verifier") for p in paths)
    assert len(paths[0].edges) == 3


def test_probabilities_follow_tau_and_eta():
    assert aco.probabilities(np.array([1, 4]), np.array([1, 1]), alpha=1, beta=2) == pytest.approx([0.2, 0.8])
    assert aco.probabilities(np.array([1, 1]), np.array([1, 2]), alpha=1, beta=2) == pytest.approx([0.2, 0.8])
    tiny = aco.probabilities(np.array([1, 1]), np.array([1e-200, 2e-200]), alpha=1, beta=4)
    assert tiny == pytest.approx([1 / 17, 16 / 17])  # no underflow to 0/0


def test_choose_exploits_at_q0_one_and_explores_below():
    rng = random.Random(0)
    assert {aco.choose(np.array([0.1, 0.9]), 1.0, rng) for _ in range(50)} == {1}
    picks = [aco.choose(np.array([0.3, 0.7]), 0.0, rng) for _ in range(2000)]
    assert 0.25 < picks.count(0) / 2000 < 0.35


def test_heuristic_trades_ability_for_cost_relative_to_the_mean():
    ability, cost = np.array([0.9, 0.8]), np.array([0.03, 0.01])
    free = aco.heuristic(ability, cost, cost_weight=0.0)
    thrifty = aco.heuristic(ability, cost, cost_weight=2.0)
    assert free.argmax() == 0 and thrifty.argmax() == 1
    assert aco.heuristic(ability, cost * 1000, 2.0) == pytest.approx(thrifty)  # λ is scale-free
    slow = aco.heuristic(ability, cost, 0.0, latency_s=np.array([4.0, 0.0]))
    assert slow.argmax() == 1
