"""The asynchronous, quality-gated pheromone updater (AMRO-S's learning loop, off the request path).

It consumes the finished-request stream, keeps each request's record for late feedback, grades a sample,
and deposits Δτ = w_t(q)·Q/(cost(P)+ε) on the path's edges in every intent specialist the query carried
when the score passes the gate; when it fails, it takes ``penalty`` times that off them. Scheduled
evaporation runs from the same loop.

Why a failure costs a path more than evaporation: every graded event evaporates every edge of the
specialist alike, and once traffic has settled on one path only that path is graded. If it breaks, it
stops earning deposits, but every other trail decays as fast as its own, so it keeps its lead: on
RouterBench (``bench drift``), with gpt-4 answering wrong from mid-stream, the online run went on sending it
every prompt (quality 0.000 after the break); with the penalty it moved off within the first quarter of the
rest (0.647 after the break, against 0.113 frozen), and the stationary online AIQ stayed 0.8283.

A grade that reaches the updater after its agent was removed (late feedback, a batch in flight) lays no
trail, nor does its answer's latency stay: removal took the agent's trails and latencies away
(``PheromoneStore.forget``, ``AgentRegistry.remove``), and laying them again would hand an agent registered
later under that name a trail it never earned, outside the trial a newcomer gets. What a
removal does not catch is a grade handled within ``store.registry_refresh_s`` of it (the updater's view of
the registry may still hold the agent).

A cascade's walk teaches no trail and no agreement: its paths were asked on condition (the panel instead of
the colony's pick, the strong path only where the panel differed, on the prompts hard for both), so their
grades rank paths on a biased sample. Its outcomes still teach the ability model, which predicts per query.
On RouterBench (``bench routing``'s split, cascades on, every λ learning online) the online AIQ went from
0.8207, with every asked path depositing and its answer recorded, to 0.8241 without the deposits and 0.8263
without the answers too (the agreement record then held only the prompts the panel had split on).
A caller's feedback grades only the paths whose answer stood (``PathOutcome.stood``): an escalated
cascade's first answers differed from the one the caller got, and the grade is not theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis.asyncio as aioredis
from opentelemetry import propagate, trace
from opentelemetry.trace import Link
from redis.exceptions import RedisError

from swarm_route.core.failopen import STORE_ERRORS
from swarm_route.core.learn.quality import QualityGate
from swarm_route.core.learn.stream import EventStream
from swarm_route.core.messages import (
    Event,
    Feedback,
    FinishedRequest,
    PathOutcome,
    edge_agents,
    node_agent,
    top_intent,
)
from swarm_route.core.route.outcomes import Outcome, OutcomeLog
from swarm_route.core.route.pheromone import PheromoneStore
from swarm_route.keys import Keys

log = logging.getLogger(__name__)
LATENCY_EWMA = 0.2  # weight of the newest latency sample
DEAD_LETTERS_KEPT = 1000
GRADED_TTL_S = 30 * 24 * 3600  # longer than any record_ttl_s, so a request is graded once in its lifetime
BATCH = 64  # stream entries read, handled and written at once
# After a short batch the updater waits this long before reading again: keeping pace with the stream it
# read one or two events at a time, and a batch's ~5 round trips were paid per event (learning lags the
# answers by this much more, off the request path)
GATHER_S = 0.1
_tracer = trace.get_tracer("swarm_route")


async def latencies(client: aioredis.Redis, keys: Keys) -> dict[str, float]:
    """Each node's recent latency in seconds (EWMA), as the updater records it from finished requests."""
    return {node: float(v) for node, v in (await client.hgetall(keys.latency)).items()}


class Registered(Protocol):
    """Which agents are registered now (``AgentRegistry``), read again when one asked about is missing."""

    async def snapshot(self, needing: Iterable[str] = ()) -> tuple[int, Mapping[str, Any]]: ...


