"""Ant-colony path choice: p(path | q) ∝ τ_q^α · η^β, with the ACS pseudo-random-proportional rule.

With probability q0 the ant exploits (takes the most probable path); otherwise it samples from p, which is
what lets a path with little pheromone still be tried now and then. Everything is vectorised over the
candidates, so a decision over a thousand paths stays in the low milliseconds.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np


def heuristic(
    ability: np.ndarray,
    cost_usd: np.ndarray,
    cost_weight: float,
    latency_s: np.ndarray | None = None,
    mean_cost: float | None = None,
) -> np.ndarray:
    """η = ability · exp(−λ·cost/c̄) · 1/(1 + latency/2 s).

    Cost enters relative to the mean expected cost of this query's candidates (c̄), so λ means the same
    whether the pool costs cents or micro-cents: at λ = 1 a path twice as dear as the mean loses a factor e.
    c̄ is the mean of ``cost_usd`` unless ``mean_cost`` gives it (paths built from the candidates, a
    cascade say, are weighed on the candidates' scale).
    """
    ability = np.maximum(np.asarray(ability, dtype=float), 1e-6)
    cost = np.asarray(cost_usd, dtype=float)
    mean = mean_cost if mean_cost is not None else (float(cost.mean()) if cost.size else 0.0)
    eta = ability * (np.exp(-cost_weight * cost / mean) if mean > 0 else 1.0)
    if latency_s is not None:
        eta = eta / (1.0 + np.asarray(latency_s, dtype=float) / 2.0)
    return eta


def log_weight(tau: np.ndarray, eta: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """log(τ^α·η^β): a path's unnormalised attraction, comparable across paths scored apart."""
    tau = np.asarray(tau, dtype=float)
    return alpha * np.log(np.maximum(tau, 1e-12)) + beta * np.log(np.maximum(np.asarray(eta, dtype=float), 1e-300))


def probabilities(tau: np.ndarray, eta: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Normalised τ^α·η^β, computed in log space so tiny η·large β cannot underflow to all-zero."""
    tau = np.asarray(tau, dtype=float)
    if tau.size == 0:
        return tau
    logits = log_weight(tau, eta, alpha, beta)
    logits -= logits.max()
    w = np.exp(logits)
    return w / w.sum()


def choose(probs: np.ndarray, q0: float, rng: random.Random, trial: Sequence[int] = ()) -> int:
    """ACS rule: exploit the argmax with probability q0, else sample proportionally; ``trial``: candidates an
    exploring choice takes one of at random instead of sampling (paths on trial)."""
    if len(probs) == 0:
        raise ValueError("no candidate to choose from")
    if rng.random() < q0:
        return int(np.argmax(probs))
    if trial:
        return rng.choice(trial)
    return rng.choices(range(len(probs)), weights=list(probs), k=1)[0]
