"""``swarm-route bench drift``: when the agents change mid-stream, does routing follow?

On a stationary split (``bench routing``) the test stream holds nothing the warm-up did not say, so learning
online can only tie the frozen run. Here the world changes mid-stream. The router warms up on ``--train`` as
in ``bench routing``; the held-out prompts arrive shuffled (tasks interleaved, as traffic would be); from
``--at`` of the stream on, the model the frozen router sends most of the rest to changes (``--event``):

- ``break``: its answers still arrive, but wrong (score 0, in what the learning loop grades and in what the
  bench scores). The frozen run goes on asking it; learning online should notice.
- ``join``: it was not registered before and its history was never graded; it registers at ``--at``, as a
  newcomer does (its trails seeded at each intent's best, on trial). Frozen routing knows nothing of it but its price;
  learning online should find out what it is worth.

Reported for each run: quality and cost before and after the change (and in each quarter of the rest of the
stream), and the share of prompts sent to that model in each quarter.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from swarm_route.bench.report import console, table, write_json
from swarm_route.bench.routing import Bench, LearnInLine, load
from swarm_route.config import Settings
from swarm_route.core.messages import DispatchResult, Query, RouteDecision
from swarm_route.core.onboarding import seed_trails
from swarm_route.core.pipeline import Dispatch
from swarm_route.core.registry import AgentSpec, as_name
from swarm_route.store import client_on

QUARTERS = 4


class Breaks:
    """A dispatch stage whose ``node`` answers wrong while ``broken`` is set: its answers keep their text and
    cost, with score 0 (a model that regressed, not one that is down: a failing call would be retried and
    failed over, and the router would learn of it from the dispatch's own record). Set per prompt, not
    counted per dispatch: a cascade dispatches twice for one prompt."""

    def __init__(self, inner: Dispatch, node: str | None) -> None:
        self.inner, self.node, self.broken = inner, node, False

    async def run(self, query: str, decision: RouteDecision) -> DispatchResult:
        result = await self.inner.run(query, decision)
        if self.node is None or not self.broken:
            return result
        answers = [a.model_copy(update={"score": 0.0}) if a.hops[-1].node == self.node else a for a in result.answers]
        return result.model_copy(update={"answers": answers})


class Joins:
    """The pool without ``name`` until ``joined`` is set, then with it: a registration mid-stream."""

    def __init__(self, agents: dict[str, AgentSpec], name: str) -> None:
        self.after = dict(agents)
        self.before = {k: v for k, v in agents.items() if k != name}
        self.joined = False

    async def snapshot(self, needing: Iterable[str] = ()) -> tuple[int, dict[str, AgentSpec]]:
        return (1, self.after) if self.joined else (0, self.before)


async def stream(
    bench: Bench, client: Any, lam: float, online: bool, event: str, model: str | None, at: int
) -> list[tuple[str, float, float]]:
    """Every test prompt, in order, walked at ``lam``: the model chosen, its score and what the prompt cost.
    ``event`` happens to ``model`` at prompt ``at`` (None: nothing happens): ``break``, it scores 0 from
    there on; ``join``, it is in neither the history nor the pool before. ``online``: each answer graded and
    learnt before the next prompt, with exploration, as ``bench routing``'s online run."""
    joins = event == "join" and model is not None
    namespace = f"drift-{uuid.uuid4().hex[:8]}"
    router, updater, memory = await bench.warm(client, namespace, online, without=model if joins else None)
    node = next((n for n, m in bench.node_model.items() if m == model), None)
    wrapped: list[Breaks] = []

    def breaking(stage: Dispatch) -> Breaks:
        wrapped.append(Breaks(stage, node if event == "break" else None))
        return wrapped[-1]

    pool = Joins(bench.agents, as_name(model)) if joins and model is not None else None
    sink = LearnInLine(updater) if online else None
    pipeline = bench.pipeline(router, memory if online else None, sink, wrap=breaking, agents=pool)
    out = []
    for i, row in enumerate(bench.test):
        wrapped[-1].broken = i >= at
        if pool is not None and model is not None and i == at:
            pool.joined = True
            await seed_trails(router.pheromones, pool.after[as_name(model)])  # as a registration would
        walked = await pipeline.walk(Query(text=row.prompt, cost_weight=lam, explore=online), f"drift-{i}")
        chosen = bench.node_model[walked.decision.candidates[walked.response.trace.chosen[0]].path[0].node]
        broken = event == "break" and chosen == model and i >= at
        out.append((chosen, 0.0 if broken else row.records[chosen].score or 0.0, walked.response.cost_usd))
    return out


def summary(walked: Sequence[tuple[str, float, float]], at: int, model: str) -> dict[str, Any]:
    before, after = walked[:at], walked[at:]
    quarters = np.array_split(np.array([m == model for m, _, _ in after], dtype=float), QUARTERS)
    scores = np.array_split(np.array([s for _, s, _ in after], dtype=float), QUARTERS)
    return {
        "quality_before": round(float(np.mean([s for _, s, _ in before])), 4) if before else None,
        "quality_after": round(float(np.mean([s for _, s, _ in after])), 4) if after else None,
        "cost_before": round(sum(c for _, _, c in before), 6),
        "cost_after": round(sum(c for _, _, c in after), 6),
        "to_model_by_quarter": [round(float(q.mean()), 3) if q.size else None for q in quarters],
        "quality_after_by_quarter": [round(float(q.mean()), 4) if q.size else None for q in scores],
    }


EVENTS = {"break": ("broken", "answers wrong"), "join": ("joined", "registers")}


async def run(
    train_files: Sequence[str],
    test_files: Sequence[str] | None,
    *,
    holdout: float = 0.3,
    at: float = 0.5,
    event: str = "break",
    lam: float | None = None,
    json_path: str | None = None,
    seed: int = 0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """``at``: the share of the test stream after which the model changes. ``event``: ``break`` or ``join``.
    ``lam``: the cost weight every prompt is routed at (default: the settings' ``aco.cost_weight``)."""
    if not 0 < at < 1:
        raise ValueError("--at must be between 0 and 1 (the share of the stream before the change)")
    if event not in EVENTS:
        raise ValueError(f"--event must be one of {', '.join(EVENTS)}")
    bench, split = load(train_files, test_files, holdout, settings or Settings(), seed)
    order = list(range(len(bench.test)))
    random.Random(seed).shuffle(order)  # traffic interleaves tasks; the files list them one after another
    bench.test, bench.intents = [bench.test[i] for i in order], [bench.intents[i] for i in order]
    lam = bench.settings.aco.cost_weight if lam is None else lam
    cut = int(len(bench.test) * at)
    key, happens = EVENTS[event]
    reference = "frozen, nothing broken" if event == "break" else "frozen, there all along"
    runs: dict[str, list[tuple[str, float, float]]] = {}
    async with client_on(bench.settings.redis_url) as client:
        with console.status(f"{reference}: which model the rest of the stream relies on"):
            runs[reference] = await stream(bench, client, lam, False, event, None, cut)
        relied = [m for m, _, _ in runs[reference][cut:]]
        model = max(bench.models, key=relied.count)
        for name, online in (("frozen", False), ("online", True)):
            with console.status(f"{name}, {model} {key} at prompt {cut}"):
                runs[name] = await stream(bench, client, lam, online, event, model, cut)
    result: dict[str, Any] = {
        "train_prompts": len(bench.train),
        "test_prompts": len(bench.test),
        "split": split,
        "models": bench.models,
        "cost_weight": lam,
        "event": event,
        key: {"model": model, "after_prompt": cut, "share_relied_on": round(relied.count(model) / len(relied), 3)},
        "runs": {name: summary(walked, cut, model) for name, walked in runs.items()},
    }
    table(
        f"drift: {model} {happens} from prompt {cut} of {len(bench.test)} on (λ = {lam})",
        ["run", "quality before", "after", "after, by quarter", "cost after USD", "sent to it, by quarter after"],
        [
            (
                name,
                r["quality_before"],
                r["quality_after"],
                " / ".join(f"{q:.2f}" for q in r["quality_after_by_quarter"] if q is not None),
                r["cost_after"],
                " / ".join(f"{q:.2f}" for q in r["to_model_by_quarter"] if q is not None),
            )
            for name, r in result["runs"].items()
        ],
    )
    write_json(json_path, result)
    return result
