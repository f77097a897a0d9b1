"""The FastAPI application: the routers and the error handlers, around one replica's ``Service``."""

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from swarm_route.api import errors
from swarm_route.api.limits import BodyLimit
from swarm_route.api.routes import activity, agents, console, health, keys, learning, openai, query
from swarm_route.api.service import Service
from swarm_route.core.reachability import VIA_HEADER, came_from, service_id


class RefuseLoops:
    """A call one of our own agents made that came back here (an agent whose endpoint is this service):
    answering it would send it out again, without end. Pure ASGI: Starlette's ``BaseHTTPMiddleware`` ran
    every request in a task group of its own, a tenth of the ingress's CPU under load."""

    def __init__(self, app: ASGIApp, me: str) -> None:
        self.app, self.me, self._header = app, me, VIA_HEADER.lower().encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            via = next((v for k, v in scope["headers"] if k == self._header), b"")
            if came_from(via.decode("latin-1"), self.me):
                await errors.loop_detected(Request(scope))(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(service: Service | None = None) -> FastAPI:
    """The app a replica serves; without a service, only for its OpenAPI spec."""
    app = FastAPI(
        title="swarm_route",
        version="0.1.0",
        description="Routes each query to the cheapest agent path that answers it well, and shows why.",
    )
    for module in (query, openai, agents, learning, keys, activity, console, health):
        app.include_router(module.router)
    errors.install(app)
    app.state.service = service
    if service is not None:
        app.add_middleware(RefuseLoops, me=service_id(service.settings.namespace, service.settings.redis_url))
        app.add_middleware(BodyLimit, max_bytes=service.settings.limits.max_body_bytes)  # added last: outermost

    return app
