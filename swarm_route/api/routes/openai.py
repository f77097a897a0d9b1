"""The OpenAI-compatible API: the official ``openai`` client works unchanged against these two routes."""

import asyncio
import uuid
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from swarm_route.api.access import Scope
from swarm_route.api.errors import ApiError
from swarm_route.api.openai_compat import AUTO_MODEL, ChatRequest, ModelCard, ModelList, chat_completion, stream_chunks
from swarm_route.api.routes import AuthHeader, Replica
from swarm_route.api.schemas import ErrorBody, QueryRequest

router = APIRouter(tags=["openai"])


@router.get("/v1/models", response_model=ModelList)
async def models(service: Replica, authorization: AuthHeader = None) -> ModelList:
    await service.access.check(authorization, Scope.client)
    names = [AUTO_MODEL, *(a.name for a in await service.registry.all())]
    return ModelList(data=[ModelCard(id=n) for n in names])


@router.post("/v1/chat/completions", responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def chat_completions(
    body: ChatRequest, service: Replica, response: Response, authorization: AuthHeader = None
) -> Any:
    """``swarm-route/auto`` routes, an agent's name addresses it directly; the route trace rides along as
    the extra field ``swarm_route``."""
    caller = await service.access.check(authorization, Scope.client)
    agent = None
    if body.model != AUTO_MODEL:
        if body.model not in (await service.registry.snapshot())[1]:  # fails open on the last snapshot
            raise ApiError(404, f"no model {body.model!r}: use {AUTO_MODEL!r} or an agent from GET /v1/models")
        agent = body.model
    request = QueryRequest(query=body.query(), budget_usd=body.budget_usd, max_agents=body.max_agents)
    if not body.stream:
        answered = await service.answer(request, agent, caller=caller.key_id)
        response.headers.update(await service.budget_headers(caller.key_id))
        return chat_completion(body, answered)
    deltas: asyncio.Queue[str | None] = asyncio.Queue()
    request_id = uuid.uuid4().hex
    walk = asyncio.create_task(
        service.answer(request, agent, on_delta=deltas.put_nowait, request_id=request_id, caller=caller.key_id)
    )
    walk.add_done_callback(lambda _: deltas.put_nowait(None))
    first = await deltas.get()
    if first is None:
        walk.result()  # an error before any text (say, a budget too low) is an HTTP error, not a stream
    return StreamingResponse(
        stream_chunks(body, request_id, first, deltas, walk),
        media_type="text/event-stream",
        headers={"x-swarm-route-request-id": request_id, **await service.budget_headers(caller.key_id)},
    )
