"""Graded outcomes (query, node, score, cost) shared through Redis, and the ability model fed from them.

The updater and warm-up append; every router replica tails the list into its own ``AbilityModel``, so
what one replica's traffic taught is used by all. The list is capped; the oldest outcomes go first.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis
from pydantic import BaseModel, Field
from redis.asyncio.client import Pipeline

from swarm_route.core.failopen import Breaker, Watched
from swarm_route.core.messages import SHORT_ANSWER_CHARS
from swarm_route.core.route.ability import AbilityModel, Graded
from swarm_route.core.route.agreement import AgreementMemory
from swarm_route.keys import Keys

MAX_OUTCOMES = 200_000


class Outcome(BaseModel):
    text: str
    node: str
    score: float
    cost_usd: float | None = None
    intent: str | None = None  # the query's top intent (None: written before intents were kept)
    answer: str | None = Field(None, max_length=SHORT_ANSWER_CHARS)  # its short answer, "" when too long to compare


class OutcomeLog:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._k = keys

    async def append(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        async with self._r.pipeline(transaction=True) as pipe:
            self.queue(pipe, outcomes)
            await pipe.execute()

    def queue(self, pipe: Pipeline, outcomes: list[Outcome]) -> None:
        """``append``'s commands, queued on a transaction the caller sends (the list and its total move
        together: a reader tailing by the total never misses or repeats an outcome)."""
        if outcomes:
            pipe.rpush(self._k.outcomes, *(o.model_dump_json() for o in outcomes))
            pipe.ltrim(self._k.outcomes, -MAX_OUTCOMES, -1)
            pipe.incrby(self._k.outcomes_total, len(outcomes))

    async def total(self) -> int:
        """Outcomes ever appended (the list itself is capped)."""
        return int(await self._r.get(self._k.outcomes_total) or 0)

    async def latest(self, n: int) -> list[Outcome]:
        if n <= 0:
            return []
        raw = await self._r.lrange(self._k.outcomes, -min(n, MAX_OUTCOMES), -1)
        return [Outcome.model_validate_json(r) for r in raw]


class AbilityMemory:
    """A router replica's ability model and agreement record, tailing the outcome log at most every
    ``interval_s`` (``failopen.Watched``: one tail at a time, and a query arriving meanwhile routes on the
    model as it is; two at once could run two refits in threads whose index and pending rows then
    interleave)."""

    def __init__(
        self,
        log: OutcomeLog,
        model: AbilityModel | None = None,
        interval_s: float = 1.0,
        breaker: Breaker | None = None,
    ) -> None:
        self.log = log
        self.model = model or AbilityModel()
        self.agreement = AgreementMemory()
        self._seen = 0
        self._fitted_size = 0
        self._view = Watched("outcomes", self._tail, self.model, breaker or Breaker(), interval_s)

    async def refresh(self, force: bool = False) -> None:
        """Tail the log if due (``force``: now); a store that fails leaves the model as it is."""
        await self._view.get(force)

    async def _tail(self, _: AbilityModel) -> AbilityModel:
        await self._update()
        return self.model

    async def _update(self) -> None:
        total = await self.log.total()
        if total < self._seen:  # the store was reset: start over
            self._seen, self._fitted_size = 0, 0
            self.model = self.model.blank()
            self.agreement = AgreementMemory(self.agreement.max_queries)
        fresh = await self.log.latest(total - self._seen)
        self._seen = total
        if not fresh:
            return
        graded = [Graded(o.text, o.node, o.score, o.cost_usd, o.intent, o.answer) for o in fresh]
        self.model.add(graded)
        self.agreement.add(graded)
        if self.model.size > 2 * self._fitted_size:  # refit off the event loop; new words become neighbours
            await asyncio.to_thread(self.model.refit)
            self._fitted_size = self.model.size
