"""The FastAPI application: the routers and the error handlers, around one replica's ``Service``."""

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from swarm_route.api import errors
from swarm_route.api.limits import BodyLimit
from swarm_route.api.routes import activity, agents, console, health, keys, learning, openai, query
from swarm_route.api.service import Service
from swarm_route.core.reachability import VIA_HEADER, came_from, service_id


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
        me = service_id(service.settings.namespace, service.settings.redis_url)

        @app.middleware("http")
        async def refuse_loops(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            """A call one of our own agents made that came back here (an agent whose endpoint is this
            service): answering it would send it out again, without end."""
            if came_from(request.headers.get(VIA_HEADER, ""), me):
                return errors.loop_detected(request)
            return await call_next(request)

        app.add_middleware(BodyLimit, max_bytes=service.settings.limits.max_body_bytes)  # added last: outermost

    return app
