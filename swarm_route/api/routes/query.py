"""``POST /v1/query``: the routed answer with its cost and the evidence for the route; ``POST /v1/route``:
the route alone (a dry run)."""

from fastapi import APIRouter, Response

from swarm_route.api.access import Scope
from swarm_route.api.routes import AuthHeader, Replica
from swarm_route.api.schemas import ErrorBody, QueryRequest
from swarm_route.core.messages import QueryResponse, RouteDecision

router = APIRouter(tags=["query"])


@router.post(
    "/v1/query",
    response_model=QueryResponse,
    responses={402: {"model": ErrorBody}, 422: {"model": ErrorBody}, 429: {"model": ErrorBody}},
)
async def query(
    body: QueryRequest, service: Replica, response: Response, authorization: AuthHeader = None
) -> QueryResponse:
    """Headers ``X-Budget-Remaining-{Daily,Monthly}-Usd`` say what the key has left when it has a budget."""
    caller = await service.access.check(authorization, Scope.client)
    answered = await service.answer(body, caller=caller.key_id)
    response.headers.update(await service.budget_headers(caller.key_id))
    return answered


@router.post(
    "/v1/route",
    response_model=RouteDecision,
    responses={422: {"model": ErrorBody}, 429: {"model": ErrorBody}},
)
async def route(body: QueryRequest, service: Replica, authorization: AuthHeader = None) -> RouteDecision:
    """Where the query would go and why: intent weights, every candidate with τ, η and p, the set chosen,
    the fallbacks. Nothing is dispatched, charged or learnt from."""
    caller = await service.access.check(authorization, Scope.client)
    return await service.decide(body, caller.key_id)
