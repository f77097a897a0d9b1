"""Failing open when the store is slow or down: the request path keeps answering from what it last knew.

After a store error the breaker stays open for ``open_s``: queries in that window skip the store at once
instead of each waiting out a socket timeout, and one query afterwards tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")
STORE_ERRORS = (RedisError, OSError, TimeoutError)


class Breaker:
    def __init__(
        self, open_s: float = 1.0, on_error: Callable[[str], None] | None = None, what: str = "store"
    ) -> None:
        """``what`` fails: the store, or another dependency kept behind a breaker (a judge model)."""
        self.open_s = open_s
        self.on_error = on_error
        self.what = what
        self._open_until = 0.0
        self.last_error: str | None = None

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self._open_until

    async def call(self, operation: str, fetch: Callable[[], Awaitable[T]], fallback: Callable[[], T]) -> T:
        """``fetch()``, or ``fallback()`` when the store fails or failed a moment ago."""
        if self.is_open:
            return fallback()
        try:
            return await fetch()
        except STORE_ERRORS as exc:
            self.trip(operation, exc)
            return fallback()

    def trip(self, operation: str, exc: BaseException) -> None:
        self._open_until = time.monotonic() + self.open_s
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("%s unavailable for %s, failing open: %s", self.what, operation, self.last_error)
        if self.on_error:
            self.on_error(operation)


class Stale:
    """Last known values by key, with their age: fail-open reads serve them up to ``max_age_s`` old."""

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._values: dict[str, tuple[float, object]] = {}

    def put(self, key: str, value: object) -> None:
        self._values[key] = (time.monotonic(), value)

    def get(self, key: str) -> tuple[object, float] | None:
        """(value, age in seconds), or None when unknown or too old to trust."""
        found = self._values.get(key)
        if found is None:
            return None
        age = time.monotonic() - found[0]
        return (found[1], age) if age <= self.max_age_s else None


UNREAD: Any = object()  # a Watched value never read yet: its first read's error is the caller's


class Watched(Generic[T]):
    """This replica's view of one piece of shared state (the registry, a switch, latencies, cooldowns, the
    graded-outcome log): the one way the request path keeps such a view.

    Read from the store at most every ``interval_s``. With an interval, a query never waits for the read:
    the first ``get`` past the interval starts one in the background and is answered from the value as it
    is (stale by at most the interval plus one read), so no query pays the round trip. With ``interval_s``
    0 every ``get`` reads first, and so does the first ``get`` after ``invalidate`` (this replica wrote the
    state and must read its own write). One read at a time; a failed read keeps the last value (failing
    open through the breaker) unless nothing was ever read (``initial`` is ``UNREAD``), when the store's
    error is raised. ``fetch`` gets the previous value, so a versioned snapshot can reload only when its
    version moved.
    """

    def __init__(
        self,
        operation: str,
        fetch: Callable[[T], Awaitable[T]],
        initial: T,
        breaker: Breaker,
        interval_s: float = 1.0,
    ) -> None:
        self.operation, self.fetch, self.breaker, self.interval_s = operation, fetch, breaker, interval_s
        self.value = initial
        self._next = 0.0
        self._reading = asyncio.Lock()
        self._must_read = False
        self._background: asyncio.Task[None] | None = None  # the read in the background, kept referenced

    async def get(self, force: bool = False) -> T:
        """The value; re-read first when never read, ``force``d (waiting for a read in flight) or invalidated,
        else re-read in the background once the interval has passed."""
        if self.value is UNREAD or force or self._must_read:
            return await self._read()
        if self._reading.locked():
            return self.value
        if not self.interval_s:
            return await self._read()
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval_s
            self._background = asyncio.create_task(self._read_logged())
        return self.value

    async def _read_logged(self) -> None:
        try:
            await self._read()
        except Exception:  # the store's errors are the breaker's; anything else must not vanish with the task
            log.exception("background read of %s failed", self.operation)

    async def _read(self) -> T:
        async with self._reading:
            self._must_read = False
            self._next = time.monotonic() + self.interval_s
            previous = self.value
            if previous is UNREAD:
                self.value = await self.fetch(previous)
            else:
                self.value = await self.breaker.call(self.operation, lambda: self.fetch(previous), lambda: previous)
        return self.value

    def set(self, value: T) -> None:
        """What this replica itself just wrote: seen at once, re-read from the store after the interval."""
        self.value, self._next = value, time.monotonic() + self.interval_s

    def invalidate(self) -> None:
        """This replica changed the state in the store: the next ``get`` reads it before answering."""
        self._must_read = True


async def catch_up(
    stop: asyncio.Event, waiting: Callable[[], int], flush: Callable[[], Awaitable[int]], every_s: float
) -> None:
    """Write what waits for the store (the outbox's events, the ledger's charges) every ``every_s`` until
    ``stop``; ``flush`` itself stops at the first failure and leaves the rest for the next round."""
    while not stop.is_set():
        if waiting():
            await flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
