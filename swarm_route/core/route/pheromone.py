"""Pheromone specialists: one trail set per intent, kept in Redis, fused per query by intent weights.

Only the updater (and warm-up) writes. Each graded event evaporates every stored edge of the specialist,
τ ← (1−ρ)·τ, and deposits on the passing path's edges, τ += Δ (one Lua call per specialist for a batch of
events, applied in order): the AMRO-S update, atomic, bounded to [τ_min, τ_max] (MAX-MIN ant system) so no
path starves and none monopolises. A failing path's event carries Δ < 0 (the updater's ``penalty``): the
Best-Worst Ant System's punishment of the worst ant, so a path that breaks loses its lead. Where every path
is graded on every query (the warm-up's history) an edge settles near (pass rate − fail rate × penalty) × Δ/ρ,
so trails rank paths by how often they pass, per unit cost; on served traffic, which grades only the path
taken, near its share of the traffic times that. A scheduled evaporation also decays trails with time. An
edge nothing has deposited on reads as τ_init. A newly registered agent's edges are seeded at the intent's
best trail and are on trial: they do not evaporate until ``trial_events`` graded events have touched them.
Asked only by exploration, a newcomer's trail otherwise sank to τ_min before its record could speak for it,
and it was never adopted however well it answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from swarm_route.core.messages import edge_agents
from swarm_route.keys import Keys

Trails = dict[str, float]
POSITIONED = 64  # specialists' reads whose positions in a pool ``fused`` keeps (oldest dropped first)

# Graded events in order, read once and written once: each evaporates every stored edge not on trial (KEYS[3]),
# τ ← max(τ_min, (1−ρ)·τ), then τ += Δ on its edges (an edge never stored starts at (1−ρ)·τ_init), clamped to
# [τ_min, τ_max], and counts one event off each of its edges on trial. Every value is rounded to 6 digits after
# each step, as storing it after each event would. HSET in chunks: Lua's unpack takes a few thousand values.
_DEPOSIT = """
local rho, tmin, tmax, tinit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local tau, order, trial, ended = {}, {}, {}, {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  tau[flat[i]] = tonumber(flat[i + 1])
  order[#order + 1] = flat[i]
end
local trials = redis.call('HGETALL', KEYS[3])
for i = 1, #trials, 2 do
  trial[trials[i]] = tonumber(trials[i + 1])
end
local pos = 7
for _ = 1, tonumber(ARGV[6]) do
  for _, edge in ipairs(order) do
    if trial[edge] == nil then
      local t = (1 - rho) * tau[edge]
      if t < tmin then t = tmin end
      tau[edge] = tonumber(string.format('%.6g', t))
    end
  end
  local n = tonumber(ARGV[pos])
  for i = 1, n do
    local edge = ARGV[pos + i]
    local t = tau[edge]
    if t == nil then
      t = (1 - rho) * tinit
      order[#order + 1] = edge
    end
    t = t + tonumber(ARGV[pos + n + i])
    if t < tmin then t = tmin end
    if t > tmax then t = tmax end
    tau[edge] = tonumber(string.format('%.6g', t))
    if trial[edge] ~= nil then
      trial[edge] = trial[edge] - 1
      if trial[edge] <= 0 then
        trial[edge] = nil
        ended[#ended + 1] = edge
      end
    end
  end
  pos = pos + 1 + 2 * n
end
for _, edge in ipairs(ended) do
  redis.call('HDEL', KEYS[3], edge)
end
for edge, left in pairs(trial) do
  redis.call('HSET', KEYS[3], edge, left)
end
for i = 1, #order, 1000 do
  local fields = {}
  for j = i, math.min(i + 999, #order) do
    fields[#fields + 1] = order[j]
    fields[#fields + 1] = string.format('%.6g', tau[order[j]])
  end
  redis.call('HSET', KEYS[1], unpack(fields))
end
redis.call('SADD', KEYS[2], ARGV[5])
return #order
"""

# τ ← max(τ_min, (1−ρ)·τ) on every stored edge of KEYS[1] not on trial (KEYS[2]): the scheduled decay
_EVAPORATE = """
local rho, tmin = tonumber(ARGV[1]), tonumber(ARGV[2])
local flat = redis.call('HGETALL', KEYS[1])
local touched = 0
for i = 1, #flat, 2 do
  if redis.call('HEXISTS', KEYS[2], flat[i]) == 0 then
    local tau = (1 - rho) * tonumber(flat[i + 1])
    if tau < tmin then tau = tmin end
    redis.call('HSET', KEYS[1], flat[i], string.format('%.6g', tau))
    touched = touched + 1
  end
end
return touched
"""


class PheromoneStore:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        *,
        rho: float,
        tau_init: float,
        tau_min: float,
        tau_max: float,
        trial_events: int = 0,
    ) -> None:
        """``trial_events``: graded events a newcomer's seeded edge takes before it evaporates (0: none)."""
        if not tau_min <= tau_init <= tau_max:
            raise ValueError("pheromone bounds need tau_min <= tau_init <= tau_max")
        self._r = client
        self._k = keys
        self.rho, self.tau_init, self.tau_min, self.tau_max = rho, tau_init, tau_min, tau_max
        self.trial_events = trial_events
        # id(trails) → (trails, edge index, positions, τ): ``fused``'s arrays of recent reads (the objects are
        # kept, so an id is not reused while its entry lives)
        self._positioned: dict[int, tuple[Trails, Mapping[str, int], np.ndarray, np.ndarray]] = {}
        self._deposit = client.register_script(_DEPOSIT)
        self._evaporate = client.register_script(_EVAPORATE)

    async def read(self, intents: Iterable[str]) -> dict[str, Trails]:
        """Every requested specialist in one round trip."""
        names = list(intents)
        if not names:
            return {}
        async with self._r.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(self._k.pheromone(name))
            raw = await pipe.execute()
        return {name: {e: float(t) for e, t in trails.items()} for name, trails in zip(names, raw, strict=True)}

    async def trails(self, intent: str) -> Trails:
        return (await self.read([intent]))[intent]

    async def intents(self) -> list[str]:
        return sorted(await self._r.smembers(self._k.pheromone_intents))

    async def deposit(self, intent: str, deltas: Mapping[str, float], pipe: Pipeline | None = None) -> None:
        """One graded event: evaporate the whole specialist, then τ += Δ on each edge given; atomic. With
        ``pipe``, queued there (sent with the rest of the pipeline, in order)."""
        await self.deposit_many(intent, [deltas], pipe)

    async def deposit_many(
        self, intent: str, events: Sequence[Mapping[str, float]], pipe: Pipeline | None = None
    ) -> None:
        """Graded events of one specialist, in order, as ``deposit`` would apply them one by one, in one
        script that reads and writes each edge once: an updater's batch evaporated every edge of the
        specialist once per event, a Redis call per edge each time."""
        args: list[str | float | int] = [self.rho, self.tau_min, self.tau_max, self.tau_init, intent, len(events)]
        for deltas in events:
            edges = list(deltas)
            args += [len(edges), *edges, *(deltas[e] for e in edges)]
        keys = [self._k.pheromone(intent), self._k.pheromone_intents, self._k.trial(intent)]
        await self._deposit(keys=keys, args=args, client=pipe)

    async def seed(self, intent: str, edges: Iterable[str]) -> float | None:
        """A newcomer's prior: its edges start at the intent's best stored trail and are on trial for
        ``trial_events`` graded events (they do not evaporate meanwhile), so what decides whether it is asked
        is what its trials show of it (η), not how little it has been asked so far. Seeded at the intent's
        mean and evaporating with the rest, a model that joined mid-stream and answered better than every
        incumbent on its trials still got ~5% of the traffic (``bench drift --event join``). Edges that
        already have a trail keep it. Returns the prior, or None when the intent has no trails yet (new
        edges then read τ_init like everyone else's)."""
        trails = await self.trails(intent)
        if not trails:
            return None
        prior = min(self.tau_max, max(self.tau_min, max(trails.values())))
        async with self._r.pipeline(transaction=True) as pipe:
            for edge in dict.fromkeys(edges):
                if edge not in trails:  # HSETNX: nor one deposited meanwhile
                    pipe.hsetnx(self._k.pheromone(intent), edge, prior)
                    if self.trial_events > 0:
                        pipe.hsetnx(self._k.trial(intent), edge, self.trial_events)
            await pipe.execute()
        return prior

    async def on_trial(self, intent: str) -> dict[str, int]:
        """The intent's edges on trial → graded events left before they evaporate."""
        return {e: int(n) for e, n in (await self._r.hgetall(self._k.trial(intent))).items()}

    async def forget(self, agent: str) -> int:
        """Every stored edge joining one of ``agent``'s nodes, off every specialist's trails and trial; returns
        how many trails went. An agent removed and registered again under its name is a newcomer (seeded, on
        trial), not the holder of a trail something else under that name earned; and a removed agent's edges
        on trial, never graded again, would otherwise never leave."""
        keys = [k for i in await self.intents() for k in (self._k.pheromone(i), self._k.trial(i))]
        async with self._r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hkeys(key)
            stored = await pipe.execute()
        doomed = [[e for e in edges if agent in edge_agents(e)] for edges in stored]
        if any(doomed):
            async with self._r.pipeline(transaction=True) as pipe:
                for key, edges in zip(keys, doomed, strict=True):
                    if edges:
                        pipe.hdel(key, *edges)
                await pipe.execute()
        return sum(len(edges) for edges in doomed[0::2])

    async def evaporate(self, rho: float | None = None) -> int:
        """τ ← max(τ_min, (1−ρ)·τ) on every stored edge of every specialist; returns edges touched."""
        touched = 0
        for intent in await self.intents():
            touched += int(
                await self._evaporate(
                    keys=[self._k.pheromone(intent), self._k.trial(intent)], args=[rho or self.rho, self.tau_min]
                )
            )
        return touched

    def fused(
        self, weights: Mapping[str, float], specialists: Mapping[str, Trails], edge_index: Mapping[str, int]
    ) -> np.ndarray:
        """τ_q(e) = Σ_t w_t·τ_t(e) / Σ_t w_t for every edge of ``edge_index`` (edge → position), τ_init where a
        specialist has no trail; only stored trails are visited, so a large pool costs what was learned."""
        total_w = sum(weights.values()) or 1.0
        out = np.full(len(edge_index), self.tau_init)
        for intent, w in weights.items():
            if trails := specialists.get(intent):
                at, tau = self._positions(trails, edge_index)
                out[at] += w / total_w * (tau - self.tau_init)
        return out

    def _positions(self, trails: Trails, edge_index: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """A specialist's trails as (positions in ``edge_index``, τ) arrays, kept while the router reuses the
        same trails and pool (a read is cached for up to ``store.trails_refresh_s``): a thousand edges looked
        up one by one took ~0.3 ms a query."""
        kept = self._positioned.get(id(trails))
        if kept is not None and kept[0] is trails and kept[1] is edge_index:
            return kept[2], kept[3]
        pairs = [(i, tau) for edge, tau in trails.items() if (i := edge_index.get(edge)) is not None]
        at = np.array([i for i, _ in pairs], dtype=int)
        tau = np.array([t for _, t in pairs], dtype=float)
        if len(self._positioned) >= POSITIONED:
            self._positioned.pop(next(iter(self._positioned)))
        self._positioned[id(trails)] = (trails, edge_index, at, tau)
        return at, tau

    def fuse(self, weights: Mapping[str, float], specialists: Mapping[str, Trails], edges: Iterable[str]) -> float:
        """τ_q of a path: the mean over its edges of the fused trail."""
        edges = list(edges)
        if not edges:
            return self.tau_init
        index = {e: i for i, e in enumerate(dict.fromkeys(edges))}
        return float(self.fused(weights, specialists, index)[[index[e] for e in edges]].mean())
