"""The service end to end over HTTP, on real Ray Serve, a real Redis and a real OpenAI-compatible server."""

import csv
import os
import uuid

import httpx
import pytest

from tests.conftest import ADMIN_KEY, GRADER_KEY
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def http(service):
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=service.url, timeout=30, headers=headers) as client:
        yield client


def llm_agent(openai_server, name, skill, examples, model="echo-1", price=0.0):
    return {
        "name": name,
        "description": f"An LLM agent for {skill}.",
        "kind": "openai",
        "endpoint": openai_server.base_url,
        "models": [{"name": model, "cost_per_1k_tokens": price}],
        "skills": [{"name": skill, "description": skill, "examples": examples}],
    }


def test_health_readiness_and_docs(http):
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json()["agents"] >= 3
    assert http.get("/docs").status_code == 200
    assert "/v1/query" in http.get("/openapi.json").json()["paths"]


def test_default_pool_answers_with_a_full_trace(http):
    r = http.post("/v1/query", json={"query": "what is 6 * 7"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["answer"].endswith("= 42") and body["agents"] == ["calculator"] and not body["declined"]
    trace = body["trace"]
    assert trace["intent_weights"]["arithmetic"] > 0.5
    chosen = trace["candidates"][trace["chosen"][0]]
    assert chosen["path"] == [{"agent": "calculator", "model": "ast-eval"}]
    assert {"tau", "eta", "probability"} <= chosen.keys() and "Chose calculator" in trace["reasoning"]
    assert set(trace["stages_ms"]) == {"classify", "route", "dispatch", "aggregate"}
    other = http.post("/v1/query", json={"query": "what time is it in Tokyo"}).json()
    assert other["agents"] == ["clock"] and "Asia/Tokyo" in other["answer"]


def test_a_query_asking_two_things_gets_both_agents_each_asked_its_part(http):
    body = http.post("/v1/query", json={"query": "what time is it in Tokyo and what is 15% of 80"}).json()
    assert body["agents"] == ["clock", "calculator"], body["trace"]["reasoning"]
    parts = {s["agents"][0]: s["part"] for s in body["trace"]["selection"]}
    assert parts == {"clock": "what time is it in Tokyo", "calculator": "what is 15% of 80"}
    clock, calculator = body["answer"].split("\n\n")  # in the order the query asked, neither said to disagree
    assert "Asia/Tokyo" in clock and calculator.endswith("= 12") and not body["trace"]["conflicts"]


def test_out_of_scope_query_is_declined_politely(http):
    body = http.post("/v1/query", json={"query": "qwertyuiop zxcvbnm"}).json()
    assert body["declined"] and body["agents"] == [] and body["trace"]["out_of_scope"]
    assert "Sorry" in body["answer"]


def test_register_query_feedback_and_the_trail_moves(http, openai_server):
    skill = f"poetry{uuid.uuid4().hex[:6]}"
    spec = llm_agent(
        openai_server,
        f"poet-{skill}",
        skill,
        ["write a haiku about the sea", "compose a sonnet about love", "a limerick about a cat"],
    )
    assert http.post("/v1/agents", json=spec).status_code == 201
    assert http.get(f"/v1/agents/{spec['name']}").json()["endpoint"] == openai_server.base_url

    body = http.post("/v1/query", json={"query": "write a haiku about autumn leaves"}).json()
    assert body["agents"] == [spec["name"]], body["trace"]["reasoning"]
    assert body["answer"] == "[echo-1] you asked: write a haiku about autumn leaves"
    assert http.get(f"/v1/pheromones/{skill}").json()["trails"] == {}

    r = http.post("/v1/feedback", json={"request_id": body["request_id"], "score": 0.95})
    assert r.status_code == 202, r.text
    trails = wait_for(lambda: http.get(f"/v1/pheromones/{skill}").json()["trails"])
    node = f"{spec['name']}/echo-1"
    assert trails[f"source>{node}"] > 1.0 and trails[f"{node}>sink"] > 1.0
    assert http.get("/v1/updater/stats").json()["deposited"] >= 1

    rival = llm_agent(openai_server, f"rival-{skill}", skill, ["a haiku about the moon", "an ode to the sea"])
    assert http.post("/v1/agents", json=rival).status_code == 201
    seen = http.get(f"/v1/pheromones/{skill}").json()  # a newcomer: at the best trail, on trial
    assert seen["on_trial"] and all(rival["name"] in e for e in seen["on_trial"])
    assert all(seen["trails"][e] == max(trails.values()) for e in seen["on_trial"])

    assert http.delete(f"/v1/agents/{spec['name']}").status_code == 204
    after = http.post("/v1/query", json={"query": "write a haiku about autumn leaves"}).json()
    assert spec["name"] not in after["agents"]
    assert not any(spec["name"] in e for e in http.get(f"/v1/pheromones/{skill}").json()["trails"])
    assert http.delete(f"/v1/agents/{rival['name']}").status_code == 204  # its trial goes with it
    emptied = http.get(f"/v1/pheromones/{skill}").json()
    assert emptied["trails"] == {} and emptied["on_trial"] == {}


def test_low_feedback_takes_trail_away(http, openai_server):
    """A failing grade deposits nothing and takes the penalty off the path: its edges read below τ_init,
    where a path nothing was learnt of stands."""
    skill = f"cook{uuid.uuid4().hex[:6]}"
    spec = llm_agent(openai_server, f"chef-{skill}", skill, ["a recipe for pancakes", "how do I bake bread"])
    http.post("/v1/agents", json=spec)
    body = http.post("/v1/query", json={"query": "a recipe for lemon pancakes"}).json()
    assert body["agents"] == [spec["name"]]
    before = http.get("/v1/updater/stats").json().get("rejected", 0)
    http.post("/v1/feedback", json={"request_id": body["request_id"], "score": 0.1})
    wait_for(lambda: http.get("/v1/updater/stats").json().get("rejected", 0) > before)
    trails = wait_for(lambda: http.get(f"/v1/pheromones/{skill}").json()["trails"])
    node = f"{spec['name']}/echo-1"
    assert set(trails) == {f"source>{node}", f"{node}>sink"} and all(0 < t < 1.0 for t in trails.values()), trails


def test_replay_agent_learns_from_its_recorded_score_without_feedback(http, tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "quiz_train.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sample_id", "prompt", "eval_name", "m1", "m1|model_response", "m1|total_cost"])
        w.writerow(["q.1", "Which planet is known as the red planet? quiz", "quiz", "1.0", "Mars", "0.0001"])
    skill = f"quiz{uuid.uuid4().hex[:6]}"
    http.post(
        "/v1/agents",
        json={
            "name": f"replay-{skill}",
            "description": "astronomy quiz answers",
            "kind": "replay",
            "endpoint": str(path),
            "models": [{"name": "m1", "cost_per_1k_tokens": 0.0001}],
            "skills": [{"name": skill, "examples": ["Which planet is known as the red planet? quiz", "planet quiz"]}],
        },
    )
    body = http.post("/v1/query", json={"query": "Which planet is known as the red planet? quiz"}).json()
    assert body["answer"] == "Mars" and body["cost_usd"] == pytest.approx(0.0001)
    trails = wait_for(lambda: http.get(f"/v1/pheromones/{skill}").json()["trails"])
    assert max(trails.values()) > 1.0


def test_failing_agent_is_retried_then_failed_over(http, openai_server):
    skill = f"trivia{uuid.uuid4().hex[:6]}"
    examples = ["trivia question about history", "a trivia fact about rivers"]
    http.post("/v1/agents", json=llm_agent(openai_server, f"bad-{skill}", skill, examples, model="broken"))
    http.post("/v1/agents", json=llm_agent(openai_server, f"good-{skill}", skill, examples, price=5.0))
    # a high λ makes the free, broken agent the first choice; an exploring choice (5%) takes either newcomer
    # on trial instead, so a query may go to the good one directly: asked again, the broken one comes first
    for _ in range(5):
        body = http.post("/v1/query", json={"query": "trivia question about the nile", "cost_weight": 5}).json()
        assert body["agents"] == [f"good-{skill}"] and not body["declined"]
        attempts = body["trace"]["attempts"]
        bad = [a for a in attempts if a["agent"] == f"bad-{skill}"]
        if bad:
            break
    assert len(bad) == 2 and not any(a["ok"] for a in bad) and bad[0]["error"].startswith("no answer from the agent")
    assert attempts[-1]["ok"] and attempts[-1]["fallback"]


def test_new_agent_is_routable_by_the_next_query(http, openai_server):
    skill = f"garden{uuid.uuid4().hex[:6]}"
    query = "when should I prune my rose bushes"
    assert http.post("/v1/query", json={"query": query}).json()["agents"] == []
    http.post(
        "/v1/agents",
        json=llm_agent(
            openai_server, f"gardener-{skill}", skill, ["how do I prune roses", "when to plant tulip bulbs"]
        ),
    )
    assert http.post("/v1/query", json={"query": query}).json()["agents"] == [f"gardener-{skill}"]


def test_an_a2a_card_registers_an_agent_that_answers_the_next_query(http, a2a_server):
    tag = uuid.uuid4().hex[:6]
    card = {
        "name": f"Haiku Poet {tag}",
        "description": "Writes haiku poems about any topic",
        "url": a2a_server.url,
        "capabilities": {"streaming": False},
        "skills": [
            {
                "id": f"haiku-{tag}",
                "name": "Haiku",
                "description": "haiku poetry",
                "examples": ["write a haiku about autumn", "compose a haiku on the sea", "haiku about mountains"],
            }
        ],
    }
    r = http.post("/v1/agents", json=card)
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "a2a" and r.json()["name"] == f"Haiku_Poet_{tag}"
    body = http.post("/v1/query", json={"query": "write a haiku about winter snow"}).json()
    assert body["agents"] == [f"Haiku_Poet_{tag}"] and body["answer"] == "a2a says: write a haiku about winter snow"
    selection = body["trace"]["selection"]
    assert selection[0]["intent"] == f"haiku-{tag}" and selection[0]["llm_selected"] is None
    bad = http.post("/v1/agents", json={**card, "url": "http://evil.example.com/a2a"})
    assert bad.status_code == 422 and "not allowed" in bad.json()["error"]


@pytest.mark.parametrize(
    "path, body, status, words",
    [
        ("/v1/query", {}, 422, ["query", "required"]),
        ("/v1/query", {"query": ""}, 422, ["query"]),
        ("/v1/query", {"query": "x" * 9000}, 422, ["query", "at most"]),
        ("/v1/query", {"query": "hi", "max_agents": 50}, 422, ["max_agents"]),
        ("/v1/agents/calculator/invoke", {"query": "x" * 9000}, 422, ["query", "at most"]),
        ("/v1/agents/nobody/invoke", {"query": "2+2"}, 404, ["no agent named"]),
        ("/v1/query", {"query": "hi", "budget_usd": -1}, 422, ["budget_usd"]),
        ("/v1/query", {"query": "hi", "colour": "red"}, 422, ["colour"]),
        ("/v1/query", {"query": "what is 2 * 3", "budget_usd": 1e-12}, 200, []),
        ("/v1/feedback", {"request_id": "0" * 32, "score": 0.5}, 404, ["unknown request_id"]),
        ("/v1/feedback", {"request_id": "abc", "score": 0.5}, 422, ["request_id"]),
        ("/v1/feedback", {"request_id": "0" * 32, "score": 2}, 422, ["score"]),
        (
            "/v1/agents",
            {
                "name": "calculator",
                "description": "d",
                "kind": "builtin",
                "endpoint": "calculator",
                "models": [{"name": "m"}],
            },
            409,
            ["exists"],
        ),
        (
            "/v1/agents",
            {"name": "x y", "description": "d", "kind": "openai", "endpoint": "http://h/v1", "models": [{"name": "m"}]},
            422,
            ["name", "pattern"],
        ),
        (
            "/v1/agents",
            {
                "name": "xy",
                "description": "d",
                "kind": "openai",
                "endpoint": "file:///etc/passwd",
                "models": [{"name": "m"}],
            },
            422,
            ["endpoint", "http(s)"],
        ),
        (
            "/v1/agents",
            {"name": "nokind", "description": "d", "endpoint": "e", "models": [{"name": "m"}]},
            422,
            ["kind"],
        ),
        ("/v1/agents", {"name": "card", "description": "an A2A card without its url"}, 422, ["url"]),
    ],
)
def test_bad_input_gets_a_4xx_that_says_what_to_fix(http, path, body, status, words):
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    for word in words:
        assert word in r.json()["error"]


def test_unknown_things_are_404s(http):
    assert "no agent named" in http.get("/v1/agents/nobody").json()["error"]
    assert http.delete("/v1/agents/nobody").status_code == 404
    assert "known:" in http.get("/v1/pheromones/nothing-like-this").json()["error"]
    assert http.post("/v1/query", content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


def test_an_agent_whose_endpoint_is_this_service_is_refused_not_recursed(http, service):
    """Registered at the service's own OpenAI-compatible API, the agent's call comes back here carrying the
    service's via header and is refused at once (508) instead of being routed out again without end."""
    name = f"echo-self-{uuid.uuid4().hex[:6]}"
    me = {
        "name": name,
        "description": "This service, registered as an agent of itself.",
        "kind": "openai",
        "endpoint": f"{service.url}/v1",
        "models": [{"name": name, "cost_per_1k_tokens": 0.0}],
    }
    assert http.post("/v1/agents", json=me).status_code == 201
    try:
        reply = http.post(f"/v1/agents/{name}/invoke", json={"query": "hello"})
        assert reply.status_code == 502 and "508" in reply.json()["error"], reply.text
        direct = http.post(
            "/v1/chat/completions",
            json={"model": "swarm-route/auto", "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-swarm-route-via": "someone-else, another"},
        )
        assert direct.status_code == 200, "another swarm_route's via header is no loop"
    finally:
        http.delete(f"/v1/agents/{name}")


def test_a_replay_agent_reads_only_regular_files_under_the_allowed_folders(http, tmp_path_factory):
    """/dev/zero or a FIFO would hang a dispatch replica reading it; a file outside the folders could be
    anything. Every refusal reads the same, so the answer never tells whether a path exists."""
    folder = tmp_path_factory.mktemp("hostile")
    fifo = folder / "pipe.csv"
    os.mkfifo(fifo)
    refusals = set()
    for endpoint in ("/dev/zero", "/etc/passwd", "/no/such/file.csv", str(fifo), str(folder / "missing.csv")):
        reply = http.post(
            "/v1/agents",
            json={
                "name": f"replay-{uuid.uuid4().hex[:6]}",
                "description": "hostile",
                "kind": "replay",
                "endpoint": endpoint,
                "models": [{"name": "m1"}],
            },
        )
        assert reply.status_code == 422, (endpoint, reply.text)
        refusals.add(reply.json()["error"])
    assert len(refusals) == 1 and "replay files must be regular" in refusals.pop()


def test_a_request_is_graded_once_and_only_by_the_key_that_made_it(http, service):
    body = http.post("/v1/query", json={"query": "what is 11 * 11"}).json()  # made with the admin key
    rid = body["request_id"]
    before = http.get("/v1/updater/stats").json().get("feedback", 0)
    with httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {GRADER_KEY}"}) as other:
        denied = other.post("/v1/feedback", json={"request_id": rid, "score": 0.0})
        assert denied.status_code == 403 and "made this request" in denied.json()["error"]
        own = other.post("/v1/query", json={"query": "what is 12 * 12"}).json()["request_id"]
        assert other.post("/v1/feedback", json={"request_id": own, "score": 1.0}).status_code == 202
    assert http.post("/v1/feedback", json={"request_id": rid, "score": 0.9}).status_code == 202
    wait_for(lambda: http.get("/v1/updater/stats").json().get("feedback", 0) >= before + 2)  # both grades applied
    again = http.post("/v1/feedback", json={"request_id": rid, "score": 0.1})
    assert again.status_code == 409, again.text
    assert "first grade stands" in again.json()["error"]
    for score in ("NaN", "Infinity", "-0.5", "1.5"):
        bad = http.post(
            "/v1/feedback",
            content=f'{{"request_id": "{rid}", "score": {score}}}',
            headers={"content-type": "application/json"},
        )
        assert bad.status_code == 422 and "score" in bad.json()["error"], (score, bad.text)


def test_hostile_bodies_get_a_4xx_in_the_one_error_shape(http, service):
    big = b'{"query": "' + b"x" * 1_100_000 + b'"}'
    with httpx.Client(base_url=service.url, timeout=30) as anonymous:  # no key: refused before anything reads it
        declared = anonymous.post("/v1/query", content=big, headers={"content-type": "application/json"})
        assert declared.status_code == 413 and "too large" in declared.json()["error"]

        def chunks():
            for _ in range(40):
                yield b"x" * 50_000

        streamed = anonymous.post("/v1/agents", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413, "an undeclared (chunked) body is counted as it arrives"
    cases = [
        (b'{"query": "\\ud800 what is 2 + 2"}', 422, "query"),  # a lone surrogate
        (b"[" * 100_000 + b"]" * 100_000, 400, "nested too deeply"),
        (b'{"query": "hi", "max_agents": 1e400}', 422, "max_agents"),
    ]
    for content, status, words in cases:
        r = http.post("/v1/query", content=content, headers={"content-type": "application/json"})
        assert r.status_code == status and words in r.json()["error"], (content[:40], r.text[:200])
    missing = http.get("/v1/no-such-thing")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = http.put("/v1/query", json={"query": "hi"})
    assert wrong.status_code == 405 and "error" in wrong.json()
