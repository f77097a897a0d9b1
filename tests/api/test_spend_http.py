"""Per-key spend and budgets over HTTP, through a second copy of the app whose ingress has two replicas."""

import asyncio
import json
import time
import uuid

import httpx
import pytest
from ray import serve

from swarm_route.cli import main
from swarm_route.config import Settings
from swarm_route.serve.app import build_app
from tests.api.test_http import llm_agent
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

CAPPED_KEY = "capped-test-key-0123456789"  # admin scope: the session's rate limit must not be what refuses
CLIENT = "client-two-key-0123456789"
DAILY_USD = 0.1
WARM = {"Authorization": "Bearer warm-two-key-0123456789"}  # an admin key without budget
PRICE = 0.01  # $ per 1k tokens: `verbose` answers with 1,010 tokens ($0.0101), a router expects ~310 ($0.0031)


@pytest.fixture(scope="module")
def two(service, redis_server):
    """The app again, as a second Serve application on the same Ray, with two ingress replicas."""
    settings = Settings(
        redis_url=redis_server.url,
        namespace=f"two{uuid.uuid4().hex[:6]}",
        serve={"max_ongoing_requests": 64, "ingress_replicas": 2, "app_name": "two"},
        dispatch={"timeout_s": 5.0, "retries": 0},
        auth={
            "keys": [
                {"id": "capped", "key": CAPPED_KEY, "admin": True, "budget": {"daily_usd": DAILY_USD}},
                {"id": "team-b", "key": CLIENT, "budget": {"per_request_usd": 0.001}},
                {"id": "warm", "key": WARM["Authorization"].removeprefix("Bearer "), "admin": True},
            ]
        },
        agent_policy={"allow_networks": ["127.0.0.0/8"]},
    )
    serve.run(build_app(settings), name="two", route_prefix="/two", blocking=False)
    url = f"{service.url}/two"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    else:
        raise AssertionError("the second app did not become ready")
    yield url
    serve.delete("two")


def replicas_running(app: str, deployment: str) -> int:
    status = serve.status().applications[app].deployments[deployment]
    return status.replica_states.get("RUNNING", 0)


def register_and_learn(two: str, agent: dict, query: dict) -> None:
    """Register, and wait until both replicas' classifiers route the query to it (asked by a key without budget):
    a replica refits after it sees the new agent, so one sequence of queries landing on one replica proves
    nothing of the other."""
    assert httpx.post(f"{two}/v1/agents", json=agent, headers=WARM, timeout=30).status_code == 201

    async def burst() -> list[httpx.Response]:  # at once, so the proxy spreads them over both replicas
        async with httpx.AsyncClient(base_url=two, headers=WARM, timeout=30) as client:
            return await asyncio.gather(*(client.post("/v1/query", json=query) for _ in range(12)))

    def routed() -> bool:
        return all(r.json()["agents"] == [agent["name"]] for r in asyncio.run(burst()))

    wait_for(routed, timeout_s=60)


