"""Thin Serve deployments: each runs one stage from ``swarm_route.wiring`` and exposes its methods.

Nothing here decides anything: the stages are plain Python, and these classes only give them a replica,
count their store errors in Prometheus, and carry a query's trace context across the handle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle
from redis.exceptions import RedisError

from swarm_route.agents.builtin import BuiltinBackend
from swarm_route.config import Settings
from swarm_route.core.messages import (
    AgentAnswer,
    AgentError,
    DirectCall,
    DispatchResult,
    IntentResult,
    RouteDecision,
    RouteRequest,
)
from swarm_route.core.registry import AgentSpec
from swarm_route.serve.telemetry import Metrics, replica_logging, trail_entropy
from swarm_route.tracing import configure as configure_tracing
from swarm_route.tracing import context_from, tracer
from swarm_route.wiring import (
    AggregateStage,
    IntentStage,
    agent_registry,
    dispatch_stage,
    pheromone_store,
    pheromone_updater,
    redis_client,
    route_stage,
    store_breaker,
)

log = logging.getLogger(__name__)


def counted(metrics: Metrics) -> Callable[[str], None]:
    """A breaker's ``on_error`` that counts each store failure in Prometheus."""
    return lambda operation: metrics.inc("store_errors_total", operation=operation)


@serve.deployment
class IntentClassifierDeployment(IntentStage):
    """The classifier stage as a deployment of its own, batching concurrent queries into one vectorised call.
    (Inside the ingress, in the fast topology, it runs unbatched: ``serve.batch`` there hung concurrent queries.)"""

    def __init__(self, settings: Settings) -> None:
        replica_logging()  # the refits' progress
        super().__init__(settings)

    # Opportunistic batching: no wait for a batch to fill (a lone query would pay the wait in full); under
    # load, queries queue while a batch is classified and the next batch takes them all.
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _classify_batch(self, queries: list[str]) -> list[IntentResult]:
        return await self.classify_many(queries)

    async def classify(self, query: str) -> IntentResult:
        return await self._classify_batch(query)


@serve.deployment
class RouterDeployment:
    def __init__(self, settings: Settings) -> None:
        self._stage = route_stage(settings, breaker=store_breaker(settings, counted(Metrics())))

    async def route(self, request: RouteRequest) -> RouteDecision:
        return await self._stage.route(request)


@serve.deployment
class BuiltinAgentsDeployment:
    """The default pool's tool agents, as a Serve deployment of their own (scaled like any model replica)."""

    def __init__(self) -> None:
        self._backend = BuiltinBackend()

    async def answer(self, spec: AgentSpec, model: str, query: str, context: str | None = None) -> dict[str, Any]:
        # Exceptions cross the handle as plain data: dispatch must know whether a retry can help.
        try:
            return {"answer": await self._backend.answer(spec, model, query, context)}
        except AgentError as exc:
            return {"error": str(exc), "retryable": exc.retryable}


class ServeBuiltinBackend:
    """The dispatcher's view of the BuiltinAgents deployment: an AgentBackend over a handle."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def answer(self, spec: AgentSpec, model: str, query: str, context: str | None = None) -> AgentAnswer:
        try:
            result = await self._handle.answer.remote(spec, model, query, context)
        except Exception as exc:  # the replica died or raised: its traceback stays in its log
            log.warning("builtin agents' call failed: %r", exc)
            raise AgentError(f"the builtin agents' replica failed ({type(exc).__name__})", retryable=True) from None
        if "error" in result:
            raise AgentError(result["error"], retryable=result["retryable"])
        return result["answer"]


@serve.deployment
class DispatchDeployment:
    def __init__(self, settings: Settings, builtin: DeploymentHandle) -> None:
        replica_logging()  # why an agent gave no answer is logged here, never told to the caller
        breaker = store_breaker(settings, counted(Metrics()))
        self._stage = dispatch_stage(settings, ServeBuiltinBackend(builtin), breaker=breaker)
        self._tracer = tracer()

    async def run(
        self, query: str, decision: RouteDecision, trace_carrier: dict[str, str] | None = None
    ) -> DispatchResult:
        with self._tracer.start_as_current_span("dispatch_paths", context=context_from(trace_carrier)):
            return await self._stage.run(query, decision)

    async def stream(
        self, query: str, decision: RouteDecision, trace_carrier: dict[str, str] | None = None
    ) -> AsyncIterator[str | DispatchResult]:
        """``run``, streamed: text deltas of a single streaming path as they arrive, then the result.
        Called through ``handle.options(stream=True)``."""
        with self._tracer.start_as_current_span("dispatch_paths", context=context_from(trace_carrier)):
            async for item in self._stage.stream(query, decision):
                yield item

    async def call(self, agent: str, model: str | None, query: str) -> DirectCall:
        return await self._stage.call(agent, model, query)

    def in_flight(self) -> dict[str, int]:
        return self._stage.in_flight()


@serve.deployment
class AggregatorDeployment(AggregateStage):
    pass


@serve.deployment
class UpdaterDeployment:
    """Runs the quality-gated pheromone update loop in the background of its replica."""

    async def __init__(self, settings: Settings) -> None:
        client = redis_client(settings)
        u = settings.updater
        replica = serve.get_replica_context().replica_tag
        configure_tracing()
        replica_logging()
        self._metrics = Metrics()
        self._store = pheromone_store(settings, client)
        self._updater = pheromone_updater(
            settings,
            client,
            self._store,
            consumer=f"updater-{replica}",
            on_event=lambda event: self._metrics.inc("updater_events_total", event=event),
            registry=agent_registry(settings, client, store_breaker(settings, counted(self._metrics))),
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._updater.run(self._stop, u.evaporate_interval_s, u.block_ms))
        self._entropy = asyncio.create_task(self._watch_entropy())

    async def _watch_entropy(self, every_s: float = 10.0) -> None:
        """Trail entropy per intent, for the dashboard: falling entropy means the colony has converged."""
        while not self._stop.is_set():
            try:
                for intent in await self._store.intents():
                    value = trail_entropy(await self._store.trails(intent))
                    if value is not None:
                        self._metrics.set("trail_entropy", value, intent=intent)
            except RedisError as exc:
                log.warning("trail entropy skipped: %s", exc)
            await asyncio.sleep(every_s)

    async def stats(self) -> dict[str, int]:
        return await self._updater.stats()

    def check_health(self) -> None:
        if self._task.done():
            raise RuntimeError(f"updater loop ended: {self._task.exception()!r}")

    def __del__(self) -> None:
        self._stop.set()
        self._task.cancel()
        self._entropy.cancel()
