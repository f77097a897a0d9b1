"""The finished-request stream: the ingress appends, the updater group consumes, nothing waits on it."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from pydantic import TypeAdapter
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from swarm_route.core.messages import Event, FinishedRequest
from swarm_route.keys import UPDATER_GROUP, Keys

_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
MAX_LEN = 100_000  # approximate cap; graded entries are acknowledged long before they age out
CLAIM_IDLE_MS = 30_000  # an entry read and not acknowledged this long is read again (its batch failed to write)


class EventStream:
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._r = client
        self._k = keys

    async def publish_many(self, events: Sequence[Event], record_ttl_s: int | None = None) -> None:
        """Append events in order, in one MULTI (all or none); each finished request's record is kept beside
        it for late feedback."""
        async with self._r.pipeline(transaction=True) as pipe:
            for event in events:
                payload = event.model_dump_json()
                if isinstance(event, FinishedRequest) and record_ttl_s:
                    pipe.set(self._k.request(event.request_id), payload, ex=record_ttl_s)
                pipe.xadd(self._k.finished, {"data": payload}, maxlen=MAX_LEN, approximate=True)
            await pipe.execute()

    async def keep(self, event: FinishedRequest, record_ttl_s: int) -> bool:
        """Keep a finished request's record for late feedback without publishing it for learning (while
        learning is paused: its traffic teaches nothing, a client's explicit grade still may)."""
        await self._r.set(self._k.request(event.request_id), event.model_dump_json(), ex=record_ttl_s)
        return True

    async def record(self, request_id: str) -> FinishedRequest | None:
        raw = await self._r.get(self._k.request(request_id))
        return FinishedRequest.model_validate_json(raw) if raw else None

    async def ensure_group(self) -> None:
        try:
            await self._r.xgroup_create(self._k.finished, UPDATER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, Event | None]]:
        """New entries for this consumer, plus entries another consumer took and never acknowledged."""
        reply = await self._r.xautoclaim(
            self._k.finished, UPDATER_GROUP, consumer, min_idle_time=CLAIM_IDLE_MS, start_id="0-0", count=count
        )
        entries = [e for e in reply[1] if e[1] is not None]  # Redis 7 adds a third element: deleted ids
        if len(entries) < count:
            got = await self._r.xreadgroup(
                UPDATER_GROUP, consumer, {self._k.finished: ">"}, count=count - len(entries), block=block_ms
            )
            for _, batch in got or []:
                entries.extend(batch)
        return [(entry_id, self._parse(fields)) for entry_id, fields in entries]

    @staticmethod
    def _parse(fields: dict[str, str] | None) -> Event | None:
        try:
            return _EVENT.validate_json(fields["data"]) if fields else None
        except (KeyError, ValueError):
            return None

    def queue_ack(self, pipe: Pipeline, *entry_ids: str) -> None:
        """Acknowledge entries on a transaction the caller sends, with the writes they caused."""
        if entry_ids:
            pipe.xack(self._k.finished, UPDATER_GROUP, *entry_ids)

    async def backlog(self) -> int:
        """Entries not yet acknowledged by the updater group."""
        try:
            info = await self._r.xpending(self._k.finished, UPDATER_GROUP)
        except ResponseError:
            return 0
        groups = await self._r.xinfo_groups(self._k.finished)
        lag = next((g.get("lag") or 0 for g in groups if g["name"] == UPDATER_GROUP), 0)
        return int(info["pending"]) + int(lag)
