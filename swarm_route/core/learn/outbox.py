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


class Outbox:
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
        self._lock = asyncio.Lock()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def full(self) -> bool:
        """Whether an event put now would be dropped (the store is failing and the queue is at capacity)."""
        return len(self._queue) >= self.capacity

    async def put(self, event: Event) -> bool:
        """Write now if the store takes it and nothing waits ahead of it; else queue it. False: refused
        (feedback when full); a finished request dropped when full returns False too."""
        if not self._queue and not self.breaker.is_open:
            try:
                await self.stream.publish(event, self.record_ttl_s)
                return True
            except STORE_ERRORS as exc:
                self.breaker.trip("publish", exc)
        if len(self._queue) >= self.capacity:
            kind = "feedback" if isinstance(event, Feedback) else "finished"
            self.dropped += kind == "finished"
            if self.on_drop:
                self.on_drop(kind)
            return False
        self._queue.append(event)
        return True

    async def flush(self) -> int:
        """Write queued events in order until the store fails again; returns how many were written."""
        written = 0
        async with self._lock:
            while self._queue:
                try:
                    await self.stream.publish(self._queue[0], self.record_ttl_s)
                except STORE_ERRORS as exc:
                    log.info("outbox: %d events wait for the store (%s)", len(self._queue), type(exc).__name__)
                    break
                self._queue.popleft()
                written += 1
        return written

    async def run(self, stop: asyncio.Event, every_s: float = 0.5) -> None:
        await catch_up(stop, self.__len__, self.flush, every_s)