def test_a_budget_holds_under_64_concurrent_requests_through_two_replicas(two, openai_server):
    """64 requests at once against $0.10 a day through two ingress replicas. Each answer costs ~3x what the
    router expects (so what was held for it), the worst case for a budget: the key is charged at most its
    budget plus what the answers in flight cost beyond their holds, and every refusal is a 429 naming the
    daily budget and when it resets."""
    assert replicas_running("two", "Ingress") == 2
    admin = {"Authorization": f"Bearer {CAPPED_KEY}"}
    skill = f"ledger{uuid.uuid4().hex[:6]}"
    examples = ["a ledger question about debits", "a ledger question about credits", "ledger balance question"]
    agent = llm_agent(openai_server, f"bookkeeper-{skill}", skill, examples, model="verbose", price=PRICE)
    query = {"query": "a ledger question about debits and credits", "max_agents": 1}
    register_and_learn(two, agent, query)

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=two, headers=admin, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/query", json=query) for _ in range(64)))

    replies = asyncio.run(fire())
    answered = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code != 200]
    assert answered and refused, [r.status_code for r in replies]
    strays = [(r.json()["agents"], r.json()["declined"], r.json()["trace"]["attempts"]) for r in answered]
    assert all(a == [agent["name"]] for a, _, _ in strays), [s for s in strays if s[0] != [agent["name"]]]
    for r in refused:
        assert r.status_code == 429 and "daily budget of $0.1 of key 'capped'" in r.json()["error"], r.text
        assert int(r.headers["Retry-After"]) > 0 and r.json()["detail"][0]["budget"] == "daily"
    spend = httpx.get(f"{two}/v1/keys/capped/spend", headers=admin, timeout=30).json()
    charged = sum(r.json()["cost_usd"] for r in answered)
    assert spend["spent_usd"]["daily"] == pytest.approx(charged) and spend["held_usd"] == 0
    beyond = 0.0  # what answers cost beyond what was held for them (their expected cost)
    for r in answered:
        body = r.json()
        held = sum(body["trace"]["candidates"][i]["expected_cost_usd"] for i in body["trace"]["chosen"])
        beyond += max(0.0, body["cost_usd"] - held)
    assert charged > DAILY_USD, "the answers cost more than expected: this run must test the overshoot"
    assert charged <= DAILY_USD + beyond + 1e-9, (charged, beyond)
    assert "X-Budget-Remaining-Daily-Usd" in answered[-1].headers

    # the admin reads every key by id (never the key itself) and may start the day afresh
    listed = httpx.get(f"{two}/v1/keys", headers=admin, timeout=30).json()
    assert {k["key_id"] for k in listed} >= {"capped", "team-b", "warm"} and CAPPED_KEY not in str(listed)
    reset = httpx.delete(f"{two}/v1/keys/capped/spend", headers=admin, timeout=30).json()
    assert reset["spent_usd"]["daily"] == 0 and reset["remaining_usd"]["daily"] == DAILY_USD


def test_a_per_request_cap_below_the_path_is_a_402_and_clients_read_only_their_own_spend(two, openai_server):
    client = {"Authorization": f"Bearer {CLIENT}"}
    skill = f"audit{uuid.uuid4().hex[:6]}"
    examples = ["an audit question about invoices", "audit the invoices question", "invoice audit question"]
    agent = llm_agent(openai_server, f"auditor-{skill}", skill, examples, price=PRICE)
    query = {"query": "an audit question about invoices", "max_agents": 1}
    register_and_learn(two, agent, query)
    r = httpx.post(f"{two}/v1/query", json=query, headers=client, timeout=30)
    assert r.status_code == 402 and "per-request budget of $0.001 of key 'team-b'" in r.json()["error"], r.text
    assert "Retry-After" not in r.headers
    mine = httpx.get(f"{two}/v1/keys/me/spend", headers=client, timeout=30).json()
    assert mine["key_id"] == "team-b" and mine["budget"]["per_request_usd"] == 0.001
    assert httpx.get(f"{two}/v1/keys/capped/spend", headers=client, timeout=30).status_code == 403
    assert httpx.get(f"{two}/v1/keys", headers=client, timeout=30).status_code == 403
    admin = {"Authorization": f"Bearer {CAPPED_KEY}"}
    for method in ("GET", "DELETE"):  # an id no key has, nor was ever charged
        assert httpx.request(method, f"{two}/v1/keys/nobody/spend", headers=admin, timeout=30).status_code == 404


def test_the_command_line_reads_and_resets_spend(two, capsys):
    assert main(["keys", "spend", "--url", two, "--key", CLIENT]) == 0
    assert json.loads(capsys.readouterr().out)["key_id"] == "team-b"
    assert main(["keys", "list", "--url", two, "--key", CLIENT]) == 1  # a client may not list every key
    capsys.readouterr()
    assert main(["keys", "reset", "capped", "--url", two, "--key", CAPPED_KEY]) == 0
    assert json.loads(capsys.readouterr().out)["spent_usd"]["daily"] == 0
