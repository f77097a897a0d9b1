"""The HTTP surface, one router per audience: queries, the OpenAI-compatible API, the agent registry,
learning (feedback, trails, the updater) and health. Each route authenticates, validates, calls the
replica's ``Service`` and shapes the reply. No ``from __future__ import annotations`` in these modules:
FastAPI reads the endpoints' real annotations."""

from typing import Annotated

from fastapi import Depends, Header, Request

from swarm_route.api.service import Service


async def _service(request: Request) -> Service:
    """Async: FastAPI runs a plain function dependency in a worker thread, a hop per request."""
    return request.app.state.service


Replica = Annotated[Service, Depends(_service)]
AuthHeader = Annotated[str | None, Header(description="Bearer <API key>, when keys are configured")]
