"""``swarm-route bench agents``: does the router name the right set of agents, and decline when none fits?

Agents from an agent-set file are registered through onboarding (the code ``POST /v1/agents`` runs) into a
real Redis; with ``--train`` the past traffic becomes labelled examples of the agents' skills (what
``intent.files`` does in the service); then every ``--test`` query is classified and routed one at a time,
through the same classifier and router the service builds from its settings. Gold sets are compared with
the agents the router chose to dispatch to.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

from rich.progress import track

from swarm_route.bench.report import console, percentiles, table, write_json
from swarm_route.config import Settings
from swarm_route.core.classify.compound import JOINERS, join
from swarm_route.core.classify.embedding import default_embedder
from swarm_route.core.classify.intent import IntentClassifier, LabelledExamples, traffic_examples, training_set
from swarm_route.core.llm import LLMSettings
from swarm_route.core.messages import IntentResult, Query
from swarm_route.core.onboarding import AgentCard, AgentPolicy, CardSkill, onboard
from swarm_route.core.pipeline import Pipeline
from swarm_route.core.registry import AgentRegistry, as_name
from swarm_route.keys import Keys
from swarm_route.store import EmbeddedRedis, connect
from swarm_route.wiring import (
    LLM_NOT_USED,
    AggregateStage,
    DispatchStage,
    FixedAgents,
    RouteStage,
    dispatcher,
    intent_classifier,
    pheromone_store,
    reason_then_select,
    reasoning_router,
)

# never called (the benchmark routes, it does not dispatch): TEST-NET-1, a documentation network nothing routes
BENCH_ENDPOINT = "http://192.0.2.1/"
BENCH_POLICY = AgentPolicy(allow_networks=["192.0.2.0/24"])


class _Fitted:
    """The classifier stage of the benchmark: the classifier fitted once on the registry and ``--train``."""

    def __init__(self, classifier: IntentClassifier) -> None:
        self._classifier = classifier

    async def classify(self, query: str) -> IntentResult:
        return self._classifier.classify(query)


def _lines(path: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _cards(entries: list[dict[str, Any]]) -> tuple[list[AgentCard], dict[str, str]]:
    """One A2A card per agent (its examples as the skill's); names made ids, and the map back."""
    cards, names = [], {}
    for entry in entries:
        sid = as_name(entry["name"])
        while sid in names:  # two display names slugged alike
            sid = as_name(f"{sid}_{len(names)}")
        names[sid] = entry["name"]
        skill = CardSkill(id=sid, description=entry["description"], examples=entry.get("examples") or [])
        cards.append(AgentCard(name=sid, description=entry["description"], url=BENCH_ENDPOINT + sid, skills=[skill]))
    return cards, names


def compound_queries(rows: list[dict[str, Any]], count: int, seed: int = 0) -> list[dict[str, Any]]:
    """``count`` two-need queries from single-agent ones of different agents, joined as people write them
    (``compound.join``, the way the classifier's own compound validation queries are joined)."""
    singles = [r for r in rows if len(r["agents"]) == 1]
    if len({r["agents"][0] for r in singles}) < 2:
        return []
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    while len(out) < count:
        a, b = rng.sample(singles, 2)
        if a["agents"] == b["agents"]:
            continue
        text = join(a["query"], b["query"], rng.choice(JOINERS))
        out.append({"query": text, "agents": sorted({*a["agents"], *b["agents"]})})
    return out


def _score(gold: list[set[str]], chosen: list[set[str]]) -> dict[str, Any]:
    inside = [(g, c) for g, c in zip(gold, chosen, strict=True) if g]
    outside = [c for g, c in zip(gold, chosen, strict=True) if not g]
    picked = [c for _, c in inside if c]

    def share(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

    return {
        "queries": len(gold),
        "in_scope": len(inside),
        "out_of_scope": len(outside),
        "hit_rate": share(sum(bool(g & c) for g, c in inside), len(inside)),
        "exact_set_rate": share(sum(g == c for g, c in zip(gold, chosen, strict=True)), len(gold)),
        "precision": share(sum(len(g & c) for g, c in inside), sum(len(c) for c in picked)),
        "recall": share(sum(len(g & c) for g, c in inside), sum(len(g) for g, _ in inside)),
        "mean_agents_selected": share(sum(len(c) for _, c in inside), len(inside)),
        "decline_rate": share(sum(not c for c in outside), len(outside)),
        "false_decline_rate": share(sum(not c for _, c in inside), len(inside)),
    }


async def _run(
    settings: Settings,
    agents_path: str,
    test_path: str,
    train_path: str | None,
    embeddings: bool,
    llm: LLMSettings | None,
    compound: int,
    limit: int | None,
) -> dict[str, Any]:
    """``compound``: how many two-need queries to join from the test's single-agent ones (0: none).
    ``limit``: route a seeded sample of this many test queries (compound ones are joined from the whole file)."""
    entries = json.loads(Path(agents_path).read_text(encoding="utf-8"))
    every = _lines(test_path)
    test = random.Random(0).sample(every, limit) if limit is not None and limit < len(every) else every
    cards, names = _cards(entries)
    ids = {v: k for k, v in names.items()}
    console.print(f"agents bench: {len(cards)} agents, {len(test)} test queries, train: {train_path or 'none'}")

    with EmbeddedRedis() as redis:
        client = connect(redis.url)
        settings = settings.model_copy(update={"namespace": f"bench-{uuid.uuid4().hex[:8]}"})
        registry = AgentRegistry(client, Keys(settings.namespace))
        store = pheromone_store(settings, client)
        for card in cards:
            await onboard(registry, store, card, BENCH_POLICY)
        _, agents = await registry.snapshot()

        past = LabelledExamples()
        if train_path:
            with open(train_path, encoding="utf-8") as fh:
                traffic = traffic_examples(fh)  # labels are the file's agent names: map them to the ids
            past = LabelledExamples(traffic.texts, [ids.get(label, label) for label in traffic.labels])
        t0 = time.perf_counter()
        classifier = intent_classifier(settings, default_embedder() if embeddings else None).fit(
            training_set(agents.values(), past)
        )
        train_seconds = time.perf_counter() - t0
        pipeline = Pipeline(
            _Fitted(classifier),
            RouteStage(
                reasoning_router(settings, store),
                FixedAgents(agents),
                llm=reason_then_select(settings, llm) if llm else None,
            ),
            DispatchStage(dispatcher(settings), FixedAgents(agents)),  # never called: decide() routes only
            AggregateStage(settings),
        )

        async def routed(rows: list[dict[str, Any]]) -> tuple[list[set[str]], list[set[str]], list[float], int]:
            gold, chosen, latency, llm_failures = [], [], [], 0
            for row in track(rows, description="routing"):
                t = time.perf_counter()
                decision = await pipeline.decide(Query(text=row["query"], explore=False))
                latency.append((time.perf_counter() - t) * 1000)
                llm_failures += (decision.router_llm or "").startswith(LLM_NOT_USED)
                gold.append(set(row["agents"]))
                chosen.append({names[a] for sel in decision.selection for a in sel.agents})
            return gold, chosen, latency, llm_failures

        gold, chosen, latency, llm_failures = await routed(test)
        joined = compound_queries(every, compound)
        compound_gold, compound_chosen, _, _ = await routed(joined)
        await client.aclose()

    result = {
        "agents": agents_path,
        "test": test_path,
        "train": train_path,
        **_score(gold, chosen),
        "compound": _score(compound_gold, compound_chosen) if joined else None,
        "latency_ms": percentiles(latency[10:] or latency),
        "train_seconds": round(train_seconds, 2),
        "embeddings": embeddings,
        "set_floor": round(classifier.set_floor, 4),
        "cut_rule": {"apart": round(classifier.cut_rule.apart, 4), "surer": classifier.cut_rule.surer},
        "temperature": round(classifier.temperature, 4),
        "oos_threshold": round(classifier.threshold, 4),
        "llm": llm.model if llm else None,
        "llm_failures": llm_failures if llm else None,
    }
    return result


def run(
    agents_path: str,
    test_path: str,
    *,
    train_path: str | None = None,
    json_path: str | None = None,
    embeddings: bool = True,
    llm: LLMSettings | None = None,
    settings: Settings | None = None,
    compound: int = 500,
    limit: int | None = None,
) -> dict[str, Any]:
    for p in (agents_path, test_path, train_path):
        if p and not Path(p).is_file():
            raise FileNotFoundError(f"no such file: {p}")
    result = asyncio.run(
        _run(settings or Settings(), agents_path, test_path, train_path, embeddings, llm, compound, limit)
    )
    table(
        "agent-set selection",
        ["metric", "value"],
        [(k, json.dumps(v) if isinstance(v, dict) else v) for k, v in result.items() if k not in ("agents", "test")],
    )
    write_json(json_path, result)
    return result