class PheromoneUpdater:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        store: PheromoneStore,
        gate: QualityGate,
        *,
        deposit_q: float,
        epsilon: float,
        min_intent_weight: float,
        penalty: float = 0.0,
        consumer: str = "updater-0",
        on_event: Callable[[str], None] | None = None,
        registry: Registered | None = None,
    ) -> None:
        """``registry``: deposit only on paths whose agents are all registered (none: on every path, as a
        benchmark's fixed pool needs)."""
        self._r = client
        self._registry = registry
        self._k = keys
        self.store = store
        self.gate = gate
        self.stream = EventStream(client, keys)
        self.outcomes = OutcomeLog(client, keys)
        self.deposit_q, self.epsilon, self.min_intent_weight = deposit_q, epsilon, min_intent_weight
        self.penalty = penalty
        self.consumer = consumer
        self._on_event = on_event  # e.g. a metrics counter; the Redis counters are the durable record

    async def step(self, count: int = BATCH, block_ms: int = 500) -> int:
        """Read, handle and acknowledge one batch; returns how many entries it handled. The batch's writes
        go in one transaction (``_Writes``). An event whose handling fails for any reason but the store's
        goes to the dead-letter list and is acknowledged: redelivered, it would fail again, and learning
        would stop behind it. A store error leaves the batch unacknowledged, to be redelivered once the
        store is back."""
        entries = await self.stream.read(self.consumer, count, block_ms)
        writes = _Writes()
        for entry_id, event in entries:
            if event is None:
                self._count(writes, "malformed")
                continue
            try:
                await self._handle(event, writes, entry_id)
            except STORE_ERRORS:
                raise
            except Exception as exc:
                log.exception("updater: event %s could not be handled; dead-lettered", entry_id)
                await self._dead_letter(entry_id, event, exc)
                self._count(writes, "dead_lettered")
        await self._send(writes, acknowledge=[entry_id for entry_id, _ in entries])
        return len(entries)

    async def _dead_letter(self, entry_id: str, event: Event, exc: Exception) -> None:
        letter = json.dumps({"id": entry_id, "error": f"{type(exc).__name__}: {exc}", "event": event.model_dump()})
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.lpush(self._k.dead_letters, letter)
            pipe.ltrim(self._k.dead_letters, 0, DEAD_LETTERS_KEPT - 1)
            await pipe.execute()

    async def handle(self, event: Event) -> None:
        """One event, written at once (a benchmark learning in line calls this; the service's loop batches)."""
        writes = _Writes()
        await self._handle(event, writes, uuid.uuid4().hex)
        await self._send(writes)

    async def _handle(self, event: Event, writes: _Writes, entry: str) -> None:
        """One event (``entry``: its stream id, or a token of its own), in a span of its own linked to the
        query's trace (caused by it, not part of it)."""
        record = event if isinstance(event, FinishedRequest) else await self.stream.record(event.request_id)
        span_context = trace.get_current_span(propagate.extract(record.trace_context if record else {}))
        links = [Link(span_context.get_span_context())] if span_context.get_span_context().is_valid else []
        with _tracer.start_as_current_span(
            f"update.{event.type}", links=links, attributes={"swarm_route.request_id": event.request_id}
        ):
            if isinstance(event, FinishedRequest):
                self._finished(writes, event)
            else:
                await self._feedback(writes, event, record, entry)

    def _finished(self, writes: _Writes, event: FinishedRequest) -> None:
        self._count(writes, "finished")
        for path in event.paths:
            for node in path.nodes:
                writes.latency.setdefault(node, []).append(path.latency_ms / 1000)
        if not self.gate.sampled(event.request_id):
            return
        for path in event.paths:
            if path.score is not None:
                self._grade(writes, event, path, path.score)

    async def _feedback(self, writes: _Writes, event: Feedback, record: FinishedRequest | None, entry: str) -> None:
        """The first grade of a request stands: its marker names the stream entry that set it. The marker is
        set before the batch's transaction, so when that transaction fails (the store went away between
        them) the entry, redelivered, finds its own mark and is applied; a marker of "1" made every such
        grade a duplicate, never applied (``bench chaos``: 3 of 1,641 grades lost, the store stopped mid-batch)."""
        if record is None:  # expired between the feedback's acceptance and now
            self._count(writes, "feedback_orphaned")
            return
        key = self._k.graded(event.request_id)
        if not await self._r.set(key, entry, nx=True, ex=GRADED_TTL_S) and await self._r.get(key) != entry:
            self._count(writes, "feedback_duplicate")  # two grades accepted at once, or while the store could not tell
            return
        self._count(writes, "feedback")
        for path in record.paths:
            if path.stood:  # the grade is of the answer the caller got, not of a cascade's set-aside ones
                self._grade(writes, record, path, event.score)

    def _grade(self, writes: _Writes, record: FinishedRequest, path: PathOutcome, score: float) -> None:
        self._count(writes, "graded")
        if record.query:
            cost = path.cost_usd / max(len(path.nodes), 1)
            intent = top_intent(record.intent_weights)
            writes.outcomes.extend(
                Outcome(
                    text=record.query,
                    node=n,
                    score=score,
                    cost_usd=cost,
                    intent=intent,
                    # what the path said is its last node's; a cascade's would bias the agreement record
                    answer=path.answer if n == path.nodes[-1] and not record.cascade else None,
                )
                for n in path.nodes
            )
        if record.cascade:  # asked on condition: see the module's docstring
            return
        passed = self.gate.passes(score)
        amount = self.deposit_q / (path.cost_usd + self.epsilon) * (1.0 if passed else -self.penalty)
        self._count(writes, "deposited" if passed else "rejected")
        if not amount:
            return
        for intent, weight in record.intent_weights.items():
            if weight >= self.min_intent_weight:
                writes.deposits.append((intent, {e: weight * amount for e in path.edges}))

    def _count(self, writes: _Writes, name: str) -> None:
        writes.counts[name] += 1
        if self._on_event is not None:
            self._on_event(name)

    async def _send(self, writes: _Writes, acknowledge: Sequence[str] = ()) -> None:
        """Write it all, and acknowledge the stream entries it came from in the same transaction."""
        if writes.empty and not acknowledge:
            return
        await self._registered_only(writes)
        smoothed = {}
        if writes.latency:
            nodes = list(writes.latency)
            for node, old in zip(nodes, await self._r.hmget(self._k.latency, nodes), strict=True):
                value = None if old is None else float(old)
                for seconds in writes.latency[node]:
                    value = seconds if value is None else (1 - LATENCY_EWMA) * value + LATENCY_EWMA * seconds
                smoothed[node] = f"{value:.6g}"
        async with self._r.pipeline(transaction=True) as pipe:
            for name, n in writes.counts.items():
                pipe.hincrby(self._k.updater_stats, name, n)
            if smoothed:
                pipe.hset(self._k.latency, mapping=smoothed)
            self.outcomes.queue(pipe, writes.outcomes)
            by_intent: dict[str, list[dict[str, float]]] = {}  # specialists are apart: only each one's order counts
            for intent, deltas in writes.deposits:
                by_intent.setdefault(intent, []).append(deltas)
            for intent, events in by_intent.items():
                await self.store.deposit_many(intent, events, pipe=pipe)
            self.stream.queue_ack(pipe, *acknowledge)
            await pipe.execute()

    async def _registered_only(self, writes: _Writes) -> None:
        """Drops the batch's deposits on paths of agents no longer registered (counted as ``unregistered``;
        see the module's docstring), and their nodes' latency samples (a removal took those too)."""
        if self._registry is None or not (writes.deposits or writes.latency):
            return
        agents = {node_agent(n) for n in writes.latency}
        agents |= {a for _, deltas in writes.deposits for edge in deltas for a in edge_agents(edge)}
        _, registered = await self._registry.snapshot(needing=agents)
        kept = [(i, d) for i, d in writes.deposits if all(edge_agents(e) <= registered.keys() for e in d)]
        for _ in range(len(writes.deposits) - len(kept)):
            self._count(writes, "unregistered")
        writes.deposits = kept
        writes.latency = {n: samples for n, samples in writes.latency.items() if node_agent(n) in registered}

    async def run(self, stop: asyncio.Event, evaporate_interval_s: float, block_ms: int = 500) -> None:
        """Until ``stop`` is set: consume, and evaporate on schedule. Store errors are logged and retried."""
        await self.stream.ensure_group()
        next_evaporation = time.monotonic() + evaporate_interval_s
        while not stop.is_set():
            try:
                if await self.step(count=BATCH, block_ms=block_ms) < BATCH:
                    with contextlib.suppress(TimeoutError):  # a short batch: let the next one gather
                        await asyncio.wait_for(stop.wait(), GATHER_S)
                if time.monotonic() >= next_evaporation:
                    touched = await self.store.evaporate()
                    writes = _Writes()
                    self._count(writes, "evaporations")
                    await self._send(writes)
                    log.info("evaporated %d edges", touched)
                    next_evaporation = time.monotonic() + evaporate_interval_s
            except STORE_ERRORS as exc:
                log.warning("updater: store error, retrying in 1 s: %s", exc)
                await asyncio.sleep(1.0)
                with contextlib.suppress(RedisError):
                    await self.stream.ensure_group()

    async def stats(self) -> dict[str, int]:
        raw = await self._r.hgetall(self._k.updater_stats)
        return {k: int(v) for k, v in raw.items()}


@dataclass
class _Writes:
    """What a batch of events writes, sent in one transaction (``PheromoneUpdater._send``): under load the
    updater made ~9 round trips per finished request (its counters, a read and a write of each node's
    latency, the outcome, each deposit), which cost more CPU than grading itself (py-spy: ~3 ms per routed
    query at 32 clients). Counters are summed, latency samples folded into each node's EWMA in order,
    outcomes and deposits kept in order."""

    counts: Counter[str] = field(default_factory=Counter)
    latency: dict[str, list[float]] = field(default_factory=dict)  # node → its samples, oldest first
    outcomes: list[Outcome] = field(default_factory=list)
    deposits: list[tuple[str, dict[str, float]]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.counts or self.latency or self.outcomes or self.deposits)
