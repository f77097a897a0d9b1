"""Who may call what: API keys with scopes, and a per-key rate limit kept in Redis.

Keys come from the settings (environment or a mounted Secret), are compared in constant time, and are
never logged: a key is known in logs and Redis only by a short hash. With no key configured the API is
open, which suits a laptop and is said loudly at start-up.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as aioredis

from swarm_route.config import ApiKey
from swarm_route.core.failopen import Breaker
from swarm_route.keys import Keys

log = logging.getLogger(__name__)


class Scope(StrEnum):
    client = "client"  # query, chat, feedback, read the registry
    admin = "admin"  # also register and remove agents, read trails and updater stats


class AccessDenied(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


@dataclass(frozen=True)
class Caller:
    """Who made a call: a key's id (its hash, never the key), or None with no keys configured."""

    key_id: str | None = None
    admin: bool = False


class AccessControl:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        api_keys: Iterable[ApiKey],
        rate_per_minute: int,
        breaker: Breaker | None = None,
    ) -> None:
        self._r = client
        self._k = keys
        self._known = [(k.key.get_secret_value().encode(), Caller(k.id, k.admin)) for k in api_keys]
        self.rate_per_minute = rate_per_minute
        self._breaker = breaker or Breaker()  # a store failure lets calls through unchecked, without waiting
        if not self.enabled:
            log.warning("no API keys configured: every endpoint is open to anyone who can reach it")

    @property
    def enabled(self) -> bool:
        return bool(self._known)

    def _match(self, key: bytes) -> Caller | None:
        found = None
        for known, caller in self._known:  # every key compared in constant time: no early exit
            if hmac.compare_digest(key, known):
                found = caller
        return found

    async def check(self, authorization: str | None, scope: Scope) -> Caller:
        if not self.enabled:
            return Caller()
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AccessDenied(401, "missing API key: send 'Authorization: Bearer <key>'")
        caller = self._match(token.strip().encode())
        if caller is None:
            raise AccessDenied(401, "unknown API key")
        if caller.admin:
            return caller  # every scope, not rate-limited
        if scope is Scope.admin:
            raise AccessDenied(403, "this endpoint needs an admin key")
        await self._limit(caller.key_id or "")
        return caller

    async def _limit(self, who: str) -> None:
        """Fixed one-minute windows shared by every ingress replica; a store failure lets the call through."""
        window = int(time.time() // 60)
        counter = self._k.rate(who, window)

        async def count() -> int:
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.incr(counter)
                pipe.expire(counter, 120)
                used, _ = await pipe.execute()
            return int(used)

        used = await self._breaker.call("rate_limit", count, lambda: 0)
        if used > self.rate_per_minute:
            retry = 60 - int(time.time() % 60)
            raise AccessDenied(429, f"rate limit of {self.rate_per_minute} requests a minute reached", retry)
