"""``POST /v1/query``: the routed answer with its cost and the evidence for the route."""

from fastapi import APIRouter

from swarm_route.api.access import Scope
from swarm_route.api.routes import AuthHeader, Replica
from swarm_route.api.schemas import ErrorBody, QueryRequest
from swarm_route.core.messages import QueryResponse

router = APIRouter(tags=["query"])


@router.post("/v1/query", response_model=QueryResponse, responses={422: {"model": ErrorBody}})
async def query(body: QueryRequest, service: Replica, authorization: AuthHeader = None) -> QueryResponse:
    caller = await service.access.check(authorization, Scope.client)
    return await service.answer(body, caller=caller.key_id)
