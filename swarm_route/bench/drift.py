"""``swarm-route bench drift``: when an agent the router relies on breaks, does routing move off it?

On a stationary split (``bench routing``) the test stream holds nothing the warm-up did not say, so learning
online can only tie the frozen run. Here the world changes mid-stream. The router warms up on ``--train`` as
in ``bench routing``; the held-out prompts arrive shuffled (tasks interleaved, as traffic would be); from
``--at`` of the stream on, the model the frozen router sends most of the rest to breaks: its answers still
arrive, but wrong (score 0, in what the learning loop grades and in what the bench scores). The frozen run
goes on asking it; learning online should notice. Reported for each run: quality and cost before and after
the break (and in each quarter of the rest of the stream), and the share of prompts sent to the broken
model in each quarter.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from swarm_route.bench.report import console, table, write_json
from swarm_route.bench.routing import Bench, LearnInLine, load
from swarm_route.config import Settings
from swarm_route.core.messages import DispatchResult, Query, RouteDecision
from swarm_route.core.pipeline import Dispatch
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


async def stream(
    bench: Bench, client: Any, lam: float, online: bool, broken: str | None, at: int
) -> list[tuple[str, float, float]]:
    """Every test prompt, in order, walked at ``lam``: the model chosen, its score (0 for the broken model
    from prompt ``at`` on) and what the prompt cost. ``online``: each answer graded and learnt before the next
    prompt, with exploration, as ``bench routing``'s online run."""
    router, updater, memory = await bench.warm(client, f"drift-{uuid.uuid4().hex[:8]}", online)
    node = next((n for n, m in bench.node_model.items() if m == broken), None)
    wrapped: list[Breaks] = []

    def breaking(stage: Dispatch) -> Breaks:
        wrapped.append(Breaks(stage, node))
        return wrapped[-1]

    pipeline = bench.pipeline(
        router, memory if online else None, LearnInLine(updater) if online else None, wrap=breaking
    )
    out = []
    for i, row in enumerate(bench.test):
        wrapped[-1].broken = i >= at
        walked = await pipeline.walk(Query(text=row.prompt, cost_weight=lam, explore=online), f"drift-{i}")
        model = bench.node_model[walked.decision.candidates[walked.response.trace.chosen[0]].path[0].node]
        score = 0.0 if model == broken and i >= at else row.records[model].score or 0.0
        out.append((model, score, walked.response.cost_usd))
    return out


def summary(walked: Sequence[tuple[str, float, float]], at: int, broken: str) -> dict[str, Any]:
    before, after = walked[:at], walked[at:]
    quarters = np.array_split(np.array([m == broken for m, _, _ in after], dtype=float), QUARTERS)
    scores = np.array_split(np.array([s for _, s, _ in after], dtype=float), QUARTERS)
    return {
        "quality_before": round(float(np.mean([s for _, s, _ in before])), 4) if before else None,
        "quality_after": round(float(np.mean([s for _, s, _ in after])), 4) if after else None,
        "cost_before": round(sum(c for _, _, c in before), 6),
        "cost_after": round(sum(c for _, _, c in after), 6),
        "to_broken_by_quarter": [round(float(q.mean()), 3) if q.size else None for q in quarters],
        "quality_after_by_quarter": [round(float(q.mean()), 4) if q.size else None for q in scores],
    }


async def run(
    train_files: Sequence[str],
    test_files: Sequence[str] | None,
    *,
    holdout: float = 0.3,
    at: float = 0.5,
    lam: float | None = None,
    json_path: str | None = None,
    seed: int = 0,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """``at``: the share of the test stream after which the model breaks. ``lam``: the cost weight every
    prompt is routed at (default: the settings' ``aco.cost_weight``)."""
    if not 0 < at < 1:
        raise ValueError("--at must be between 0 and 1 (the share of the stream before the break)")
    bench, split = load(train_files, test_files, holdout, settings or Settings(), seed)
    order = list(range(len(bench.test)))
    random.Random(seed).shuffle(order)  # traffic interleaves tasks; the files list them one after another
    bench.test, bench.intents = [bench.test[i] for i in order], [bench.intents[i] for i in order]
    lam = bench.settings.aco.cost_weight if lam is None else lam
    cut = int(len(bench.test) * at)
    runs: dict[str, list[tuple[str, float, float]]] = {}
    async with client_on(bench.settings.redis_url) as client:
        with console.status("frozen, nothing broken: which model the rest of the stream relies on"):
            runs["frozen, nothing broken"] = await stream(bench, client, lam, False, None, cut)
        relied = [m for m, _, _ in runs["frozen, nothing broken"][cut:]]
        broken = max(bench.models, key=relied.count)
        for name, online in (("frozen", False), ("online", True)):
            with console.status(f"{name}, {broken} broken after prompt {cut}"):
                runs[name] = await stream(bench, client, lam, online, broken, cut)
    result: dict[str, Any] = {
        "train_prompts": len(bench.train),
        "test_prompts": len(bench.test),
        "split": split,
        "models": bench.models,
        "cost_weight": lam,
        "broken": {
            "model": broken,
            "after_prompt": cut,
            "share_relied_on": round(relied.count(broken) / len(relied), 3),
        },
        "runs": {name: summary(walked, cut, broken) for name, walked in runs.items()},
    }
    table(
        f"drift: {broken} answers wrong from prompt {cut} of {len(bench.test)} on (λ = {lam})",
        ["run", "quality before", "after", "after, by quarter", "cost after USD", "sent to it, by quarter after"],
        [
            (
                name,
                r["quality_before"],
                r["quality_after"],
                " / ".join(f"{q:.2f}" for q in r["quality_after_by_quarter"] if q is not None),
                r["cost_after"],
                " / ".join(f"{q:.2f}" for q in r["to_broken_by_quarter"] if q is not None),
            )
            for name, r in result["runs"].items()
        ],
    )
    write_json(json_path, result)
    return result
