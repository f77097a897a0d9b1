"""The reasoning router: from intent weights, registry, pheromone specialists and learned ability to a path.

Without an LLM the "reasoning" is the evidence itself, written out: which intents the query carries, which
candidates serve them, their fused τ, η (ability, expected cost) and p, and why the chosen one won.
Everything the decision used is returned, so a client can see why its query went where it went.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, Field

from swarm_route.agents.base import estimate_tokens
from swarm_route.core import aco
from swarm_route.core.ability import AbilityModel
from swarm_route.core.graph import Path, PathGraph
from swarm_route.core.intent import IntentResult
from swarm_route.core.pheromone import PheromoneStore
from swarm_route.core.registry import AgentSpec

EXPECTED_ANSWER_TOKENS = 300
MIN_MATCH = 0.01  # below this share of the query's intent weight an agent does not serve the query


class HopOut(BaseModel):
    agent: str
    model: str


class Candidate(BaseModel):
    path: list[HopOut]
    edges: list[str]
    tau: float
    eta: float
    ability: float = Field(description="intent match × predicted quality on this query")
    quality: float = Field(description="predicted score on this query, from graded neighbours")
    expected_cost_usd: float
    latency_s: float | None = None
    probability: float = 0.0
    excluded: str | None = Field(None, description="why the candidate could not be chosen")

    @property
    def agents(self) -> list[str]:
        return [h.agent for h in self.path]


class RouteDecision(BaseModel):
    intent_weights: dict[str, float]
    out_of_scope: bool
    oos_score: float
    candidates: list[Candidate]
    chosen: list[int] = Field(description="indices into candidates, dispatched concurrently")
    fallbacks: list[int] = Field(description="indices tried in order if every chosen path fails")
    reasoning: str
    declined: str | None = None
    cost_weight: float = 0.0


class _Evaluation(NamedTuple):
    """Every candidate's evidence for one query, as arrays indexed like the pool's paths."""

    tau: np.ndarray
    eta: np.ndarray
    ability: np.ndarray
    quality: np.ndarray
    cost: np.ndarray
    latency: np.ndarray
    probs: np.ndarray
    excluded: list[str | None]


class _Pool:
    """Paths of one registry snapshot as arrays, rebuilt only when the snapshot changes.

    Paths are padded to the longest one (index -1 past a path's end), so match, quality, cost and τ of a
    thousand candidates are a few numpy operations rather than a Python loop per candidate.
    """

    def __init__(self, agents: Mapping[str, AgentSpec]) -> None:
        self.agents = agents
        self.paths: list[Path] = PathGraph.single_stage(agents.values()).paths()
        hop_of = {h.node: h for p in self.paths for h in p.hops}
        self.nodes = sorted(hop_of)
        node_index = {n: i for i, n in enumerate(self.nodes)}
        width = max((len(p.hops) for p in self.paths), default=1)
        self.hops = np.full((len(self.paths), width), -1, dtype=int)
        for i, p in enumerate(self.paths):
            self.hops[i, : len(p.hops)] = [node_index[h.node] for h in p.hops]
        price = {(a.name, m.name): m.cost_per_1k_tokens for a in agents.values() for m in a.models}
        self.node_price = np.array([price[(hop_of[n].agent, hop_of[n].model)] for n in self.nodes])
        self.intents = sorted({t for a in agents.values() for t in a.intents()})
        intent_index = {t: i for i, t in enumerate(self.intents)}
        self.serves = np.zeros((len(self.nodes), len(self.intents)))  # node × intent membership
        for n, i in node_index.items():
            for t in agents[hop_of[n].agent].intents():
                self.serves[i, intent_index[t]] = 1.0
        self.edge_index = {e: i for i, e in enumerate(sorted({e for p in self.paths for e in p.edges}))}
        self.path_edges = np.full((len(self.paths), width + 1), -1, dtype=int)
        for i, p in enumerate(self.paths):
            self.path_edges[i, : len(p.edges)] = [self.edge_index[e] for e in p.edges]
        self.hops_out = [[HopOut(agent=h.agent, model=h.model) for h in p.hops] for p in self.paths]
        self.edges = [list(p.edges) for p in self.paths]
        self.path_agents = [set(p.agents) for p in self.paths]

    def per_path(self, node_values: np.ndarray, reduce: str) -> np.ndarray:
        """Combine a per-node value along each path: ``min``, ``max`` or ``sum`` over its hops."""
        padded = np.append(node_values, {"min": np.inf, "max": -np.inf, "sum": 0.0}[reduce])
        return getattr(padded[self.hops], reduce)(axis=1)


class ReasoningRouter:
    def __init__(
        self,
        pheromones: PheromoneStore,
        *,
        alpha: float,
        beta: float,
        q0: float,
        cost_weight: float,
        multi_agent_ratio: float,
        ability: AbilityModel | None = None,
        rng: random.Random | None = None,
        max_trace: int = 50,
    ) -> None:
        self.pheromones = pheromones
        self.max_trace = max_trace
        self.alpha, self.beta, self.q0 = alpha, beta, q0
        self.cost_weight, self.multi_agent_ratio = cost_weight, multi_agent_ratio
        self.ability = ability or AbilityModel()
        self._rng = rng or random.Random()
        self._pool: _Pool | None = None

    def _pool_for(self, agents: Mapping[str, AgentSpec]) -> _Pool:
        if self._pool is None or self._pool.agents is not agents:
            self._pool = _Pool(agents)
        return self._pool

    async def route(
        self,
        query: str,
        intent: IntentResult,
        agents: Mapping[str, AgentSpec],
        *,
        budget_usd: float | None = None,
        max_agents: int = 1,
        latency_s: Mapping[str, float] | None = None,
        cost_weight: float | None = None,
        explore: bool = True,
    ) -> RouteDecision:
        lam = self.cost_weight if cost_weight is None else cost_weight
        base = dict(
            intent_weights=intent.weights, out_of_scope=intent.out_of_scope, oos_score=intent.oos_score, cost_weight=lam
        )
        if intent.out_of_scope or not intent.weights:
            best = max(intent.similarity.items(), key=lambda kv: kv[1], default=None)
            why = (
                f"no registered skill fits: the closest, {best[0]!r}, has similarity {best[1]:.2f}"
                if best
                else "no agent is registered"
            )
            return RouteDecision(**base, candidates=[], chosen=[], fallbacks=[], reasoning=why + ".", declined=why)

        pool = self._pool_for(agents)
        specialists = await self.pheromones.read(intent.weights)
        estimate = self.ability.predict(query, pool.nodes)
        tokens = estimate_tokens(query) + EXPECTED_ANSWER_TOKENS
        node_cost = np.where(np.isnan(estimate.cost), pool.node_price * tokens / 1000, estimate.cost)
        latency_s = latency_s or {}
        node_latency = np.array([latency_s.get(n, 0.0) for n in pool.nodes])

        n = len(pool.paths)
        weights = np.array([intent.weights.get(t, 0.0) for t in pool.intents])
        match = pool.per_path(pool.serves @ weights, "min")
        quality = pool.per_path(estimate.score, "min")
        cost = pool.per_path(node_cost, "sum")
        latency = pool.per_path(node_latency, "max")
        fused = self.pheromones.fused(intent.weights, specialists, pool.edge_index)
        tau = np.nanmean(np.append(fused, np.nan)[pool.path_edges], axis=1) if n else np.zeros(0)

        excluded: list[str | None] = [None] * n
        for i in range(n):
            if match[i] < MIN_MATCH:
                excluded[i] = "serves none of the query's intents"
            elif budget_usd is not None and cost[i] > budget_usd:
                excluded[i] = f"expected cost ${cost[i]:.6f} exceeds budget ${budget_usd:.6f}"
        eligible = np.array([i for i in range(n) if excluded[i] is None], dtype=int)
        ability = match * quality
        eta = np.zeros(n)
        probs = np.zeros(n)
        if eligible.size:
            eta[eligible] = aco.heuristic(ability[eligible], cost[eligible], lam, latency[eligible])
            probs[eligible] = aco.probabilities(tau[eligible], eta[eligible], self.alpha, self.beta)
        evaluation = _Evaluation(tau, eta, ability, quality, cost, latency, probs, excluded)
        if not eligible.size:
            why = (
                "every agent serving this query is over the budget"
                if any(e and e.startswith("expected cost") for e in excluded)
                else "no registered agent serves the query's intents"
            )
            candidates = self._candidates(pool, self._shown(eligible, probs, n, []), evaluation)
            return RouteDecision(
                **base, candidates=candidates, chosen=[], fallbacks=[], reasoning=why + ".", declined=why
            )
        first = int(eligible[aco.choose(probs[eligible], self.q0 if explore else 1.0, self._rng)])
        chosen = [first]
        ranked = [int(i) for i in eligible[np.argsort(-probs[eligible], kind="stable")]]
        spent = cost[first]
        used = set(pool.path_agents[first])
        for i in ranked:
            if len(chosen) >= max_agents:
                break
            if used & pool.path_agents[i]:
                continue
            if probs[i] < self.multi_agent_ratio * probs[first]:
                break
            if budget_usd is not None and spent + cost[i] > budget_usd:
                continue
            chosen.append(i)
            spent += cost[i]
            used |= pool.path_agents[i]
        shown = self._shown(eligible, probs, n, chosen)
        candidates = self._candidates(pool, shown, evaluation)
        position = {i: k for k, i in enumerate(shown)}
        fallbacks = [position[i] for i in ranked if i not in chosen and i in position]
        chosen = [position[i] for i in chosen]
        return RouteDecision(
            **base,
            candidates=candidates,
            chosen=chosen,
            fallbacks=fallbacks,
            reasoning=self._explain(intent, candidates, chosen, int(eligible.size), n),
        )

    def _shown(self, eligible: np.ndarray, probs: np.ndarray, n: int, chosen: list[int]) -> list[int]:
        """Candidates the trace lists: all of a small pool; of a large one the ``max_trace`` most probable
        and whatever was chosen, even a path exploration sampled from further down (a thousand-line trace
        helps nobody)."""
        if n <= self.max_trace:
            return list(range(n))
        ranked = eligible[np.argsort(-probs[eligible], kind="stable")][: self.max_trace]
        return sorted({int(i) for i in ranked} | set(chosen))

    @staticmethod
    def _candidates(pool: _Pool, shown: list[int], e: _Evaluation) -> list[Candidate]:
        return [
            Candidate.model_construct(
                path=pool.hops_out[i],
                edges=pool.edges[i],
                tau=round(float(e.tau[i]), 6),
                eta=round(float(e.eta[i]), 6),
                ability=round(float(e.ability[i]), 4),
                quality=round(float(e.quality[i]), 4),
                expected_cost_usd=float(e.cost[i]),
                latency_s=float(e.latency[i]) or None,
                probability=round(float(e.probs[i]), 6),
                excluded=e.excluded[i],
            )
            for i in shown
        ]

    @staticmethod
    def _explain(
        intent: IntentResult, candidates: list[Candidate], chosen: list[int], eligible: int, total: int
    ) -> str:
        top = ", ".join(f"{t} {w:.2f}" for t, w in sorted(intent.weights.items(), key=lambda kv: -kv[1])[:3])
        lines = [f"Intent weights: {top}. {eligible} of {total} candidate paths serve them."]
        if len(candidates) < total:
            lines.append(f"The trace lists the {len(candidates)} most probable.")
        for rank, i in enumerate(chosen):
            c = candidates[i]
            route = " → ".join(f"{h.agent}/{h.model}" for h in c.path)
            lead = "Chose" if rank == 0 else "Also asked"
            lines.append(
                f"{lead} {route}: τ={c.tau:.3g} (pheromone), η={c.eta:.3g} (ability {c.ability:.2f}, "
                f"expected ${c.expected_cost_usd:.6f}), p={c.probability:.2f}."
            )
        return " ".join(lines)
