"""The official openai client, unchanged, against swarm_route on real Ray Serve."""

import uuid

import openai
import pytest

from tests.conftest import ADMIN_KEY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(service):
    return openai.OpenAI(base_url=f"{service.url}/v1", api_key=ADMIN_KEY, max_retries=0)


def test_models_list_auto_and_every_agent(client):
    ids = {m.id for m in client.models.list()}
    assert {"swarm-route/auto", "calculator", "clock", "pydoc"} <= ids


def test_auto_routes_and_reports_usage_and_trace(client):
    r = client.chat.completions.create(
        model="swarm-route/auto",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is 6 * 7"}],
    )
    assert r.choices[0].message.content.endswith("= 42") and r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0
    trace = r.model_extra["swarm_route"]
    assert trace["agents"] == ["calculator"] and "Chose calculator" in trace["trace"]["reasoning"]


def test_an_agent_name_addresses_it_directly(client):
    r = client.chat.completions.create(model="clock", messages=[{"role": "user", "content": "time in Tokyo"}])
    assert "Asia/Tokyo" in r.choices[0].message.content
    assert r.model_extra["swarm_route"]["agents"] == ["clock"]


def test_streaming_yields_the_same_answer(client):
    messages = [{"role": "user", "content": "what does itertools.groupby do"}]
    whole = client.chat.completions.create(model="swarm-route/auto", messages=messages)
    chunks = list(client.chat.completions.create(model="swarm-route/auto", messages=messages, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].usage.total_tokens > 0


def test_a_streaming_agents_own_stream_is_passed_through(client, service, openai_server):
    import httpx

    name = f"storyteller-{uuid.uuid4().hex[:6]}"
    spec = {
        "name": name,
        "description": "Tells short stories.",
        "kind": "openai",
        "endpoint": openai_server.base_url,
        "models": [{"name": "echo-1"}],
        "skills": [{"name": name, "examples": ["tell me a story about a fox", "a bedtime story please"]}],
    }
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert httpx.post(f"{service.url}/v1/agents", json=spec, headers=headers).status_code == 201
    question = "tell me a story about a brave little owl"
    chunks = list(
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": question}], stream=True)
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == f"[echo-1] you asked: {question}"
    assert len(pieces) == len(pieces[0].split()) + len("".join(pieces[1:]).split()), "one chunk per word, as written"
    assert openai_server.app.state.requests[-1]["stream"] is True, "the agent was asked to stream"
    final = chunks[-1].model_extra["swarm_route"]
    assert chunks[-1].choices[0].finish_reason == "stop" and final["agents"] == [name]
    assert chunks[0].id == chunks[-1].id == f"chatcmpl-{final['request_id']}"


def test_bad_requests_raise_the_clients_own_errors(client):
    with pytest.raises(openai.NotFoundError, match="no model"):
        client.chat.completions.create(model="gpt-nope", messages=[{"role": "user", "content": "hi"}])
    for stream in (False, True):  # a stream that cannot start is an error response, not an empty stream
        with pytest.raises(openai.UnprocessableEntityError, match="query: is 9000 characters"):
            client.chat.completions.create(
                model="swarm-route/auto", messages=[{"role": "user", "content": "x" * 9000}], stream=stream
            )
    with pytest.raises(openai.UnprocessableEntityError, match="user message"):
        client.chat.completions.create(model="swarm-route/auto", messages=[{"role": "system", "content": "x"}])


def test_a_client_without_a_key_is_refused(service):
    anonymous = openai.OpenAI(base_url=f"{service.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="unknown API key"):
        anonymous.models.list()
