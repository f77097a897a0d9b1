import pytest

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
        api_key_env="TEST_LLM_KEY",
    )


async def test_chat_completion_through_the_real_client(openai_server, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    a = await OpenAIBackend(timeout_s=5).answer(spec(openai_server.base_url, "echo-1"), "echo-1", "hi there")
    assert a.text == "[echo-1] you asked: hi there"
    assert (a.prompt_tokens, a.completion_tokens) == (10, 20) and a.cost_usd == pytest.approx(30 * 2.0 / 1000)
    sent = openai_server.app.state.requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "You answer briefly."}


async def test_server_errors_are_retryable_and_refused_connections_too(openai_server):
    with pytest.raises(AgentError) as err:
        await OpenAIBackend(timeout_s=5).answer(spec(openai_server.base_url, "broken"), "broken", "q")
    assert err.value.retryable and "HTTP 500" in str(err.value)
    with pytest.raises(AgentError) as err:
        await OpenAIBackend(timeout_s=2).answer(spec("http://127.0.0.1:9/v1", "m"), "m", "q")
    assert err.value.retryable


async def test_redirects_are_not_followed(openai_server):
    with pytest.raises(AgentError, match="HTTP 307") as err:
        await OpenAIBackend(timeout_s=5).answer(spec(openai_server.base_url, "redirect"), "redirect", "q")
    assert not err.value.retryable
