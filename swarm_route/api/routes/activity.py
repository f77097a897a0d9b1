"""What the console shows of traffic (admin keys): the last decisions with their traces, per-minute totals
summed over the last minutes, and each agent's replicas, latency and recent quality."""

from fastapi import APIRouter, Query

from swarm_route.api.access import Scope
from swarm_route.api.activity import Decision, Overview
from swarm_route.api.errors import ApiError
from swarm_route.api.routes import AuthHeader, Replica
from swarm_route.api.schemas import AgentStatus, ErrorBody

router = APIRouter(tags=["activity"])


@router.get("/v1/activity/overview", response_model=Overview)
async def overview(
    service: Replica, minutes: int = Query(15, ge=1, le=120), authorization: AuthHeader = None
) -> Overview:
    """Requests, declines, cost and median latency over the last ``minutes``, choices per intent and agent."""
    await service.access.check(authorization, Scope.admin)
    return await service.activity.overview(minutes)


@router.get("/v1/activity/decisions", response_model=list[Decision])
async def decisions(
    service: Replica, limit: int = Query(50, ge=1, le=200), authorization: AuthHeader = None
) -> list[Decision]:
    """The most recent walks of every ingress replica, newest first."""
    await service.access.check(authorization, Scope.admin)
    return await service.activity.decisions(limit)


@router.get("/v1/activity/decisions/{request_id}", response_model=Decision, responses={404: {"model": ErrorBody}})
async def decision(request_id: str, service: Replica, authorization: AuthHeader = None) -> Decision:
    await service.access.check(authorization, Scope.admin)
    found = await service.activity.decision(request_id)
    if found is None:
        raise ApiError(404, f"no recent decision {request_id!r} (only the last {service.activity.size} are kept)")
    return found


@router.get("/v1/activity/agents", response_model=list[AgentStatus])
async def agents(service: Replica, authorization: AuthHeader = None) -> list[AgentStatus]:
    await service.access.check(authorization, Scope.admin)
    return await service.agents_status()
