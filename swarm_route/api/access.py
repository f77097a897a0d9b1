"""Who may call what: API keys with scopes, and a per-key rate limit kept in Redis.

Keys come from the settings (environment or a mounted Secret), are compared in constant time, and are
never logged: a key is known in logs and Redis only by a short hash. With no key configured the API is
open, which suits a laptop and is said loudly at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as aioredis

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


def key_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


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
        admin_keys: list[str],
        client_keys: list[str],
        rate_per_minute: int,
        breaker: Breaker | None = None,
    ) -> None:
        self._r = client
        self._k = keys
        self._admin = [k.encode() for k in admin_keys]
        self._client = [k.encode() for k in client_keys]
        self.rate_per_minute = rate_per_minute
        self._breaker = breaker or Breaker()  # a store failure lets calls through unchecked, without waiting
        if not self.enabled:
            log.warning("no API keys configured: every endpoint is open to anyone who can reach it")

    @property
    def enabled(self) -> bool:
        return bool(self._admin or self._client)

    @staticmethod
    def _matches(key: bytes, known: list[bytes]) -> bool:
        return any(hmac.compare_digest(key, k) for k in known)  # every key compared: no early exit

    async def check(self, authorization: str | None, scope: Scope) -> Caller:
        if not self.enabled:
            return Caller()
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AccessDenied(401, "missing API key: send 'Authorization: Bearer <key>'")
        key = token.strip().encode()
        if self._matches(key, self._admin):
            return Caller(key_id(token.strip()), admin=True)  # every scope, not rate-limited
        if not self._matches(key, self._client):
            raise AccessDenied(401, "unknown API key")
        if scope is Scope.admin:
            raise AccessDenied(403, "this endpoint needs an admin key")
        who = key_id(token.strip())
        await self._limit(who)
        return Caller(who)

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
