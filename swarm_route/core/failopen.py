"""Failing open when the store is slow or down: the request path keeps answering from what it last knew.

After a store error the breaker stays open for ``open_s``: queries in that window skip the store at once
instead of each waiting out a socket timeout, and one query afterwards tries again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from redis.exceptions import RedisError

log = logging.getLogger(__name__)
T = TypeVar("T")
STORE_ERRORS = (RedisError, OSError, TimeoutError)


class Breaker:
    def __init__(self, open_s: float = 1.0, on_error: Callable[[str], None] | None = None) -> None:
        self.open_s = open_s
        self.on_error = on_error
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
        log.warning("store unavailable for %s, failing open: %s", operation, self.last_error)
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


class Periodic(Generic[T]):
    """A store value that may lag by ``interval_s`` (a switch, smoothed latencies): read at most that
    often instead of once per query, which saves the request path a round trip; between reads, or when a
    read fails, the last value."""

    def __init__(
        self, operation: str, fetch: Callable[[], Awaitable[T]], initial: T, breaker: Breaker, interval_s: float = 1.0
    ) -> None:
        self.operation, self.fetch, self.breaker, self.interval_s = operation, fetch, breaker, interval_s
        self.value = initial
        self._next = 0.0

    async def get(self) -> T:
        if time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval_s
            self.value = await self.breaker.call(self.operation, self.fetch, lambda: self.value)
        return self.value

    def set(self, value: T) -> None:
        """What this replica itself just wrote: seen at once, re-read from the store after the interval."""
        self.value, self._next = value, time.monotonic() + self.interval_s
