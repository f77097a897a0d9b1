"""The reasoning router: from intent weights, registry and pheromone specialists to a chosen path.

Without an LLM the "reasoning" is the evidence itself, written out: which intents the query carries, which
candidates serve them, their fused τ, η and p, and why the chosen one won. Everything the decision used is
returned, so a client can see why its query went where it went.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from pydantic import BaseModel, Field

from swarm_route.agents.base import estimate_tokens
from swarm_route.core import aco
from swarm_route.core.graph import Hop, Path, PathGraph
from swarm_route.core.intent import IntentResult
from swarm_route.core.pheromone import PheromoneStore
from swarm_route.core.registry import AgentSpec

EXPECTED_ANSWER_TOKENS = 300


class HopOut(BaseModel):
    agent: str
    model: str


class Candidate(BaseModel):
    path: list[HopOut]
    edges: list[str]
    tau: float
    eta: float
    ability: float
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
        rng: random.Random | None = None,
    ) -> None:
        self.pheromones = pheromones
        self.alpha, self.beta, self.q0 = alpha, beta, q0
        self.cost_weight, self.multi_agent_ratio = cost_weight, multi_agent_ratio
        self._rng = rng or random.Random()

    async def route(
        self,
        query: str,
        intent: IntentResult,
        agents: Mapping[str, AgentSpec],
        *,
        budget_usd: float | None = None,
        max_agents: int = 1,
        latency_s: Mapping[str, float] | None = None,
    ) -> RouteDecision:
        base = dict(intent_weights=intent.weights, out_of_scope=intent.out_of_scope, oos_score=intent.oos_score)
        if intent.out_of_scope or not intent.weights:
            best = max(intent.similarity.items(), key=lambda kv: kv[1], default=None)
            why = (
                f"no registered skill fits: the closest, {best[0]!r}, has similarity {best[1]:.2f}"
                if best
                else "no agent is registered"
            )
            return RouteDecision(**base, candidates=[], chosen=[], fallbacks=[], reasoning=why + ".", declined=why)

        specialists = await self.pheromones.read(intent.weights)
        paths = PathGraph.single_stage(agents.values()).paths()
        tokens = estimate_tokens(query) + EXPECTED_ANSWER_TOKENS
        costs = [self._path_cost(p, agents, tokens) for p in paths]
        paid = [c for c in costs if c > 0]
        scale = min(paid) if paid else 0.0
        latency_s = latency_s or {}

        candidates: list[Candidate] = []
        for path, cost in zip(paths, costs, strict=True):
            ability = self._ability(path, agents, intent.weights)
            lat = max((latency_s.get(h.node, 0.0) for h in path.hops), default=0.0) or None
            h = aco.heuristic(ability, cost, scale, self.cost_weight, lat)
            excluded = None
            if ability < 0.01:
                excluded = "serves none of the query's intents"
            elif budget_usd is not None and cost > budget_usd:
                excluded = f"expected cost ${cost:.6f} exceeds budget ${budget_usd:.6f}"
            candidates.append(
                Candidate(
                    path=[HopOut(agent=x.agent, model=x.model) for x in path.hops],
                    edges=list(path.edges),
                    tau=round(self.pheromones.fuse(intent.weights, specialists, path.edges), 6),
                    eta=round(h.eta, 6),
                    ability=round(ability, 4),
                    expected_cost_usd=cost,
                    latency_s=lat,
                    excluded=excluded,
                )
            )

        eligible = [i for i, c in enumerate(candidates) if c.excluded is None]
        if not eligible:
            why = (
                "every agent serving this query is over the budget"
                if any(c.excluded and c.excluded.startswith("expected cost") for c in candidates)
                else "no registered agent serves the query's intents"
            )
            return RouteDecision(
                **base, candidates=candidates, chosen=[], fallbacks=[], reasoning=why + ".", declined=why
            )
        probs = aco.probabilities(
            [candidates[i].tau for i in eligible],
            [candidates[i].eta for i in eligible],
            self.alpha,
            self.beta,
        )
        for i, p in zip(eligible, probs, strict=True):
            candidates[i].probability = round(p, 6)
        first = eligible[aco.choose(probs, self.q0, self._rng)]
        chosen = [first]
        ranked = sorted(eligible, key=lambda i: candidates[i].probability, reverse=True)
        spent = candidates[first].expected_cost_usd
        for i in ranked:
            if len(chosen) >= max_agents:
                break
            c = candidates[i]
            if set(c.agents) & {a for j in chosen for a in candidates[j].agents}:
                continue
            if c.probability < self.multi_agent_ratio * candidates[first].probability:
                break
            if budget_usd is not None and spent + c.expected_cost_usd > budget_usd:
                continue
            chosen.append(i)
            spent += c.expected_cost_usd
        fallbacks = [i for i in ranked if i not in chosen]
        return RouteDecision(
            **base,
            candidates=candidates,
            chosen=chosen,
            fallbacks=fallbacks,
            reasoning=self._explain(intent, candidates, chosen, len(eligible)),
        )

    @staticmethod
    def _ability(path: Path, agents: Mapping[str, AgentSpec], weights: Mapping[str, float]) -> float:
        """Share of the query's intent weight that every agent on the path serves."""
        return min(sum(weights.get(t, 0.0) for t in agents[h.agent].intents()) for h in path.hops)

    @staticmethod
    def _path_cost(path: Path, agents: Mapping[str, AgentSpec], tokens: int) -> float:
        return sum(_price(agents[h.agent], h) * tokens / 1000 for h in path.hops)

    @staticmethod
    def _explain(intent: IntentResult, candidates: list[Candidate], chosen: list[int], eligible: int) -> str:
        top = ", ".join(f"{t} {w:.2f}" for t, w in sorted(intent.weights.items(), key=lambda kv: -kv[1])[:3])
        lines = [f"Intent weights: {top}. {eligible} of {len(candidates)} candidate paths serve them."]
        for rank, i in enumerate(chosen):
            c = candidates[i]
            route = " → ".join(f"{h.agent}/{h.model}" for h in c.path)
            lead = "Chose" if rank == 0 else "Also asked"
            lines.append(
                f"{lead} {route}: τ={c.tau:.3g} (pheromone), η={c.eta:.3g} (ability {c.ability:.2f}, "
                f"expected ${c.expected_cost_usd:.6f}), p={c.probability:.2f}."
            )
        return " ".join(lines)


def _price(spec: AgentSpec, hop: Hop) -> float:
    return next(m.cost_per_1k_tokens for m in spec.models if m.name == hop.model)
