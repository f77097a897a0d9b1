"""API keys' spend: what each key has spent today and this month, what its requests in flight hold, and what
its budget leaves. Admins read every key and reset one; a client reads its own (``me``)."""

from fastapi import APIRouter

from swarm_route.api.access import Scope
from swarm_route.api.errors import ApiError
from swarm_route.api.routes import AuthHeader, Replica
from swarm_route.api.schemas import ErrorBody, KeySpend
from swarm_route.core.spend import ANONYMOUS

router = APIRouter(tags=["keys"])
NOT_FOUND = {404: {"model": ErrorBody}}


async def _known(service: Replica, key_id: str) -> str:
    """``key_id`` if a key is configured under it or it has been charged; else a 404."""
    if key_id not in service.api_keys and key_id not in await service.ledger.known():
        raise ApiError(404, f"no key with id {key_id!r}")
    return key_id


async def _spend(service: Replica, key_id: str) -> KeySpend:
    configured = service.api_keys.get(key_id)
    report = await service.ledger.report(key_id)
    return KeySpend(**report.model_dump(), admin=configured.admin if configured else None)


@router.get("/v1/keys", response_model=list[KeySpend])
async def list_keys(service: Replica, authorization: AuthHeader = None) -> list[KeySpend]:
    """Every configured key and every key id that has been charged (a removed key, ``anonymous`` for an
    open API), by id: the keys themselves are never shown."""
    await service.access.check(authorization, Scope.admin)
    ids = sorted(set(service.api_keys) | set(await service.ledger.known()))
    return [await _spend(service, i) for i in ids]


@router.get("/v1/keys/{key_id}/spend", response_model=KeySpend, responses=NOT_FOUND)
async def key_spend(key_id: str, service: Replica, authorization: AuthHeader = None) -> KeySpend:
    """``me`` is the calling key; a client key may read only its own."""
    caller = await service.access.check(authorization, Scope.client)
    if key_id == "me":
        key_id = caller.key_id or ANONYMOUS
    elif not caller.admin and service.access.enabled and key_id != caller.key_id:
        raise ApiError(403, "a client key may read only its own spend (use 'me')")
    return await _spend(service, await _known(service, key_id))


@router.delete("/v1/keys/{key_id}/spend", response_model=KeySpend, responses=NOT_FOUND)
async def reset_spend(key_id: str, service: Replica, authorization: AuthHeader = None) -> KeySpend:
    """Forget what the key spent today and this month (requests in flight keep their holds)."""
    await service.access.check(authorization, Scope.admin)
    await service.ledger.reset(await _known(service, key_id))
    return await _spend(service, key_id)
