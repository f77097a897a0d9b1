"""The Redis key layout, written down once.

Every key lives under ``{namespace}:`` so several deployments can share one Redis.

Memory budget: what grows with traffic is capped or expires. The stream holds at most ~100,000 entries
(~1–2 KB each: ≤ 200 MB), the outcome log 200,000 (~0.5–2 KB: ≤ 400 MB), the dead letters 1,000; request
records and grade markers expire (``updater.record_ttl_s``; R requests/s keep R × ttl records of ~1–2 KB,
so at 10 requests/s the 1-day default is ~1.3 GB: size Redis, or lower the TTL, to fit). The registry is bounded
by ``agent_policy.max_agents``. Run Redis with ``maxmemory-policy noeviction`` (as ``k8s/redis.yaml``
does): at its cap, writes fail and the service fails open, instead of Redis evicting trails or the registry.

| key | type | holds |
|---|---|---|
| ``{ns}:agents`` | hash | agent name → AgentSpec JSON |
| ``{ns}:agents:version`` | string (int) | bumped with every registry change, in the same MULTI |
| ``{ns}:pheromone:{intent}`` | hash | edge id (``u>v``) → τ of that intent's specialist |
| ``{ns}:pheromone:intents`` | set | intents that have a specialist |
| ``{ns}:trial:{intent}`` | hash | a newcomer's seeded edge → graded events left before its trail evaporates |
| ``{ns}:finished`` | stream | finished requests and feedback, consumed by the updater group |
| ``{ns}:request:{id}`` | hash | a finished request's record, kept ``record_ttl_s`` for late feedback |
| ``{ns}:updater:stats`` | hash | counters of the updater (graded, rejected, deposited, …) |
| ``{ns}:graded:{id}`` | string | present once a request has been graded by feedback (the first grade stands), expires |
| ``{ns}:updater:dead`` | list | events the updater could not handle (JSON with the error), newest first, capped |
| ``{ns}:outcomes`` | list | graded outcomes (query, node, score, cost) JSON, capped; feeds the ability model |
| ``{ns}:outcomes:total`` | string (int) | outcomes ever appended, so readers can tail a capped list |
| ``{ns}:rate:{key id}:{minute}`` | string (int) | requests of one API key in one minute window, expires |
| ``{ns}:spend:{key id}:daily:{day}`` | string (float) | USD one API key spent in a UTC day, expires |
| ``{ns}:spend:{key id}:monthly:{month}`` | string (float) | USD one API key spent in a UTC month, expires |
| ``{ns}:spend:{key id}:holds`` | hash | request id → "amount deadline": expected costs of requests in flight |
| ``{ns}:spend:keys`` | set | key ids that have been charged |
| ``{ns}:decisions`` | list | the last walks (JSON with their traces), newest first, capped: the console's Decisions |
| ``{ns}:activity:{minute}`` | hash | a minute's requests, declines, cost, latency buckets, choices per intent, agent |
| ``{ns}:updates:paused`` | string | present while an operator has paused learning (nothing is published) |
| ``{ns}:cooldown`` | sorted set | replica endpoint → time (epoch s) its cooldown ends; shared by dispatch replicas |
| ``{ns}:latency`` | hash | node (``agent/model``) → recent latency (s, EWMA) from the updater; gone with its agent |
"""

from __future__ import annotations

from dataclasses import dataclass

UPDATER_GROUP = "updaters"


@dataclass(frozen=True)
class Keys:
    namespace: str

    @property
    def agents(self) -> str:
        return f"{self.namespace}:agents"

    @property
    def agents_version(self) -> str:
        return f"{self.namespace}:agents:version"

    def pheromone(self, intent: str) -> str:
        return f"{self.namespace}:pheromone:{intent}"

    @property
    def pheromone_intents(self) -> str:
        return f"{self.namespace}:pheromone:intents"

    def trial(self, intent: str) -> str:
        return f"{self.namespace}:trial:{intent}"

    @property
    def finished(self) -> str:
        return f"{self.namespace}:finished"

    def request(self, request_id: str) -> str:
        return f"{self.namespace}:request:{request_id}"

    @property
    def updater_stats(self) -> str:
        return f"{self.namespace}:updater:stats"

    def graded(self, request_id: str) -> str:
        return f"{self.namespace}:graded:{request_id}"

    @property
    def dead_letters(self) -> str:
        return f"{self.namespace}:updater:dead"

    @property
    def latency(self) -> str:
        return f"{self.namespace}:latency"

    @property
    def outcomes(self) -> str:
        return f"{self.namespace}:outcomes"

    @property
    def outcomes_total(self) -> str:
        return f"{self.namespace}:outcomes:total"

    @property
    def updates_paused(self) -> str:
        return f"{self.namespace}:updates:paused"

    @property
    def cooldown(self) -> str:
        return f"{self.namespace}:cooldown"

    def rate(self, key_id: str, window: int) -> str:
        return f"{self.namespace}:rate:{key_id}:{window}"

    def spend(self, key_id: str, window: str, name: str) -> str:
        return f"{self.namespace}:spend:{key_id}:{window}:{name}"

    def spend_holds(self, key_id: str) -> str:
        return f"{self.namespace}:spend:{key_id}:holds"

    @property
    def spend_keys(self) -> str:
        return f"{self.namespace}:spend:keys"

    @property
    def decisions(self) -> str:
        return f"{self.namespace}:decisions"

    def activity_minute(self, minute: int) -> str:
        return f"{self.namespace}:activity:{minute}"
