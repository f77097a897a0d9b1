"""Which replica of an agent takes a call: power of two choices on in-flight calls, skipping replicas that
failed repeatedly (cooled down for a while, shared across dispatch replicas through Redis).

Two random healthy replicas are compared and the less busy one wins (Mitzenmacher's power of two choices):
nearly as good as asking every replica, without herding every caller onto the same "least loaded" one.
A cooldown is written to a sorted set (endpoint → end time), read back at most every ``sync_s``; with the
store down each dispatch replica keeps its own cooldowns (fail open). When every replica of an agent is
cooling down, the one whose cooldown ends first is tried anyway: an attempt beats a certain failure.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Sequence

import redis.asyncio as aioredis

from swarm_route.core.failopen import Breaker, Watched
from swarm_route.keys import Keys


async def cooldowns(client: aioredis.Redis, keys: Keys) -> list[tuple[str, float]]:
    """The replicas cooling down now, as every dispatch replica shares them: (endpoint, until, epoch s)."""
    return await client.zrangebyscore(keys.cooldown, time.time(), "+inf", withscores=True)


class Replicas:
    def __init__(
        self,
        client: aioredis.Redis | None,
        keys: Keys,
        *,
        failures_to_cool: int = 2,
        cooldown_s: float = 10.0,
        sync_s: float = 1.0,
        breaker: Breaker | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._r = client
        self._k = keys
        self.failures_to_cool, self.cooldown_s = failures_to_cool, cooldown_s
        self.breaker = breaker or Breaker()
        self._shared = Watched("cooldown", self._read_cooldowns, [], self.breaker, sync_s)
        self._rng = rng or random.Random()
        self.in_flight: defaultdict[str, int] = defaultdict(int)
        self._failures: defaultdict[str, int] = defaultdict(int)
        self._cool_until: dict[str, float] = {}  # endpoint → epoch seconds

    async def sync(self) -> None:
        """Cooldowns other dispatch replicas set, read at most every ``sync_s``."""
        if self._r is None:
            return
        for endpoint, until in await self._shared.get():
            self._cool_until[endpoint] = max(self._cool_until.get(endpoint, 0.0), float(until))

    async def _read_cooldowns(self, _: list[tuple[str, float]]) -> list[tuple[str, float]]:
        assert self._r is not None
        return await cooldowns(self._r, self._k)

    def cooling(self, endpoint: str) -> bool:
        return self._cool_until.get(endpoint, 0.0) > time.time()

    def choose(self, endpoints: Sequence[str], exclude: set[str] | frozenset[str] = frozenset()) -> str:
        if len(endpoints) == 1:
            return endpoints[0]
        fresh = [e for e in endpoints if e not in exclude] or list(endpoints)
        healthy = [e for e in fresh if not self.cooling(e)]
        if not healthy:
            return min(fresh, key=lambda e: self._cool_until.get(e, 0.0))
        if len(healthy) == 1:
            return healthy[0]
        a, b = self._rng.sample(healthy, 2)
        return a if self.in_flight[a] <= self.in_flight[b] else b

    async def failed(self, endpoint: str) -> bool:
        """Count a failure; the ``failures_to_cool``-th in a row cools the replica down. True if it did."""
        self._failures[endpoint] += 1
        if self._failures[endpoint] < self.failures_to_cool:
            return False
        self._failures[endpoint] = 0
        until = time.time() + self.cooldown_s
        self._cool_until[endpoint] = until
        if self._r is not None:
            client = self._r

            async def share() -> None:
                async with client.pipeline(transaction=False) as pipe:
                    pipe.zadd(self._k.cooldown, {endpoint: until})
                    pipe.zremrangebyscore(self._k.cooldown, "-inf", time.time())
                    await pipe.execute()

            await self.breaker.call("cooldown", share, lambda: None)
        return True

    def succeeded(self, endpoint: str) -> None:
        self._failures[endpoint] = 0
