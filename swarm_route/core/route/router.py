"""The reasoning router: from intent weights, registry, pheromone specialists and learned ability to paths.

Reason, then select. First the set of capabilities the query needs: the intents whose calibrated weight
clears the classifier's data-chosen set floor (the best one always, at most three; an LLM's pick, when one
is configured, is mixed into those weights, not obeyed blindly). Then, per needed intent not already
covered, the ant colony picks one path among the agents serving it: p ∝ τ^α·η^β, so pheromone and
per-query ability decide which agent and model, and one agent suffices when it covers every need.
Without an LLM the "reasoning" is that evidence written out. Everything the decision used is returned,
so a client can see why its query went where it went.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import NamedTuple

import numpy as np

from swarm_route.core.failopen import Breaker, Stale
from swarm_route.core.messages import (
    Candidate,
    IntentResult,
    RouteDecision,
    RouteRequest,
    Selected,
    expected_tokens,
    top_intent,
)
from swarm_route.core.registry import AgentSpec
from swarm_route.core.route import aco
from swarm_route.core.route.ability import AbilityModel
from swarm_route.core.route.agreement import AgreementMemory
from swarm_route.core.route.graph import Path, PathGraph
from swarm_route.core.route.pheromone import PheromoneStore, Trails
from swarm_route.core.route.reasoning import LLMChoice

CASCADE_SHORTLIST = 6  # cheaper paths a cascade's first stage is chosen from: 15 pairs, 20 triples
CASCADE_SIZES = (2, 3)  # paths in a cascade's first stage: a pair, or a panel of three that must all agree
CASCADE_EVIDENCE = 30  # graded queries of a panel (and its strong path) on the intent before its record is used
# standard errors a panel's learned quality is taken below its record: the panel weighed is the best of up
# to 35 measured on the same history, so its record flatters it (the winner's curse)
CASCADE_DOUBT = 2.0
MIN_MATCH = 0.01  # below this share of the query's intent weight an agent does not serve the query
PAUSED = "paused by an operator"  # why a path of a paused agent is left out


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
    over_budget: list[bool]


class _Cascade(NamedTuple):
    """A cascade the router chose, with the estimates it chose it on (for the reasoning)."""

    first: tuple[int, ...]  # the paths asked at once, the one whose answer stands when they agree first
    strong: int
    escalation_rate: float
    quality: float
    cost: float
    instead_of: int  # the colony's pick of a single path
    single_quality: float
    single_cost: float

    def explain(self, pool: _Pool) -> str:
        name = {i: " → ".join(h.node for h in pool.hops_out[i]) for i in (*self.first, self.strong, self.instead_of)}
        panel = [name[i] for i in self.first]
        return (
            f"Cascade: {', '.join(panel[:-1])} and {panel[-1]} answer first; when they disagree "
            f"(predicted {self.escalation_rate:.0%} of the time) {name[self.strong]} is asked and its answer "
            f"stands. Expected quality {self.quality:.2f} at ${self.cost:.6f}, against {self.single_quality:.2f} "
            f"at ${self.single_cost:.6f} for {name[self.instead_of]} alone."
        )


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
        self.edge_counts = np.maximum((self.path_edges >= 0).sum(axis=1), 1)
        self.hops_out = [list(p.hops) for p in self.paths]
        self.last_nodes = [p.hops[-1].node for p in self.paths]  # whose answer a path gives
        self.edges = [list(p.edges) for p in self.paths]
        self.path_agents = [set(p.agents) for p in self.paths]
        self.path_agents_ordered = [list(dict.fromkeys(p.agents)) for p in self.paths]
        paused = {name for name, spec in agents.items() if spec.paused}
        self.paused = np.array([bool(paused & a) for a in self.path_agents], dtype=bool)
        self.node_index = node_index

    def node_values(self, values: Mapping[str, float]) -> np.ndarray:
        """A per-node array of ``values`` (0 where a node has none), visiting only the nodes given."""
        out = np.zeros(len(self.nodes))
        for node, value in values.items():
            if (i := self.node_index.get(node)) is not None:
                out[i] = value
        return out

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
        llm_weight: float = 0.4,
        max_set: int = 3,
        ability: AbilityModel | None = None,
        rng: random.Random | None = None,
        max_trace: int = 50,
        breaker: Breaker | None = None,
        max_stale_s: float = 300.0,
        trails_refresh_s: float = 0.0,
        cascades: bool = False,
        explore_known: float | None = None,
        agreement: AgreementMemory | None = None,
    ) -> None:
        """``trails_refresh_s``: trails read less than this long ago are used without asking the store.
        ``cascades``: consider a cascade where ``agreement`` holds its record. ``explore_known``: graded
        outcomes on the query's intent at which the least-graded path serving it halves the exploration rate
        (None: explore at 1 − q0 whatever is known).
        ``agreement``: what graded history says of pairs agreeing, per intent (a cascade's estimates)."""
        self.explore_known = explore_known
        self.agreement = agreement
        self.pheromones = pheromones
        self.cascades = cascades
        self.trails_refresh_s = trails_refresh_s
        self.max_trace = max_trace
        self.alpha, self.beta, self.q0 = alpha, beta, q0
        self.cost_weight, self.llm_weight, self.max_set = cost_weight, llm_weight, max_set
        self.ability = ability or AbilityModel()
        self._rng = rng or random.Random()
        self._pool: _Pool | None = None
        self.breaker = breaker or Breaker()
        self._last_trails = Stale(max_stale_s)

    def _pool_for(self, agents: Mapping[str, AgentSpec]) -> _Pool:
        if self._pool is None or self._pool.agents is not agents:
            self._pool = _Pool(agents)
        return self._pool

    async def route(
        self,
        request: RouteRequest,
        agents: Mapping[str, AgentSpec],
        *,
        latency_s: Mapping[str, float] | None = None,
        llm: LLMChoice | None = None,
        llm_note: str | None = None,
    ) -> RouteDecision:
        """``llm`` is the LLM's pick when one was asked and answered well; ``llm_note`` says why not otherwise."""
        query, intent, budget_usd = request.text, request.intent, request.budget_usd
        lam = self.cost_weight if request.cost_weight is None else request.cost_weight
        weights, oos_score, out_of_scope = self._mix(intent, agents, llm)
        base = dict(
            intent_weights=weights,
            out_of_scope=out_of_scope,
            oos_score=oos_score,
            cost_weight=lam,
            set_floor=intent.set_floor,
            router_llm=(llm.reasoning or "(no reasoning given)") if llm is not None else llm_note,
        )
        if out_of_scope or not weights:
            best = max(intent.similarity.items(), key=lambda kv: kv[1], default=None)
            why = (
                f"no registered skill fits: the closest, {best[0]!r}, has similarity {best[1]:.2f}"
                if best
                else "no agent is registered"
            )
            if llm is not None and not llm.agents:
                why += "; the LLM chose none either"
            return RouteDecision(**base, candidates=[], chosen=[], fallbacks=[], reasoning=why + ".", declined=why)

        pool = self._pool_for(agents)
        specialists, store_note = await self._trails(weights)
        base["store"] = store_note
        estimate = self.ability.predict(query, pool.nodes, top_intent(weights))
        tokens = expected_tokens(query)
        node_cost = np.where(np.isnan(estimate.cost), pool.node_price * tokens / 1000, estimate.cost)
        node_latency = pool.node_values(latency_s or {})

        n = len(pool.paths)
        total = sum(weights.values())
        weight_vector = np.array([weights.get(t, 0.0) / total for t in pool.intents])
        match = pool.per_path(pool.serves @ weight_vector, "min")
        quality = pool.per_path(estimate.score, "min")
        cost = pool.per_path(node_cost, "sum")
        latency = pool.per_path(node_latency, "max")
        graded = pool.per_path(estimate.graded, "min")
        fused = self.pheromones.fused(weights, specialists, pool.edge_index)
        tau = np.append(fused, 0.0)[pool.path_edges].sum(axis=1) / pool.edge_counts  # each path's mean τ

        unmatched = match < MIN_MATCH
        dear = np.zeros(n, dtype=bool) if budget_usd is None else cost > budget_usd
        left_out = unmatched | pool.paused | dear
        excluded: list[str | None] = [None] * n
        for i in np.flatnonzero(left_out).tolist():  # of a thousand paths, a reason only for those left out
            if unmatched[i]:
                excluded[i] = "serves none of the query's intents"
            elif pool.paused[i]:
                excluded[i] = PAUSED
            else:
                excluded[i] = f"expected cost ${cost[i]:.6f} exceeds budget ${budget_usd:.6f}"
        eligible = np.flatnonzero(~left_out)
        ability = match * quality
        eta = np.zeros(n)
        probs = np.zeros(n)
        if eligible.size:
            eta[eligible] = aco.heuristic(ability[eligible], cost[eligible], lam, latency[eligible])
            probs[eligible] = aco.probabilities(tau[eligible], eta[eligible], self.alpha, self.beta)
        over_budget = [bool(e) and e.startswith("expected cost") for e in excluded]
        evaluation = _Evaluation(tau, eta, ability, quality, cost, latency, probs, excluded, over_budget)
        if not eligible.size:
            if any(over_budget):
                why = "every agent serving this query is over the budget"
            elif PAUSED in excluded:
                why = "every agent serving this query is paused"
            else:
                why = "no registered agent serves the query's intents"
            candidates = self._candidates(pool, self._shown(eligible, probs, n, []), evaluation)
            return RouteDecision(
                **base, candidates=candidates, chosen=[], fallbacks=[], reasoning=why + ".", declined=why
            )

        needed = self._needed(weights, intent.set_floor, min(request.max_agents, self.max_set), intent.parts)
        picks = self._pick(pool, agents, needed, eligible, probs, cost, budget_usd, graded if request.explore else None)
        chosen = [i for i, _, _ in picks]
        plan = None
        if len(picks) == 1 and not intent.parts and request.max_agents >= 2 and self.cascades:
            plan = self._cascade(pool, picks[0][1], picks[0][0], eligible, evaluation, lam, budget_usd)
        escalation: list[int] = []
        if plan is not None:  # the panel replaces the pick; p of each among its intent's paths, as the pick's
            (pick, t, p) = picks[0]
            picks = [(i, t, p * float(probs[i] / max(probs[pick], 1e-12))) for i in plan.first]
            chosen, escalation = list(plan.first), [plan.strong]
        ranked = [int(i) for i in eligible[np.argsort(-probs[eligible], kind="stable")]]
        shown = self._shown(eligible, probs, n, chosen + escalation)
        candidates = self._candidates(pool, shown, evaluation)
        position = {i: k for k, i in enumerate(shown)}
        llm_agents = set(llm.agents) if llm is not None else None
        selection = [
            Selected(
                agents=pool.path_agents_ordered[i],
                intent=t,
                weight=round(weights.get(t, 0.0), 4),
                classifier_weight=round(intent.weights.get(t, 0.0), 4),
                llm_selected=None if llm_agents is None else bool(llm_agents & pool.path_agents[i]),
                tau=round(float(tau[i]), 6),
                probability=round(p, 6),
                part=intent.parts.get(t),
            )
            for i, t, p in picks
        ]
        fallbacks = [position[i] for i in ranked if i not in chosen and i not in escalation and i in position]
        chosen = [position[i] for i in chosen]
        reasoning = self._explain(intent, weights, needed, candidates, chosen, selection, int(eligible.size), n)
        if plan is not None:
            reasoning += " " + plan.explain(pool)
        return RouteDecision(
            **base,
            candidates=candidates,
            chosen=chosen,
            escalation=[position[i] for i in escalation],
            fallbacks=fallbacks,
            selection=selection,
            reasoning=reasoning,
        )

    async def _trails(self, weights: Mapping[str, float]) -> tuple[dict[str, Trails], str | None]:
        """The specialists from the store; when it fails, the last ones read, up to ``max_stale_s`` old
        (older or never read: τ_init, every path alike), and a note saying so."""
        intents = sorted(weights)
        recent = [hit for t in intents if (hit := self._last_trails.get(t)) is not None]
        fresh = len(recent) == len(intents) and all(age < self.trails_refresh_s for _, age in recent)
        if fresh and not self.breaker.is_open:  # with the store down the trace says how old they are
            return {t: v for t, (v, _) in zip(intents, recent, strict=True)}, None  # type: ignore[misc]

        async def fetch() -> tuple[dict[str, Trails], str | None]:
            trails = await self.pheromones.read(intents)
            for t, v in trails.items():
                self._last_trails.put(t, v)
            return trails, None

        def last_known() -> tuple[dict[str, Trails], str | None]:
            found = {t: hit for t in intents if (hit := self._last_trails.get(t)) is not None}
            if not found:
                return {}, "store unreachable: no trails recent enough, every path at τ_init"
            oldest = max(age for _, age in found.values())
            return {t: v for t, (v, _) in found.items()}, f"store unreachable: trails as of {oldest:.1f} s ago"  # type: ignore[misc]

        return await self.breaker.call("trails", fetch, last_known)

    def _mix(
        self, intent: IntentResult, agents: Mapping[str, AgentSpec], llm: LLMChoice | None
    ) -> tuple[dict[str, float], float, bool]:
        """The classifier's weights and out-of-scope score, with the LLM's pick mixed in at ``llm_weight``:
        each intent an LLM-chosen agent serves gains that share, and "none" pushes toward a decline."""
        if llm is None:
            return dict(intent.weights), intent.oos_score, intent.out_of_scope
        g = self.llm_weight
        picked = {t for name in llm.agents if name in agents for t in agents[name].intents()}
        oos = round((1 - g) * intent.oos_score + (g if not picked else 0.0), 4)
        weights = {t: (1 - g) * w for t, w in intent.weights.items()}
        for t in picked:
            weights[t] = weights.get(t, 0.0) + g
        return {t: round(w, 4) for t, w in weights.items() if w > 0}, oos, oos > 0.5

    @staticmethod
    def _needed(weights: Mapping[str, float], floor: float, limit: int, parts: Sequence[str] = ()) -> list[str]:
        """The intents the query needs covered: each part's of a query asking for several things (in the order
        asked), else the best; then others whose weight clears the floor."""
        ranked = sorted(weights, key=lambda t: (-weights[t], t))
        needed = [t for t in parts if t in weights] or ranked[:1]
        return [*needed, *(t for t in ranked if t not in needed and weights[t] >= floor)][:limit]

    def _pick(
        self,
        pool: _Pool,
        agents: Mapping[str, AgentSpec],
        needed: list[str],
        eligible: np.ndarray,
        probs: np.ndarray,
        cost: np.ndarray,
        budget_usd: float | None,
        graded: np.ndarray | None,
    ) -> list[tuple[int, str, float]]:
        """One path per needed intent that no chosen agent covers yet, by the ACS rule among the eligible
        paths serving it (other agents than those already asked, within what is left of the budget).
        ``graded``: each path's graded outcomes on the query's intent when the request may explore (None:
        exploit). Returns (path, intent, p within the intent's paths)."""
        column = {t: k for k, t in enumerate(pool.intents)}
        picks: list[tuple[int, str, float]] = []
        covered: set[str] = set()
        used: set[str] = set()
        spent = 0.0
        for t in needed:
            if t in covered or t not in column:
                continue
            fit = pool.per_path(pool.serves[:, column[t]], "min")[eligible] > 0
            if budget_usd is not None:
                fit &= spent + cost[eligible] <= budget_usd
            if used:  # a second need: paths of agents not asked yet (the first, of a thousand, needs no loop)
                fit &= np.array([not used & pool.path_agents[i] for i in eligible.tolist()], dtype=bool)
            fits = eligible[fit].tolist()
            if not fits and not picks:  # the top intent's agents are all out: any eligible path beats none
                fits = [int(i) for i in eligible]
            if not fits:
                continue
            p = probs[fits] / probs[fits].sum()
            if graded is None:
                k = aco.choose(p, 1.0, self._rng)
            else:
                counts = graded[fits]
                k = aco.choose(p, self._q0(counts), self._rng, self._on_trial(counts))
            i = fits[k]
            picks.append((i, t, float(p[k])))
            used |= pool.path_agents[i]
            covered |= {s for a in pool.path_agents[i] for s in agents[a].intents()}
            spent += cost[i]
        return picks

    def _on_trial(self, counts: np.ndarray) -> list[int]:
        """Positions of the least-graded paths on offer while they have fewer than ``explore_known`` graded
        outcomes on the query's intent (a newcomer; every path, on a new intent): an exploring choice takes
        one of them rather than sampling by p."""
        if self.explore_known is None or not counts.size or counts.min() >= self.explore_known:
            return []
        return np.flatnonzero(counts == counts.min()).tolist()

    def _q0(self, graded: np.ndarray) -> float:
        """ACS's exploitation probability for one choice: 1 − (1 − q0)·s/(s + n), n the graded outcomes of
        the least-graded path on offer on the query's intent and s ``explore_known``. Sampling is how a
        path the evidence undervalues gets graded, and the traffic sampled pays for it; once every path on
        offer has a long record, a sample mostly buys what is already known. On RouterBench's online run
        (every λ of the sweep, trails and ability warmed on 1,567 graded prompts) a flat 5% cost AIQ
        0.8283 → 0.8267; fading it with s = 20 kept 0.8283, the same as never exploring."""
        if self.explore_known is None:
            return self.q0
        least = float(graded.min()) if graded.size else 0.0
        return 1.0 - (1.0 - self.q0) * self.explore_known / (self.explore_known + least)

    def _cascade(
        self,
        pool: _Pool,
        intent: str,
        pick: int,
        eligible: np.ndarray,
        e: _Evaluation,
        lam: float,
        budget_usd: float | None,
    ) -> _Cascade | None:
        """A cascade instead of the colony's pick when one is worth more: two or three cheaper paths answer
        at once and the path the colony would take at λ = 0 (``strong``) only when they do not all agree.
        Only a panel with a record is weighed: graded history (``agreement``) holding ``CASCADE_EVIDENCE``
        queries of the intent where the panel and the strong path all answered. Its escalation rate r is the
        share where the panel differed, its quality what it showed (the first member's score where they
        agreed, the strong path's where they did not), its expected cost Σc_i + r·c_strong. A prior (members
        erring independently, two wrong answers agreeing by chance) flattered panels, since members trained
        alike err alike, and built cascades before anything was known of them; without a record there is
        none. A third member costs more and escalates more often, but when three agree they are wrong less
        often than two: on RouterBench's ARC-Challenge three cheap models all agreeing beat the best single
        model at 58% of its cost, where no pair did. The panel is the best of those drawn from the
        ``CASCADE_SHORTLIST`` most probable cheaper paths, its learned quality taken ``CASCADE_DOUBT``
        standard errors below its record; it is chosen when its η beats the pick's (τ, which it has none of,
        is the pick's). On RouterBench's split, weighing it on its members' and the strong path's trails
        instead (lower than the pick's: they rank how often each passes alone) left cascades chosen for 10 of
        658 prompts; on the pick's τ with its record taken as it is, at λ = 0 it chose panels on ARC
        predicted 0.952 that scored 0.935 where gpt-4 scored 0.948 (AIQ 0.8241; 0.8303, 0.8317, 0.8303,
        0.8306 at 1, 2, 3, 4 standard errors, against 0.8294 for single paths)."""
        if self.agreement is None:
            return None
        column = pool.intents.index(intent)
        serving = pool.per_path(pool.serves[:, column], "min")[eligible] > 0
        fits = eligible[serving]
        if fits.size < 3:
            return None
        eta0 = aco.heuristic(e.ability[fits], e.cost[fits], 0.0, e.latency[fits])
        strong = int(fits[int(np.argmax(aco.probabilities(e.tau[fits], eta0, self.alpha, self.beta)))])
        cheaper = fits[e.cost[fits] < e.cost[strong]]
        cheaper = cheaper[np.argsort(-e.probs[cheaper], kind="stable")][:CASCADE_SHORTLIST]
        panels = [c for k in CASCADE_SIZES for c in combinations(cheaper.tolist(), k)]
        last = pool.last_nodes
        qs = float(np.clip(e.quality[strong], 0.0, 1.0))
        members, escalate, quality = [], [], []
        for k in CASCADE_SIZES:
            of = [list(c) for c in panels if len(c) == k]
            if not of:
                continue
            seen = self.agreement.panels(intent, [[last[i] for i in m] for m in of], last[strong])
            agree = np.nan_to_num(seen.agree)
            # the prompts a panel disagrees on are harder than the intent's: the strong path's score there,
            # relative to its mean, shifts this query's prediction
            harder = np.nan_to_num(seen.strong_when_differ - seen.strong)
            learnt = agree * np.nan_to_num(seen.right_when_agree) + (1 - agree) * np.clip(qs + harder, 0.0, 1.0)
            error = np.sqrt(np.clip(learnt * (1 - learnt), 0.0, None) / np.maximum(seen.queries, 1))
            known = seen.queries >= CASCADE_EVIDENCE
            members += [m for m, ok in zip(of, known, strict=True) if ok]
            escalate.append((1 - agree)[known])
            quality.append((learnt - CASCADE_DOUBT * error)[known])
        if not members:
            return None
        escalate_at, expected = np.concatenate(escalate), np.concatenate(quality)
        mean = float(e.cost[eligible].mean())  # the scale the pick's η was weighed on
        match = float(e.ability[pick] / max(e.quality[pick], 1e-9))
        first_cost = np.array([e.cost[m].sum() for m in members])
        cost = first_cost + escalate_at * e.cost[strong]
        latency = np.array([e.latency[m].max() for m in members]) + escalate_at * e.latency[strong]
        eta = aco.heuristic(match * expected, cost, lam, latency, mean_cost=mean)
        # a cascade has no trail of its own, so τ takes no side: the pick's. Its members' trails rank how
        # often each passes alone, which says nothing of how often the panel does when they agree
        ours = aco.log_weight(np.full(len(members), e.tau[pick]), eta, self.alpha, self.beta)
        if budget_usd is not None:
            ours[first_cost + e.cost[strong] > budget_usd] = -np.inf
        best = int(np.argmax(ours))
        if ours[best] <= aco.log_weight(e.tau[pick], e.eta[pick], self.alpha, self.beta):
            return None
        return _Cascade(
            tuple(members[best]),
            strong,
            float(escalate_at[best]),
            float(expected[best]),
            float(cost[best]),
            pick,
            float(e.quality[pick]),
            float(e.cost[pick]),
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
        columns = zip(
            shown,
            e.tau[shown].round(6).tolist(),
            e.eta[shown].round(6).tolist(),
            e.ability[shown].round(4).tolist(),
            e.quality[shown].round(4).tolist(),
            e.cost[shown].tolist(),
            e.latency[shown].tolist(),
            e.probs[shown].round(6).tolist(),
            strict=True,
        )
        return [  # validating is faster than model_construct here (2.2 vs 4.1 µs a candidate, pydantic 2.14)
            Candidate(
                path=pool.hops_out[i],
                edges=pool.edges[i],
                tau=tau,
                eta=eta,
                ability=ability,
                quality=quality,
                expected_cost_usd=cost,
                latency_s=latency or None,
                probability=probability,
                excluded=e.excluded[i],
                over_budget=e.over_budget[i],
            )
            for i, tau, eta, ability, quality, cost, latency, probability in columns
        ]

    @staticmethod
    def _explain(
        intent: IntentResult,
        weights: Mapping[str, float],
        needed: list[str],
        candidates: list[Candidate],
        chosen: list[int],
        selection: list[Selected],
        eligible: int,
        total: int,
    ) -> str:
        top = ", ".join(f"{t} {w:.2f}" for t, w in sorted(weights.items(), key=lambda kv: -kv[1])[:3])
        lines = [f"Intent weights: {top}."]
        extra = [t for t in needed if t not in intent.parts]
        if intent.parts:
            asked = "; ".join(f"{t} for «{part}»" for t, part in intent.parts.items())
            lines.append(f"The query asks for {len(intent.parts)} things: {asked}; each needs an agent.")
            if extra:
                lines.append(f"{', '.join(extra)} also clear the set floor {intent.set_floor:.2f}.")
        elif len(needed) == 1:
            lines.append(f"Only {needed[0]} clears the set floor {intent.set_floor:.2f}: one agent suffices.")
        else:
            lines.append(f"{', '.join(needed)} clear the set floor {intent.set_floor:.2f}: each needs an agent.")
        lines.append(f"{eligible} of {total} candidate paths serve them.")
        if len(candidates) < total:
            lines.append(f"The trace lists the {len(candidates)} most probable.")
        for rank, (i, why) in enumerate(zip(chosen, selection, strict=True)):
            c = candidates[i]
            route = " → ".join(h.node for h in c.path)
            lead = "Chose" if rank == 0 else "Also asked"
            llm = "" if why.llm_selected is None else (" The LLM named it." if why.llm_selected else "")
            lines.append(
                f"{lead} {route} for {why.intent}: τ={c.tau:.3g} (pheromone), η={c.eta:.3g} (ability "
                f"{c.ability:.2f}, expected ${c.expected_cost_usd:.6f}), p={why.probability:.2f} among the "
                f"paths serving it.{llm}"
            )
        return " ".join(lines)
