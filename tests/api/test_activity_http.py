"""What the console reads, over HTTP: the dry run, recent decisions, per-minute totals, agent status, pausing."""

import uuid

import httpx
import pytest

from tests.api.test_http import llm_agent
from tests.conftest import ADMIN_KEY, CLIENT_KEY
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def agents(candidate: dict) -> list[str]:
    return [hop["agent"] for hop in candidate["path"]]


@pytest.fixture(scope="module")
def http(service):
    with httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
        yield c


def test_a_dry_run_routes_without_answering_or_recording(http):
    before = http.get("/v1/activity/overview", params={"minutes": 2}).json()["requests"]
    d = http.post("/v1/route", json={"query": "what is 17 * 3"}).json()
    assert agents(d["candidates"][d["chosen"][0]]) == ["calculator"] and not d["declined"]
    assert {"tau", "eta", "probability"} <= set(d["candidates"][0])
    assert http.get("/v1/activity/overview", params={"minutes": 2}).json()["requests"] == before


def test_recent_decisions_and_totals_are_shared_through_the_store(http):
    r = http.post("/v1/query", json={"query": "what is 12 * 12"}).json()
    found = wait_for(lambda: http.get(f"/v1/activity/decisions/{r['request_id']}").json().get("trace"))
    assert found["chosen"] == r["trace"]["chosen"] and found["stages_ms"]
    listed = http.get("/v1/activity/decisions", params={"limit": 5}).json()
    assert any(d["request_id"] == r["request_id"] and d["agents"] == ["calculator"] for d in listed)
    overview = http.get("/v1/activity/overview", params={"minutes": 5}).json()
    assert overview["requests"] >= 1 and overview["per_agent"]["calculator"] >= 1
    assert overview["latency_p50_ms"] is not None and len(overview["per_minute"]) == 5
    assert http.get("/v1/activity/decisions/nope").status_code == 404


def test_the_console_data_is_for_admins(service):
    with httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as c:
        for path in ("/v1/activity/overview", "/v1/activity/decisions", "/v1/activity/agents", "/v1/pheromones"):
            assert c.get(path).status_code == 403, path


def test_a_paused_agent_is_left_out_until_resumed(http, openai_server):
    skill = f"origami{uuid.uuid4().hex[:6]}"  # a topic no other test's agents touch: they share the registry
    examples = ["how to fold a paper crane", "origami boat folding steps", "fold an origami frog from paper"]
    name = f"folder-{skill}"
    assert http.post("/v1/agents", json=llm_agent(openai_server, name, skill, examples)).status_code == 201
    try:
        paused_then_resumed(http, name, skill, openai_server.base_url)
    finally:
        http.delete(f"/v1/agents/{name}")


def paused_then_resumed(http, name: str, skill: str, endpoint: str) -> None:
    query = {"query": "how do I fold a paper crane with origami", "max_agents": 1}
    wait_for(lambda: http.post("/v1/route", json=query).json()["chosen"])
    paused = http.put(f"/v1/agents/{name}/state", json={"enabled": False}).json()
    assert paused["paused"] is True
    d = http.post("/v1/route", json=query).json()
    assert all(c["excluded"] == "paused by an operator" for c in d["candidates"] if agents(c) == [name])
    assert not any(agents(d["candidates"][i]) == [name] for i in d["chosen"])
    status = {a["name"]: a for a in http.get("/v1/activity/agents").json()}
    assert status["calculator"]["replicas"][0]["in_flight"] == 0 and status["calculator"]["models"]
    assert status[name]["paused"] and status[name]["replicas"][0]["endpoint"] == endpoint
    assert skill in http.get("/v1/pheromones").json()
    http.put(f"/v1/agents/{name}/state", json={"enabled": True})
    d = http.post("/v1/route", json=query).json()
    assert agents(d["candidates"][d["chosen"][0]]) == [name]
    assert http.put("/v1/agents/nobody/state", json={"enabled": True}).status_code == 404
