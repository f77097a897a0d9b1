"""Warm-up from recorded history: the same quality-gated deposits and graded outcomes the updater makes
online, replayed from a routing matrix so a new deployment does not start from uniform trails.

Each recorded prompt is one graded event in its task's specialist (the task label is a training label,
never an input at query time): the trails evaporate once and every model whose recorded score passes the
gate gets Δτ = Q/(cost+ε) on its path's edges.

A failing record takes nothing off, though the updater's failing grades take ``aco.penalty``·Δ: the penalty
is there so a path that breaks loses the lead it holds, and history graded on every model at once holds no
lead to lose. Replayed with the penalty too, the frozen run's AIQ on RouterBench fell from 0.8294 to 0.8202
(trails then stretch pass rates apart, p − (1 − p), and outvote the per-query ability).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from swarm_route.agents.replay import RoutingMatrix, Row, replay_pool
from swarm_route.config import Settings
from swarm_route.core.dispatch.verify import short_answer
from swarm_route.core.learn.quality import QualityGate
from swarm_route.core.messages import Hop
from swarm_route.core.registry import AgentRegistry, as_name
from swarm_route.core.route.graph import Path
from swarm_route.core.route.outcomes import Outcome, OutcomeLog
from swarm_route.core.route.pheromone import PheromoneStore
from swarm_route.keys import Keys
from swarm_route.store import connect
from swarm_route.wiring import pheromone_store, quality_gate


@dataclass
class WarmupReport:
    prompts: int = 0
    deposits: int = 0
    outcomes: int = 0


def model_path(model: str) -> Path:
    return Path((Hop(agent=as_name(model), model=model),))


async def warm_up(
    rows: Sequence[Row],
    store: PheromoneStore,
    gate: QualityGate,
    *,
    deposit_q: float,
    epsilon: float,
    outcomes: OutcomeLog | None = None,
    paths: Mapping[str, Path] | None = None,
    batch: int = 500,
) -> WarmupReport:
    report = WarmupReport()
    pending: list[Outcome] = []
    deposits: dict[str, list[dict[str, float]]] = {}  # per specialist, in row order: written a batch at a time
    queued = 0

    async def flush() -> None:
        nonlocal queued
        for name, events in deposits.items():
            await store.deposit_many(name, events)
        deposits.clear()
        queued = 0
        if outcomes is not None and pending:
            await outcomes.append(pending)
            report.outcomes += len(pending)
            pending.clear()

    for row in rows:
        report.prompts += 1
        intent = row.intent
        deltas: dict[str, float] = {}
        for model, record in row.records.items():
            if record.score is None:
                continue
            path = (paths or {}).get(model) or model_path(model)
            if outcomes is not None:
                pending.append(
                    Outcome(
                        text=row.prompt,
                        node=path.hops[-1].node,
                        score=record.score,
                        cost_usd=record.cost_usd,
                        intent=intent,
                        answer=short_answer(record.response),
                    )
                )
            if gate.passes(record.score):
                for edge in path.edges:
                    deltas[edge] = deltas.get(edge, 0.0) + deposit_q / ((record.cost_usd or 0.0) + epsilon)
        if deltas:
            deposits.setdefault(intent, []).append(deltas)
            report.deposits += 1
            queued += 1
        if len(pending) >= batch or queued >= batch:
            await flush()
    await flush()
    return report


async def warm_service(settings: Settings, files: Sequence[str], matrix: RoutingMatrix | None = None) -> str:
    """Register one replay agent per model of the routing matrices and warm trails and ability on them,
    in the service's Redis: what ``swarm-route warmup`` and ``bench load`` do."""
    from swarm_route.agents.replay import RoutingMatrix
    from swarm_route.core.route.outcomes import OutcomeLog
    from swarm_route.warmup import warm_up

    matrix = matrix or RoutingMatrix.load(*files)
    client = connect(settings.redis_url or "")
    keys = Keys(settings.namespace)
    registry = AgentRegistry(client, keys)
    for spec in replay_pool(matrix, list(files)):
        await registry.register(spec, replace=True)
    report = await warm_up(
        matrix.rows,
        pheromone_store(settings, client),
        quality_gate(settings, sample_rate=1.0),  # history is graded whole, not sampled
        deposit_q=settings.aco.deposit_q,
        epsilon=settings.aco.epsilon,
        outcomes=OutcomeLog(client, keys),
    )
    await client.aclose()
    return (
        f"registered {len(matrix.models)} replay agents; {report.prompts} prompts, "
        f"{report.deposits} graded events, {report.outcomes} outcomes"
    )
