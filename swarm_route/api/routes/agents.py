"""The agent registry: register (admins), list, read, call directly, remove (admins); how far the classifier
has learnt it."""

import time

from fastapi import APIRouter

from swarm_route.api.access import Scope
from swarm_route.api.errors import ApiError, field_error
from swarm_route.api.routes import AuthHeader, Replica
from swarm_route.api.schemas import AgentState, ErrorBody, InvokeRequest, InvokeResponse
from swarm_route.core.messages import IntentStatus
from swarm_route.core.onboarding import PolicyViolation, Registration, RegistryFull, offboard, onboard
from swarm_route.core.registry import AgentExists, AgentNotFound, AgentSpec
from swarm_route.timing import ms_since

router = APIRouter(tags=["agents"])
NOT_FOUND = {404: {"model": ErrorBody}}


@router.post(
    "/v1/agents",
    response_model=AgentSpec,
    status_code=201,
    responses={409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def register_agent(body: Registration, service: Replica, authorization: AuthHeader = None) -> AgentSpec:
    """Our agent spec (with ``kind``) or an A2A agent card; routable on the next query."""
    await service.access.check(authorization, Scope.admin)
    try:
        return await onboard(service.registry, service.pheromones, body, service.settings.agent_policy)
    except PolicyViolation as exc:
        raise field_error("endpoint", str(exc)) from None
    except RegistryFull as exc:
        raise ApiError(409, str(exc)) from None
    except AgentExists as exc:
        raise ApiError(409, f"an agent named {str(exc)!r} exists; DELETE it first or pick another name") from None


@router.post(
    "/v1/agents/{name}/invoke",
    response_model=InvokeResponse,
    responses={**NOT_FOUND, 422: {"model": ErrorBody}, 502: {"model": ErrorBody}},
)
async def invoke(name: str, body: InvokeRequest, service: Replica, authorization: AuthHeader = None) -> InvokeResponse:
    """Call one agent directly, bypassing classification, routing and merging (still with retries,
    replica choice and limits): to try an agent out, and the baseline ``bench load`` compares with."""
    caller = await service.access.check(authorization, Scope.client)
    started = time.perf_counter()
    result = await service.invoke(name, body.model, body.query, caller.key_id)
    if result.unknown == "agent":
        raise ApiError(404, f"no agent named {name!r}")
    if result.unknown == "model":
        raise ApiError(422, f"agent {name!r} has no model {result.model!r}")
    if result.answer is None:
        failures = "; ".join(a.error or "" for a in result.attempts)
        raise ApiError(502, f"agent {name!r} failed: {failures}")
    return InvokeResponse(
        agent=name,
        model=result.model or "",
        answer=result.answer.text,
        cost_usd=result.answer.cost_usd,
        latency_ms=ms_since(started),
        attempts=result.attempts,
    )


@router.get("/v1/intents/status", response_model=IntentStatus, responses={503: {"model": ErrorBody}})
async def intent_status(service: Replica, authorization: AuthHeader = None) -> IntentStatus:
    """Which registry version this replica's classifier answers with, and how far a refit is: a
    registration returns at once and its agent is learnt with the next query (in about a second beside
    a large intent file, else in the background while the previous model answers)."""
    await service.access.check(authorization, Scope.client)
    if service.intent_status is None:
        raise ApiError(503, "this replica's classifier reports no status")
    return await service.intent_status()


@router.get("/v1/agents", response_model=list[AgentSpec])
async def list_agents(service: Replica, authorization: AuthHeader = None) -> list[AgentSpec]:
    await service.access.check(authorization, Scope.client)
    return await service.registry.all()


@router.get("/v1/agents/{name}", response_model=AgentSpec, responses=NOT_FOUND)
async def get_agent(name: str, service: Replica, authorization: AuthHeader = None) -> AgentSpec:
    await service.access.check(authorization, Scope.client)
    try:
        return await service.registry.get(name)
    except AgentNotFound:
        raise ApiError(404, f"no agent named {name!r}; GET /v1/agents lists them") from None


@router.put("/v1/agents/{name}/state", response_model=AgentSpec, responses=NOT_FOUND)
async def set_agent_state(name: str, body: AgentState, service: Replica, authorization: AuthHeader = None) -> AgentSpec:
    """Pause or resume an agent: paused, routing leaves it out (its trails and ability are kept; direct
    calls still reach it); every ingress replica sees the change with the next query."""
    await service.access.check(authorization, Scope.admin)
    try:
        spec = await service.registry.get(name)
    except AgentNotFound:
        raise ApiError(404, f"no agent named {name!r}; GET /v1/agents lists them") from None
    updated = spec.model_copy(update={"paused": not body.enabled})
    await service.registry.register(updated, replace=True)
    return updated


@router.delete("/v1/agents/{name}", status_code=204, responses=NOT_FOUND)
async def delete_agent(name: str, service: Replica, authorization: AuthHeader = None) -> None:
    await service.access.check(authorization, Scope.admin)
    try:
        await offboard(service.registry, service.pheromones, name)
    except AgentNotFound:
        raise ApiError(404, f"no agent named {name!r}; GET /v1/agents lists them") from None
