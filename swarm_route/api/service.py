"""What one ingress replica holds between requests, and the few things it does that are not HTTP.

The routes in ``api/routes`` authenticate, validate and shape replies; they reach the pipeline, the registry
and the learning outbox through this object. It knows neither Ray nor HTTP routing: ``serve/ingress.py``
builds it with the stages (handles or in process) and metrics recorders of its replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from swarm_route.agents.builtin import default_pool
from swarm_route.api.access import AccessControl, Caller
from swarm_route.api.activity import Activity
from swarm_route.api.errors import ApiError, field_error
from swarm_route.api.schemas import AgentStatus, QueryRequest, ReplicaStatus
from swarm_route.config import Settings
from swarm_route.core.dispatch.replicas import cooldowns
from swarm_route.core.failopen import Breaker, Watched
from swarm_route.core.learn.outbox import Outbox
from swarm_route.core.learn.stream import EventStream
from swarm_route.core.learn.updater import latencies
from swarm_route.core.messages import (
    DirectCall,
    Feedback,
    FinishedRequest,
    IntentStatus,
    Query,
    QueryResponse,
    RouteDecision,
    node_agent,
    node_id,
)
from swarm_route.core.pipeline import Pipeline, StageUnavailable, Walked
from swarm_route.core.registry import AgentExists
from swarm_route.core.route.outcomes import OutcomeLog
from swarm_route.core.route.pheromone import PheromoneStore
from swarm_route.core.spend import ANONYMOUS, Ledger
from swarm_route.keys import Keys
from swarm_route.wiring import agent_registry, pheromone_store

log = logging.getLogger(__name__)
RECENT_OUTCOMES = 1000  # graded outcomes the Agents page's recent quality is taken over


class DirectDispatch(Protocol):
    async def call(self, agent: str, model: str | None, query: str) -> DirectCall: ...

    async def in_flight(self) -> dict[str, int]: ...


class Service:
    def __init__(
        self,
        settings: Settings,
        redis: Any,
        breaker: Breaker,
        *,
        pipeline: Callable[[Service], Pipeline],
        dispatch: DirectDispatch,
        updater_stats: Callable[[], Awaitable[dict[str, int]]],
        intent_status: Callable[[], Awaitable[IntentStatus]] | None = None,
        record: Callable[[Walked], None] = lambda walked: None,
        count: Callable[[str], None] = lambda operation: None,
    ) -> None:
        """``pipeline`` builds the walk with this service as its event sink; ``record`` observes every
        walk (metrics), ``count`` every store error off the request path."""
        self.settings, self.redis, self.breaker = settings, redis, breaker
        self.keys = Keys(settings.namespace)
        self.registry = agent_registry(settings, redis, breaker)
        self.stream = EventStream(redis, self.keys)
        self.pheromones: PheromoneStore = pheromone_store(settings, redis)
        self.dispatch, self.updater_stats, self._record, self._count = dispatch, updater_stats, record, count
        self.intent_status = intent_status
        self.paused = Watched("updates_paused", lambda _: self.read_paused(), False, breaker)  # the learning switch
        self.outbox = Outbox(
            self.stream,
            capacity=settings.store.outbox_capacity,
            record_ttl_s=settings.updater.record_ttl_s,
            breaker=breaker,
            on_drop=lambda kind: count(f"outbox_full_{kind}"),
        )
        auth = settings.auth
        self.activity = Activity(redis, self.keys, breaker)
        self.api_keys = auth.named()
        self.access = AccessControl(redis, self.keys, self.api_keys.values(), auth.rate_per_minute, breaker)
        self.ledger = Ledger(
            redis,
            self.keys,
            {i: k.budget for i, k in self.api_keys.items() if k.budget.limited},
            breaker=breaker,
            fail=auth.spend_fail,
            hold_ttl_s=auth.hold_ttl_s,
        )
        # request id → (who asked, the publish of its record)
        self._recent: OrderedDict[str, tuple[str | None, asyncio.Task[Any]]] = OrderedDict()
        self._background: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._charger: asyncio.Task[None] | None = None
        self.pipeline = pipeline(self)

    async def start(self) -> None:
        """Register the configured agents, start writing the outbox, and fit the classifier before ready."""
        for spec in default_pool() if self.settings.default_pool else []:  # only where absent: operators' edits win
            with contextlib.suppress(AgentExists):
                await self.registry.register(spec)
        for spec in self.settings.agents:
            await self.registry.register(spec, replace=True)
        self._flusher = asyncio.create_task(self.outbox.run(self._stop))
        self._charger = asyncio.create_task(self.ledger.run(self._stop))
        try:  # the first fit takes seconds with sentence embeddings: a first user should not be the one who waits
            await self.pipeline.classifier.classify("warm-up")
        except Exception:
            log.exception("classifier warm-up failed; the first query will fit it")

    def stop(self) -> None:
        self._stop.set()

    # ---------------------------------------------------------------------------------------------- queries

    async def answer(
        self,
        body: QueryRequest,
        agent: str | None = None,
        on_delta: Callable[[str], None] | None = None,
        request_id: str | None = None,
        caller: str | None = None,
    ) -> QueryResponse:
        """The walk of one query; ``agent`` addresses a registered agent directly, skipping the choice;
        ``on_delta`` receives the answer's text as a single streaming agent writes it."""
        walked = await self.pipeline.walk(self._query(body, agent, caller), request_id or uuid.uuid4().hex, on_delta)
        self.activity.record(walked, body.query)
        self._record(walked)
        return walked.response

    async def decide(self, body: QueryRequest, caller: str | None) -> RouteDecision:
        """Where the query would go and why, without dispatching (a dry run: only a priced routing LLM is
        charged)."""
        return await self.pipeline.decide(self._query(body, None, caller))

    def _query(self, body: QueryRequest, agent: str | None, caller: str | None) -> Query:
        self.check_limits(body)
        return Query(
            text=body.query,
            budget_usd=body.budget_usd,
            max_agents=body.max_agents,
            cost_weight=body.cost_weight,
            agent=agent,
            caller=caller,
        )

    async def invoke(self, agent: str, model: str | None, query: str, caller: str | None) -> DirectCall:
        """One agent called directly, paid by the caller's key like a routed query: refused when the key's
        day or month is spent, its real cost charged after (nothing is held: the cost is unknown before)."""
        self.check_query(query)
        await self.ledger.headroom(caller)
        async with self.ledger.paying(caller, uuid.uuid4().hex, 0.0) as bill:
            result = await self.dispatch.call(agent, model, query)
            bill.cost_usd = result.answer.cost_usd if result.answer else 0.0
        return result

    async def agents_status(self) -> list[AgentStatus]:
        """The registry with each agent's replicas (cooldowns shared in Redis, calls in flight as a dispatch
        replica counts them), recent latency and quality, and how often it was chosen lately."""
        agents = await self.registry.all()
        try:
            in_flight = await self.dispatch.in_flight()
        except StageUnavailable:
            in_flight = {}
        cool_until = dict(await cooldowns(self.redis, self.keys))
        latency = await latencies(self.redis, self.keys)
        scores: dict[str, list[float]] = {}
        for outcome in await OutcomeLog(self.redis, self.keys).latest(RECENT_OUTCOMES):
            scores.setdefault(node_agent(outcome.node), []).append(outcome.score)
        now = time.time()
        chosen = (await self.activity.overview(15)).per_agent
        return [
            AgentStatus(
                name=a.name,
                kind=a.kind,
                paused=a.paused,
                skills=a.intents(),
                models=[m.name for m in a.models],
                replicas=[
                    ReplicaStatus(
                        endpoint=e, in_flight=in_flight.get(e, 0), cooling_s=max(0.0, cool_until.get(e, 0.0) - now)
                    )
                    for e in a.endpoints()
                ],
                latency_ms={
                    m.name: latency[node] * 1000
                    for m in a.models
                    if (node := node_id(a.name, m.name)) in latency
                },
                quality=sum(scores[a.name]) / len(scores[a.name]) if a.name in scores else None,
                graded=len(scores.get(a.name, [])),
                chosen_recently=chosen.get(a.name, 0),
            )
            for a in agents
        ]

    async def budget_headers(self, key_id: str | None) -> dict[str, str]:
        """What the caller's key has left, for the response's headers: none when the key has no budget, only
        the per-request cap when the store cannot say."""
        budget = self.ledger.budget(key_id)
        if not budget.limited:
            return {}
        headers = {} if budget.per_request_usd is None else {"X-Budget-Per-Request-Usd": f"{budget.per_request_usd:g}"}
        report = await self.breaker.call("spend", lambda: self.ledger.report(key_id or ANONYMOUS), lambda: None)
        for window, left in report.remaining_usd.items() if report else ():
            headers[f"X-Budget-Remaining-{window.title()}-Usd"] = f"{left:.6f}"
        return headers

    def check_limits(self, body: QueryRequest) -> None:
        self.check_query(body.query)
        max_set = self.settings.reasoning.max_set
        if body.max_agents > max_set:
            raise field_error("max_agents", f"at most {max_set} allowed (reasoning.max_set)")
        limit = self.settings.limits.max_budget_usd
        if body.budget_usd is not None and body.budget_usd > limit:
            raise field_error("budget_usd", f"at most {limit} allowed")

    def check_query(self, query: str) -> None:
        limit = self.settings.limits.max_query_chars
        if len(query) > limit:
            raise field_error("query", f"is {len(query)} characters; at most {limit} allowed")
        try:
            query.encode("utf-8")
        except UnicodeEncodeError:
            raise field_error("query", "is not valid Unicode text (a lone surrogate?)") from None

    # ---------------------------------------------------------------------------------------------- learning

    async def finished(self, event: FinishedRequest) -> str:
        """The pipeline's event sink: queued for the outbox in the background, unless learning is paused;
        remembered so feedback on it can wait for its record to be written. A record the outbox would drop
        (the store down for long, the outbox full) is said to be dropped in the answer itself."""
        if await self.paused.get():  # traffic teaches nothing; the record is kept so feedback can still grade it
            kept = self._in_background(self.stream.keep(event, self.settings.updater.record_ttl_s))
            self._remember(event, kept)
            return "paused"
        if self.outbox.full:
            self._count("outbox_full_finished")
            return "dropped: the store is unreachable and this replica's outbox is full; feedback on it is lost"
        self._remember(event, self._in_background(self.outbox.put(event)))
        return "queued"

    def _remember(self, event: FinishedRequest, published: asyncio.Task[Any]) -> None:
        self._recent[event.request_id] = (event.caller, published)
        while len(self._recent) > self.settings.store.outbox_capacity:
            self._recent.popitem(last=False)

    async def feedback(self, request_id: str, score: float, caller: Caller) -> None:
        """One grade per request, by the key that made it or an admin; the first accepted grade stands
        (a later one is a 409 here when the store can say so, and is skipped by the updater otherwise)."""
        asker = await self._check_answered(request_id)
        if not caller.admin and asker is not None and asker != caller.key_id:
            raise ApiError(403, "only the API key that made this request, or an admin key, may grade it")
        graded = await self.breaker.call("feedback", lambda: self.redis.exists(self.keys.graded(request_id)), int)
        if graded:
            raise ApiError(409, f"request {request_id!r} has been graded already; the first grade stands")
        if not await self.outbox.put(Feedback(request_id=request_id, score=score)):
            raise ApiError(503, "the store is down and the feedback buffer is full; retry in a few seconds")

    async def _check_answered(self, request_id: str) -> str | None:
        """Feedback needs its request's record written first: a request this replica answered recently is
        checked here (its record is in the store or queued ahead in the outbox), others in the store.
        Returns the id of the key that made the request."""
        recent = self._recent.get(request_id)
        if recent is not None:
            asker, published = recent
            if not await asyncio.shield(published):
                raise ApiError(410, "this request's record was dropped while the store was down; feedback is lost")
            return asker
        missing = object()
        found = await self.breaker.call("feedback", lambda: self.stream.record(request_id), lambda: missing)
        if found is missing:
            raise ApiError(503, "the store is unreachable and this replica did not answer that request; retry shortly")
        if found is None:
            raise ApiError(404, f"unknown request_id {request_id!r} (never answered, or older than its TTL)")
        return found.caller  # type: ignore[union-attr]

    async def read_paused(self) -> bool:
        return bool(await self.redis.exists(self.keys.updates_paused))

    async def set_learning(self, enabled: bool) -> None:
        """Pause or resume learning for every ingress replica (each re-reads the switch within a second)."""
        if enabled:
            await self.redis.delete(self.keys.updates_paused)
        else:
            await self.redis.set(self.keys.updates_paused, "1")
        self.paused.set(not enabled)

    def _in_background(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """The client never waits for learning; an error here is logged, not raised."""

        async def guarded() -> Any:
            try:
                return await coro
            except Exception:
                log.exception("background publish failed")
                self._count("publish")
                return False

        task = asyncio.create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task
