"""Ant-colony path choice: p(path | q) ∝ τ_q^α · η^β, with the ACS pseudo-random-proportional rule.

With probability q0 the ant exploits (takes the most probable path); otherwise it samples from p, which is
what lets a path with little pheromone still be tried now and then.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Heuristic:
    """η of one candidate for one query, and the factors it was built from (kept for the trace)."""

    ability: float  # how well the candidate's agent fits the query's intents, in (0, 1]
    cost_usd: float  # expected cost of the path for this query
    cost_factor: float  # 1 / (1 + λ · cost / cheapest-nonzero)
    latency_factor: float  # 1 / (1 + recent latency / reference)

    @property
    def eta(self) -> float:
        return self.ability * self.cost_factor * self.latency_factor


def heuristic(
    ability: float, cost_usd: float, cost_scale: float, cost_weight: float, latency_s: float | None
) -> Heuristic:
    """Cost enters relative to the cheapest paid candidate, so λ means the same at any price level."""
    cost_factor = 1.0 / (1.0 + cost_weight * (cost_usd / cost_scale if cost_scale > 0 else 0.0))
    latency_factor = 1.0 / (1.0 + (latency_s or 0.0) / 2.0)
    return Heuristic(max(ability, 1e-3), cost_usd, cost_factor, latency_factor)


def probabilities(taus: Sequence[float], etas: Sequence[float], alpha: float, beta: float) -> list[float]:
    weights = [(t**alpha) * (e**beta) for t, e in zip(taus, etas, strict=True)]
    total = sum(weights)
    if total <= 0:
        return [1.0 / len(weights)] * len(weights) if weights else []
    return [w / total for w in weights]


def choose(probs: Sequence[float], q0: float, rng: random.Random) -> int:
    """ACS rule: exploit the argmax with probability q0, else sample proportionally."""
    if not probs:
        raise ValueError("no candidate to choose from")
    if rng.random() < q0:
        return max(range(len(probs)), key=probs.__getitem__)
    return rng.choices(range(len(probs)), weights=probs, k=1)[0]
