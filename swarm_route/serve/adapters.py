"""The pipeline's stages over Serve handles: a stage in its own deployment, called like one in process.

Each call is retried while the stage's replica is dead or restarting (Ray restarts it; stages are
idempotent, though a dispatch retried after its replica died mid-call may call an agent twice); still
gone after that, ``StageUnavailable`` names the stage. A query's trace context crosses to dispatch as a
W3C carrier, so the agent calls are spans of the query's trace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from ray.exceptions import RayActorError
from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError
from ray.serve.handle import DeploymentHandle
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from swarm_route.core.messages import (
    Aggregate,
    DirectCall,
    DispatchResult,
    IntentResult,
    IntentStatus,
    PathAnswer,
    RouteDecision,
    RouteRequest,
)
from swarm_route.core.pipeline import StageUnavailable
from swarm_route.tracing import carrier

REPLICA_GONE = (RayActorError, ReplicaUnavailableError, DeploymentUnavailableError)


async def call(stage: str, method: Any, *args: Any) -> Any:
    """``method.remote(*args)``, retried while the replica is gone; then ``StageUnavailable``."""
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(4),
            wait=wait_exponential(multiplier=0.25, max=2.0),
            retry=retry_if_exception_type(REPLICA_GONE),
            reraise=True,
        ):
            with attempt:
                return await method.remote(*args)
    except REPLICA_GONE as exc:
        raise StageUnavailable(stage, f"its replica is restarting: {type(exc).__name__}") from None
    raise AssertionError("unreachable: the retry loop returns or raises")


class RemoteClassifier:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def classify(self, query: str) -> IntentResult:
        return await call("classify", self._handle.classify, query)

    async def status(self) -> IntentStatus:
        """One classifier replica's (with several, the one the handle picked)."""
        return await call("classify", self._handle.status)


class RemoteRouter:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def route(self, request: RouteRequest) -> RouteDecision:
        return await call("route", self._handle.route, request)


class RemoteDispatch:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def run(self, query: str, decision: RouteDecision) -> DispatchResult:
        return await call("dispatch", self._handle.run, query, decision, carrier())

    async def stream(self, query: str, decision: RouteDecision) -> AsyncIterator[str | DispatchResult]:
        async for item in self._handle.options(stream=True).stream.remote(query, decision, carrier()):
            yield item

    async def call(self, agent: str, model: str | None, query: str) -> DirectCall:
        return await call("dispatch", self._handle.call, agent, model, query)

    async def in_flight(self) -> dict[str, int]:
        """One dispatch replica's count (with several, the one the handle picked)."""
        return await call("dispatch", self._handle.in_flight)


class RemoteAggregator:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def merge(
        self, query: str, answers: Sequence[PathAnswer], probabilities: Sequence[float], reason: str
    ) -> Aggregate:
        return await call("aggregate", self._handle.merge, query, list(answers), list(probabilities), reason)
