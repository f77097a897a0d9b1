"""The FastAPI application: the routers and the error handlers, around one replica's ``Service``."""

from fastapi import FastAPI

from swarm_route.api import errors
from swarm_route.api.routes import agents, health, learning, openai, query
from swarm_route.api.service import Service


def create_app(service: Service | None = None) -> FastAPI:
    """The app a replica serves; without a service, only for its OpenAPI spec."""
    app = FastAPI(
        title="swarm_route",
        version="0.1.0",
        description="Routes each query to the cheapest agent path that answers it well, and shows why.",
    )
    for module in (query, openai, agents, learning, health):
        app.include_router(module.router)
    errors.install(app)
    app.state.service = service
    return app
