"""What each API key spends, and budgets that hold however many ingress replicas answer at once.

A budget caps a key's spend per UTC day, per UTC month and per request. The walk asks three things of the
ledger: before routing, how much the key has left (``headroom``: the router's ``budget_usd`` is capped by
it); before dispatch, to **hold** the chosen paths' expected cost (atomically in Redis: refused when what the
key has spent plus what its requests in flight hold would pass a limit); after dispatch, to **settle** the
hold at the real cost. So concurrent requests through any number of replicas see each other's holds, and a
budget is passed only by what requests already in flight cost beyond their expected cost: total spend ≤ limit
+ Σ over the requests in flight when it ran out of (real − expected cost).

A hold lasts ``hold_ttl_s`` at most (a replica killed mid-request cannot keep a key's money held).
With the store down, ``fail: open`` (the default) answers without holds and keeps the charges in memory,
bounded, until the store is back; ``fail: closed`` refuses with ``SpendUnavailable``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field

from swarm_route.core.failopen import STORE_ERRORS, Breaker, catch_up
from swarm_route.keys import Keys

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"  # the key id charged when the API is open (no keys configured)
WINDOWS: tuple[Literal["daily", "monthly"], ...] = ("daily", "monthly")
_TTL_S = {"daily": 3 * 86400, "monthly": 40 * 86400}  # a window's counter outlives its window, then goes

# KEYS: the key's holds, then one counter per window. ARGV: request id, amount, now, deadline, hold ttl, then
# one limit per window (negative: none). Returns 0 when held, else the 1-based window that would be passed.
_HOLD = """
local held = 0
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  local amount, deadline = string.match(entries[i + 1], '(%S+) (%S+)')
  if tonumber(deadline) < tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], entries[i])
  else
    held = held + tonumber(amount)
  end
end
local want = tonumber(ARGV[2])
for w = 2, #KEYS do
  local limit = tonumber(ARGV[w + 4])
  if limit >= 0 then
    local spent = tonumber(redis.call('GET', KEYS[w]) or '0')
    if spent + held >= limit or spent + held + want > limit then
      return w - 1
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 0
"""


class Budget(BaseModel):
    """A key's limits in USD; None: no limit of that kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    daily_usd: float | None = Field(None, ge=0, description="spend per UTC day")
    monthly_usd: float | None = Field(None, ge=0, description="spend per UTC month")
    per_request_usd: float | None = Field(None, ge=0, description="what one request may cost")

    def limit(self, window: str) -> float | None:
        return self.daily_usd if window == "daily" else self.monthly_usd

    @property
    def limited(self) -> bool:
        return any(v is not None for v in (self.daily_usd, self.monthly_usd, self.per_request_usd))


class OverBudget(Exception):
    """A request the key's budget does not allow: ``budget`` names which, ``resets_at`` when it frees up
    (None for the per-request cap, which no waiting changes)."""

    def __init__(self, key_id: str, budget: str, limit_usd: float, resets_at: datetime | None, why: str) -> None:
        when = f"; it resets at {resets_at:%Y-%m-%dT%H:%M:%SZ}" if resets_at else ""
        super().__init__(f"the {budget} budget of ${limit_usd:g} of key {key_id!r} {why}{when}")
        self.key_id, self.budget, self.limit_usd, self.resets_at = key_id, budget, limit_usd, resets_at


class SpendUnavailable(Exception):
    """The store is down and spend fails closed: the request is refused rather than answered unaccounted."""


@dataclass(frozen=True)
class Headroom:
    """What a key may spend on the next request, and the budget that sets it."""

    usd: float
    budget: str


@dataclass(frozen=True)
class Hold:
    key_id: str
    request_id: str
    amount_usd: float
    stored: bool  # False: taken while the store was down (fail open), nothing to release


@dataclass
class Bill:
    """What a paid block cost, as it sets it (``Ledger.paying``)."""

    cost_usd: float = 0.0


def key_id(key: str) -> str:
    """The id a key without a name is known by: a short hash, so neither logs nor Redis hold the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def window_of(window: str, now: datetime) -> str:
    return now.strftime("%Y-%m-%d" if window == "daily" else "%Y-%m")


def resets_at(window: str, now: datetime) -> datetime:
    """The start of the next UTC day or month."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "daily":
        return day + timedelta(days=1)
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


class SpendReport(BaseModel):
    """One key's spend: what the current windows hold, what is held in flight, and what is left."""

    key_id: str
    budget: Budget
    spent_usd: dict[str, float]
    held_usd: float
    remaining_usd: dict[str, float]
    resets_at: dict[str, datetime]


