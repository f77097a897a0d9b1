"""Liveness and readiness, for Kubernetes probes and load balancers."""

from typing import Any

from fastapi import APIRouter

from swarm_route.api.errors import ApiError
from swarm_route.api.routes import Replica
from swarm_route.api.schemas import ErrorBody
from swarm_route.core.failopen import STORE_ERRORS
from swarm_route.core.pipeline import StageUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"model": ErrorBody}})
async def readyz(service: Replica) -> dict[str, Any]:
    """Ready while it can answer: with the store down it still routes on what it last read (degraded)."""
    try:
        agents = len(await service.registry.all())
    except STORE_ERRORS as exc:
        raise ApiError(503, f"store unreachable and no registry read yet: {type(exc).__name__}") from None
    status = {"status": "ready", "agents": agents, "outbox": len(service.outbox)}
    if service.intent_status is not None:  # refitting still answers (the previous model): detail, not readiness
        try:
            status["intents"] = (await service.intent_status()).state
        except StageUnavailable:
            status["intents"] = "unreachable"
    try:
        await service.redis.ping()
    except STORE_ERRORS as exc:
        status |= {"status": "degraded", "store": f"unreachable: {type(exc).__name__}"}
    return status
