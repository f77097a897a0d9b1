"""API keys, scopes and the per-key rate limit: the core against Redis, then over HTTP."""

import httpx
import pytest

from swarm_route.api.access import AccessControl, AccessDenied, Scope
from swarm_route.config import AuthSettings
from tests.conftest import ADMIN_KEY, CLIENT_KEY


async def test_open_when_no_key_is_configured(redis_client, keys):
    await AccessControl(redis_client, keys, [], 1).check(None, Scope.admin)


async def test_scopes_and_limit(redis_client, keys):
    root, user = "root-key-0123456789", "user-key-0123456789"
    named = AuthSettings(admin_keys=[root], client_keys=[user]).named()
    access = AccessControl(redis_client, keys, named.values(), rate_per_minute=3)
    assert (await access.check(f"Bearer {root}", Scope.admin)).admin
    for status, header, scope in [
        (401, None, Scope.client),
        (401, f"Basic {root}", Scope.client),
        (401, "Bearer nope", Scope.client),
        (403, f"Bearer {user}", Scope.admin),
    ]:
        with pytest.raises(AccessDenied) as denied:
            await access.check(header, scope)
        assert denied.value.status == status
    for _ in range(3):
        await access.check(f"Bearer {user}", Scope.client)
    with pytest.raises(AccessDenied) as denied:
        await access.check(f"Bearer {user}", Scope.client)
    assert denied.value.status == 429 and 0 < denied.value.retry_after <= 60
    for _ in range(10):
        await access.check(f"Bearer {root}", Scope.admin)  # admin keys are not limited
    assert not [k for k in await redis_client.keys(f"{keys.namespace}:*") if user in k or root in k]


@pytest.mark.integration
def test_keys_and_scopes_over_http(service):
    with httpx.Client(base_url=service.url, timeout=30) as http:
        r = http.post("/v1/query", json={"query": "what is 2 * 3"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert http.get("/healthz").status_code == 200  # probes need no key
        client = {"Authorization": f"Bearer {CLIENT_KEY}"}
        spec = {"name": "x", "description": "d", "kind": "builtin", "endpoint": "clock", "models": [{"name": "m"}]}
        assert http.post("/v1/agents", json=spec, headers=client).status_code == 403
        assert http.get("/v1/pheromones/arithmetic", headers=client).status_code == 403
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert http.get("/v1/pheromones/arithmetic", headers=admin).status_code == 200
        # 45 calls against a limit of 20 a minute: whichever minute windows they fall in, one overflows
        responses = [http.get("/v1/agents", headers=client) for _ in range(45)]
        limited = [r for r in responses if r.status_code == 429]
        assert any(r.status_code == 200 for r in responses) and limited
        assert "rate limit" in limited[0].json()["error"] and 0 < int(limited[0].headers["retry-after"]) <= 60
