"""Events the store could not take yet: kept in order in memory, bounded, written once it is back.

A finished request and the feedback on it travel through here in order, so the record feedback needs is
always written before the feedback. When the outbox is full, new finished requests are dropped (they are
learning samples nobody was promised; ``dropped`` counts them) and new feedback is refused, so that the
client hears a 503 and retries instead of being told "accepted" for something that would be lost. What is
buffered lives in this process: an ingress replica killed while the store is down loses its outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from swarm_route.core.failopen import STORE_ERRORS, Breaker, catch_up
from swarm_route.core.learn.stream import EventStream
from swarm_route.core.messages import Event, Feedback

log = logging.getLogger(__name__)


FLUSH_CHUNK = 500  # queued events written per MULTI once the store is back


class Outbox:
    """Events are written in batches: one MULTI takes every event put while the previous write was in flight,
    so under load the learning records cost a round trip per batch, not per query (py-spy on the ingress at
    32 clients: ~2.6% of its time went to one MULTI per finished request); one query at a time, each is
    written at once."""

    def __init__(
        self,
        stream: EventStream,
        *,
        capacity: int,
        record_ttl_s: int,
        breaker: Breaker | None = None,
        on_drop: Callable[[str], None] | None = None,
    ) -> None:
        self.stream = stream
        self.capacity = capacity
        self.record_ttl_s = record_ttl_s
        self.breaker = breaker or Breaker()
        self.on_drop = on_drop
        self._queue: deque[Event] = deque()
        self._batch: list[tuple[Event, asyncio.Future[bool]]] = []  # waiting for the writer, in order
        self._writer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        """Whether an event put now would be dropped (the store is failing and the queue is at capacity)."""
        return len(self._queue) >= self.capacity

    async def put(self, event: Event) -> bool:
        """Write now (with whatever else is put meanwhile) if the store takes it and nothing waits ahead of
        it; else queue it. False: refused (feedback when full); a finished request dropped when full
        returns False too. Returns once the event is written or queued."""
        writing = self._writer is not None and not self._writer.done()
        if not writing and (self._queue or self.breaker.is_open):
            return self._enqueue(event)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._batch.append((event, done))
        if not writing:
            self._writer = asyncio.ensure_future(self._write())
        return await done

    def _enqueue(self, event: Event) -> bool:
        if len(self._queue) >= self.capacity:
            kind = "feedback" if isinstance(event, Feedback) else "finished"
            self.dropped += kind == "finished"
            if self.on_drop:
                self.on_drop(kind)
            return False
        self._queue.append(event)
        return True

    async def _write(self) -> None:
        """Write the waiting events a batch at a time, in order; a batch the store refuses is queued (as is
        every later one while events wait in the queue)."""
        batch: list[tuple[Event, asyncio.Future[bool]]] = []
        try:
            while self._batch:
                batch, self._batch = self._batch, []
                if not self._queue and not self.breaker.is_open:
                    try:
                        await self.stream.publish_many([event for event, _ in batch], self.record_ttl_s)
                        for _, done in batch:
                            done.set_result(True)
                        continue
                    except STORE_ERRORS as exc:
                        self.breaker.trip("publish", exc)
                for event, done in batch:
                    done.set_result(self._enqueue(event))
        finally:  # cancelled with the replica, or an unexpected error: nobody waits forever
            for _, done in batch + self._batch:
                if not done.done():
                    done.cancel()

    async def flush(self) -> int:
        """Write queued events in order, ``FLUSH_CHUNK`` per MULTI, until the store fails again; returns how
        many were written."""
        written = 0
        async with self._lock:
            while self._queue:
                chunk = [self._queue[i] for i in range(min(FLUSH_CHUNK, len(self._queue)))]
                try:
                    await self.stream.publish_many(chunk, self.record_ttl_s)
                except STORE_ERRORS as exc:
                    log.info("outbox: %d events wait for the store (%s)", len(self._queue), type(exc).__name__)
                    break
                for _ in chunk:
                    self._queue.popleft()
                written += len(chunk)
        return written

    async def run(self, stop: asyncio.Event, every_s: float = 0.5) -> None:
        await catch_up(stop, self.__len__, self.flush, every_s)
