"""What the colony learns from and what it has learnt: feedback, pheromone trails, the updater."""

from fastapi import APIRouter

from swarm_route.api.access import Scope
from swarm_route.api.errors import ApiError
from swarm_route.api.routes import AuthHeader, Replica
from swarm_route.api.schemas import ErrorBody, FeedbackAccepted, FeedbackRequest, Trails, UpdaterState

router = APIRouter(tags=["learning"])


@router.post(
    "/v1/feedback",
    response_model=FeedbackAccepted,
    status_code=202,
    responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def feedback(body: FeedbackRequest, service: Replica, authorization: AuthHeader = None) -> FeedbackAccepted:
    caller = await service.access.check(authorization, Scope.client)
    await service.feedback(body.request_id, body.score, caller)
    return FeedbackAccepted(request_id=body.request_id)


@router.get("/v1/pheromones", response_model=list[str])
async def intents(service: Replica, authorization: AuthHeader = None) -> list[str]:
    """Every intent that agents serve or that has trails."""
    await service.access.check(authorization, Scope.admin)
    return sorted(await _known(service))


async def _known(service: Replica) -> set[str]:
    return {t for a in await service.registry.all() for t in a.intents()} | set(await service.pheromones.intents())


@router.get("/v1/pheromones/{intent}", response_model=Trails, responses={404: {"model": ErrorBody}})
async def pheromones(intent: str, service: Replica, authorization: AuthHeader = None) -> Trails:
    await service.access.check(authorization, Scope.admin)
    p = service.pheromones
    known = await _known(service)
    if intent not in known:
        raise ApiError(404, f"no intent {intent!r}; known: {', '.join(sorted(known)) or 'none'}")
    trails, on_trial = await p.trails(intent), await p.on_trial(intent)
    return Trails(
        intent=intent, tau_init=p.tau_init, tau_min=p.tau_min, tau_max=p.tau_max, trails=trails, on_trial=on_trial
    )


@router.get("/v1/updater/state", response_model=UpdaterState)
async def updater_state(service: Replica, authorization: AuthHeader = None) -> UpdaterState:
    await service.access.check(authorization, Scope.admin)
    return UpdaterState(enabled=not await service.read_paused())


@router.put("/v1/updater/state", response_model=UpdaterState)
async def set_updater_state(body: UpdaterState, service: Replica, authorization: AuthHeader = None) -> UpdaterState:
    """Pause or resume learning for every ingress replica (within a second): while paused, finished
    requests are not published, so trails and ability stay as they are. Feedback is still accepted."""
    await service.access.check(authorization, Scope.admin)
    await service.set_learning(body.enabled)
    return body


@router.get("/v1/updater/stats")
async def updater_stats(service: Replica, authorization: AuthHeader = None) -> dict[str, int]:
    """Counters of the quality-gated updater: finished, graded, rejected, deposited, feedback, …"""
    await service.access.check(authorization, Scope.admin)
    return await service.updater_stats()
