import pytest

from swarm_route.agents import NO_ANSWER
from swarm_route.agents.openai_agent import OpenAIBackend
from swarm_route.core.messages import AgentError
from swarm_route.core.registry import AgentSpec


def spec(base_url: str, model: str, price: float = 2.0) -> AgentSpec:
    return AgentSpec(
        name="llm",
        description="You answer briefly.",
        kind="openai",
        endpoint=base_url,
        models=[{"name": model, "cost_per_1k_tokens": price}],
        api_key_env="SWARM_AGENT_KEY_TEST",
    )


async def test_chat_completion_through_the_real_client(openai_server, monkeypatch):
    monkeypatch.setenv("SWARM_AGENT_KEY_TEST", "sk-test")
    a = await OpenAIBackend(timeout_s=5).answer(spec(openai_server.base_url, "echo-1"), "echo-1", "hi there")
    assert a.text == "[echo-1] you asked: hi there"
    assert (a.prompt_tokens, a.completion_tokens) == (10, 20) and a.cost_usd == pytest.approx(30 * 2.0 / 1000)
    sent = openai_server.app.state.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "You answer briefly."}


async def test_an_agent_asked_one_part_reads_the_whole_message_as_context(openai_server, monkeypatch):
    monkeypatch.setenv("SWARM_AGENT_KEY_TEST", "sk-test")
    whole = "book a flight to Rome and tell me the weather there"
    a = await OpenAIBackend(timeout_s=5).answer(
        spec(openai_server.base_url, "echo-1"), "echo-1", "tell me the weather there", whole
    )
    assert a.text == "[echo-1] you asked: tell me the weather there", "the user turn is the part alone"
    system = openai_server.app.state.requests[-1]["messages"][0]["content"]
    assert system.startswith("You answer briefly.") and whole in system and "only the part" in system


async def test_server_errors_are_retryable_and_refused_connections_too(openai_server, caplog):
    with pytest.raises(AgentError) as err:
        await OpenAIBackend(timeout_s=5).answer(spec(openai_server.base_url, "broken"), "broken", "q")
    assert err.value.retryable and "HTTP 500" in caplog.text
    with pytest.raises(AgentError) as refused:
        await OpenAIBackend(timeout_s=2).answer(spec("http://127.0.0.1:9/v1", "m"), "m", "q")
    assert refused.value.retryable
    # a closed port and a listening one read the same to the caller: the service is no port scanner
    assert str(err.value) == str(refused.value) == NO_ANSWER


async def test_redirects_are_not_followed(openai_server, caplog):
    with pytest.raises(AgentError, match="no answer") as err:
        await OpenAIBackend(timeout_s=5).answer(spec(openai_server.base_url, "redirect"), "redirect", "q")
    assert not err.value.retryable and "HTTP 307" in caplog.text


async def test_only_an_agent_key_variable_is_ever_sent(openai_server, monkeypatch):
    monkeypatch.setenv("SWARM_AGENT_KEY_TEST", "sk-agent")
    monkeypatch.setenv("SWARM_AUTH__ADMIN_KEYS", '["the-service-admin-key"]')
    backend = OpenAIBackend(timeout_s=5)
    await backend.answer(spec(openai_server.base_url, "echo-1"), "echo-1", "hi")
    assert openai_server.app.state.keys[-1] == "sk-agent"
    with pytest.raises(ValueError, match="SWARM_AGENT_KEY_"):
        AgentSpec(**{**spec(openai_server.base_url, "echo-1").model_dump(), "api_key_env": "SWARM_AUTH__ADMIN_KEYS"})
    # a spec stored under older, looser rules: the backend still refuses to read the service's variable
    old = spec(openai_server.base_url, "echo-1").model_copy(update={"api_key_env": "SWARM_AUTH__ADMIN_KEYS"})
    await backend.answer(old, "echo-1", "hi")
    assert "the-service-admin-key" not in openai_server.app.state.keys[-1]