class Ledger:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        budgets: dict[str, Budget],
        *,
        breaker: Breaker | None = None,
        fail: Literal["open", "closed"] = "open",
        hold_ttl_s: float = 300.0,
        buffer: int = 10_000,
    ) -> None:
        self._r, self._k, self.budgets = client, keys, budgets
        self._breaker = breaker or Breaker()
        self.fail = fail
        self.hold_ttl_s = hold_ttl_s
        self._hold = client.register_script(_HOLD)
        # charges the store could not take yet: (key id, cost, day, month, hold to release), applied in order
        self._unrecorded: deque[tuple[str, float, str, str, str | None]] = deque(maxlen=buffer)
        self._flushing = asyncio.Lock()
        self._settling: set[asyncio.Task[int]] = set()  # charges being written, kept referenced

    def _store_down(self, exc: BaseException | None) -> None:
        """Fail open (return: answer without holds) or closed (raise) when the store fails or just failed."""
        if exc is not None:
            self._breaker.trip("spend", exc)
        if self.fail == "closed":
            raise SpendUnavailable(f"the store is unreachable and spend fails closed ({self._breaker.last_error})")

    def _store_up(self) -> bool:
        """False while the breaker is open (after failing open, or raising when spend fails closed)."""
        if self._breaker.is_open:
            self._store_down(None)
            return False
        return True

    def budget(self, key_id: str | None) -> Budget:
        return self.budgets.get(key_id or ANONYMOUS, Budget())

    def _counters(self, key_id: str, now: datetime) -> list[str]:
        return [self._k.spend(key_id, w, window_of(w, now)) for w in WINDOWS]

    async def headroom(self, key_id: str | None) -> Headroom | None:
        """What the key may spend on one more request (None: no limit). Raises ``OverBudget`` when a window
        is spent; reads are best effort (a store failure leaves only the per-request cap)."""
        key_id = key_id or ANONYMOUS
        budget = self.budget(key_id)
        if not budget.limited:
            return None
        room = [] if budget.per_request_usd is None else [Headroom(budget.per_request_usd, "per-request")]
        report = None
        if budget.daily_usd is not None or budget.monthly_usd is not None:
            try:
                report = await self.report(key_id) if self._store_up() else None
            except STORE_ERRORS as exc:
                self._store_down(exc)
        for window, left in report.remaining_usd.items() if report else ():  # only the windows with a limit
            if left <= 0:
                raise OverBudget(key_id, window, budget.limit(window) or 0.0, report.resets_at[window], "is spent")
            room.append(Headroom(left, window))
        return min(room, key=lambda h: h.usd) if room else None

    def refuse(self, key_id: str | None, room: Headroom, cheapest_usd: float) -> OverBudget:
        """The error for a query whose cheapest path costs more than the key has left."""
        key_id = key_id or ANONYMOUS
        budget = self.budget(key_id)
        limit = budget.per_request_usd if room.budget == "per-request" else budget.limit(room.budget)
        reset = None if room.budget == "per-request" else resets_at(room.budget, datetime.now(UTC))
        why = f"leaves ${room.usd:.6f}; the cheapest path that serves this query costs ${cheapest_usd:.6f}"
        return OverBudget(key_id, room.budget, limit or 0.0, reset, why)

    async def hold(self, key_id: str | None, request_id: str, amount_usd: float) -> Hold:
        """Hold the expected cost of a request about to be dispatched, or raise ``OverBudget``."""
        key_id = key_id or ANONYMOUS
        budget = self.budget(key_id)
        if budget.daily_usd is None and budget.monthly_usd is None:
            return Hold(key_id, request_id, amount_usd, stored=False)  # nothing to hold against: charged later
        now = datetime.now(UTC)
        limits = [-1.0 if (limit := budget.limit(w)) is None else limit for w in WINDOWS]
        if not self._store_up():
            return Hold(key_id, request_id, amount_usd, stored=False)
        try:
            passed = await self._hold(
                keys=[self._k.spend_holds(key_id), *self._counters(key_id, now)],
                args=[request_id, repr(amount_usd), time.time(), time.time() + self.hold_ttl_s,
                      int(self.hold_ttl_s) + 60, *limits],
            )
        except STORE_ERRORS as exc:
            self._store_down(exc)
            return Hold(key_id, request_id, amount_usd, stored=False)
        if passed:
            window = WINDOWS[int(passed) - 1]
            raise OverBudget(
                key_id, window, limits[int(passed) - 1], resets_at(window, now), "would be passed by this request"
            )
        return Hold(key_id, request_id, amount_usd, stored=True)

    async def settle(self, hold: Hold, cost_usd: float) -> None:
        """Release the hold and charge the real cost, after the charges waiting ahead of it; kept for later
        when the store is down."""
        self._owe(hold, cost_usd)
        await self.flush()

    def _owe(self, hold: Hold, cost_usd: float) -> None:
        """Queue the charge that settles ``hold``: charges are written in the order they were owed."""
        now = datetime.now(UTC)
        release = hold.request_id if hold.stored else None
        if len(self._unrecorded) == self._unrecorded.maxlen:
            log.error("spend buffer full: the oldest unrecorded charge is lost")
        self._unrecorded.append(
            (hold.key_id, max(0.0, cost_usd), window_of("daily", now), window_of("monthly", now), release)
        )

    @asynccontextmanager
    async def paying(self, key_id: str | None, request_id: str, expected_usd: float) -> AsyncIterator[Bill]:
        """Hold ``expected_usd`` on the key for the block, then settle at the ``Bill``'s cost as the block set
        it (0 when it raised: what was held is released). Raises ``OverBudget`` before the block runs. The
        charge is written in the background: the answer does not wait for it (the hold covers the request
        until it lands, and this replica's ``report`` writes it first)."""
        hold = await self.hold(key_id, request_id, expected_usd)
        bill = Bill()
        try:
            yield bill
        finally:
            self._settle_later(hold, bill.cost_usd)

    def charge(self, key_id: str | None, request_id: str, cost_usd: float) -> None:
        """Charge a cost nothing was held for (the routing LLM's answer to a query that went no further), in
        the background like a settled bill."""
        self._settle_later(Hold(key_id or ANONYMOUS, request_id, 0.0, stored=False), cost_usd)

    def _settle_later(self, hold: Hold, cost_usd: float) -> None:
        self._owe(hold, cost_usd)
        task = asyncio.create_task(self.flush())
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _charge(self, key_id: str, cost: float, day: str, month: str, release: str | None) -> None:
        async with self._r.pipeline(transaction=True) as pipe:
            if release is not None:
                pipe.hdel(self._k.spend_holds(key_id), release)
            for window, name in zip(WINDOWS, (day, month), strict=True):
                counter = self._k.spend(key_id, window, name)
                pipe.incrbyfloat(counter, cost)
                pipe.expire(counter, _TTL_S[window])
            pipe.sadd(self._k.spend_keys, key_id)
            await pipe.execute()

    async def flush(self) -> int:
        """Apply buffered charges in order until the store fails; returns how many were applied. One flush
        at a time: two would apply the same charge twice."""
        applied = 0
        async with self._flushing:
            while self._unrecorded and not self._breaker.is_open:
                try:
                    await self._charge(*self._unrecorded[0])
                except STORE_ERRORS as exc:
                    self._breaker.trip("spend", exc)
                    break
                self._unrecorded.popleft()
                applied += 1
        return applied

    @property
    def unrecorded(self) -> int:
        return len(self._unrecorded)

    async def run(self, stop: asyncio.Event, every_s: float = 1.0) -> None:
        await catch_up(stop, lambda: self.unrecorded, self.flush, every_s)

    async def report(self, key_id: str) -> SpendReport:
        """The key's spend as the store holds it, after this replica's own settled charges are written."""
        await self.flush()
        now = datetime.now(UTC)
        budget = self.budget(key_id)
        async with self._r.pipeline(transaction=False) as pipe:
            for counter in self._counters(key_id, now):
                pipe.get(counter)
            pipe.hvals(self._k.spend_holds(key_id))
            *spent_raw, holds = await pipe.execute()
        spent = {w: float(v or 0.0) for w, v in zip(WINDOWS, spent_raw, strict=True)}
        held = 0.0
        for entry in holds:
            amount, deadline = (entry.decode() if isinstance(entry, bytes) else entry).split()
            held += float(amount) if float(deadline) >= time.time() else 0.0
        remaining = {
            w: max(0.0, limit - spent[w] - held) for w in WINDOWS if (limit := budget.limit(w)) is not None
        }
        return SpendReport(
            key_id=key_id,
            budget=budget,
            spent_usd=spent,
            held_usd=held,
            remaining_usd=remaining,
            resets_at={w: resets_at(w, now) for w in WINDOWS},
        )

    async def known(self) -> list[str]:
        """Every key id with a budget or a charge."""
        charged = await self._r.smembers(self._k.spend_keys)
        ids = {c.decode() if isinstance(c, bytes) else c for c in charged} | set(self.budgets)
        return sorted(ids)

    async def reset(self, key_id: str) -> None:
        """Forget the current windows' spend (an operator's decision; holds in flight stay)."""
        await self._r.delete(*self._counters(key_id, datetime.now(UTC)))
