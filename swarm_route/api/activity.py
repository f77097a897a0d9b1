"""What the console shows of traffic, shared by every ingress replica through Redis and written off the
request path: the last decisions (each with its whole trace), and per-minute totals (requests, declines,
cost, a latency histogram, choices per intent and per agent) that an overview sums over the last minutes.

A store failure loses these (they are for looking at, not for learning or billing); it never delays an
answer. The decisions list is capped (``size``), minute totals expire after ``MINUTES_KEPT``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from typing import Any

import redis.asyncio as aioredis
from pydantic import BaseModel, Field

from swarm_route.core.failopen import STORE_ERRORS, Breaker
from swarm_route.core.messages import Trace, top_intent
from swarm_route.core.pipeline import Walked
from swarm_route.keys import Keys

MINUTES_KEPT = 120
MAX_QUERY_CHARS = 500  # what the console shows of a query
QUEUE_MAX = 10_000  # walks waiting for the writer while the store is slow
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


class Decision(BaseModel):
    """One walk as the console lists it; ``trace`` is the evidence the client got."""

    request_id: str
    at: float = Field(description="epoch seconds")
    query: str
    key_id: str | None
    declined: bool
    agents: list[str]
    models: list[str]
    cost_usd: float
    latency_ms: float
    intent: str | None = Field(description="the intent with the largest weight")
    learning: str | None
    trace: Trace


class Overview(BaseModel):
    minutes: int
    requests: int
    declined: int
    cost_usd: float
    latency_p50_ms: float | None = Field(description="upper bound of the histogram bucket holding the median")
    per_intent: dict[str, int]
    per_agent: dict[str, int]
    per_minute: list[dict[str, float]] = Field(description="minute (epoch s), requests, declined, cost_usd")


def _bucket(ms: float) -> str:
    return next((str(b) for b in LATENCY_BUCKETS_MS if ms <= b), "inf")


class Activity:
    """Walks are written in batches: one pipeline takes every walk that finished while the previous one was
    in flight, so under load the writes cost a round trip per batch, not per query (and at one query at a
    time, each is written at once)."""

    def __init__(self, client: aioredis.Redis, keys: Keys, breaker: Breaker, size: int = 200) -> None:
        self._r, self._k, self._breaker, self.size = client, keys, breaker, size
        self._waiting: deque[tuple[Walked, str]] = deque(maxlen=QUEUE_MAX)  # full: the oldest are not counted
        self._writer: asyncio.Task[None] | None = None

    def record(self, walked: Walked, query: str) -> None:
        """Queue one walk for the writer (skipped while the store is failing)."""
        if self._breaker.is_open:
            return
        self._waiting.append((walked, query))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while self._waiting:
            batch = list(self._waiting)
            self._waiting.clear()
            try:
                await self._write(batch)
            except STORE_ERRORS as exc:
                self._breaker.trip("activity", exc)
                self._waiting.clear()
                return

    async def _write(self, batch: list[tuple[Walked, str]]) -> None:
        totals: dict[str, Counter[str]] = {}
        decisions = []
        for walked, query in batch:
            r = walked.response
            weights = walked.decision.intent_weights
            top = top_intent(weights)
            decision = Decision(
                request_id=r.request_id,
                at=time.time(),
                query=query[:MAX_QUERY_CHARS],
                key_id=walked.caller,
                declined=r.declined,
                agents=r.agents,
                models=r.models,
                cost_usd=r.cost_usd,
                latency_ms=r.latency_ms,
                intent=top,
                learning=r.learning,
                trace=r.trace,
            )
            decisions.append(decision.model_dump_json())
            minute = totals.setdefault(self._k.activity_minute(int(decision.at // 60)), Counter())
            minute.update({"requests": 1, "declined": int(r.declined), f"latency:{_bucket(r.latency_ms)}": 1})
            minute["cost_usd"] += r.cost_usd
            if top is not None and not r.declined:
                minute[f"intent:{top}"] += 1
            minute.update(f"agent:{agent}" for agent in r.agents)
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.lpush(self._k.decisions, *decisions)  # the newest ends up first
            pipe.ltrim(self._k.decisions, 0, self.size - 1)
            for key, counts in totals.items():
                for field, n in counts.items():
                    if field == "cost_usd":
                        pipe.hincrbyfloat(key, field, n)
                    elif n:
                        pipe.hincrby(key, field, int(n))
                pipe.expire(key, MINUTES_KEPT * 60)
            await pipe.execute()

    async def decisions(self, limit: int) -> list[Decision]:
        raw = await self._r.lrange(self._k.decisions, 0, limit - 1)
        return [Decision.model_validate_json(item) for item in raw]

    async def decision(self, request_id: str) -> Decision | None:
        return next((d for d in await self.decisions(self.size) if d.request_id == request_id), None)

    async def overview(self, minutes: int) -> Overview:
        now = int(time.time() // 60)
        window = list(range(now - minutes + 1, now + 1))
        async with self._r.pipeline(transaction=False) as pipe:
            for m in window:
                pipe.hgetall(self._k.activity_minute(m))
            rows: list[dict[str, Any]] = await pipe.execute()
        totals: Counter[str] = Counter()
        per_minute = []
        for m, row in zip(window, rows, strict=True):
            values = {k: float(v) for k, v in row.items()}
            totals.update(values)
            per_minute.append(
                {
                    "minute": m * 60,
                    "requests": values.get("requests", 0.0),
                    "declined": values.get("declined", 0.0),
                    "cost_usd": values.get("cost_usd", 0.0),
                }
            )
        return Overview(
            minutes=minutes,
            requests=int(totals["requests"]),
            declined=int(totals["declined"]),
            cost_usd=totals["cost_usd"],
            latency_p50_ms=_median(totals),
            per_intent=_prefixed(totals, "intent:"),
            per_agent=_prefixed(totals, "agent:"),
            per_minute=per_minute,
        )


def _prefixed(totals: Counter[str], prefix: str) -> dict[str, int]:
    found = {k.removeprefix(prefix): int(v) for k, v in totals.items() if k.startswith(prefix)}
    return dict(sorted(found.items(), key=lambda kv: -kv[1]))


def _median(totals: Counter[str]) -> float | None:
    counts = [(b, totals.get(f"latency:{b}", 0.0)) for b in LATENCY_BUCKETS_MS]
    total = sum(c for _, c in counts) + totals.get("latency:inf", 0.0)
    if not total:
        return None
    seen = 0.0
    for bound, count in counts:
        seen += count
        if seen >= total / 2:
            return float(bound)
    return float("inf")
