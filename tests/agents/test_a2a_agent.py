import pytest

from swarm_route.agents.a2a_agent import A2ABackend
from swarm_route.core.messages import AgentError
from swarm_route.core.onboarding import AgentCard


def card_spec(url: str):  # type: ignore[no-untyped-def]
    card = {"name": "echo", "description": "echoes", "url": url, "costPer1kTokens": 1.0}
    return AgentCard.model_validate(card).to_spec()


async def test_message_and_task_answers_come_back_as_text(a2a_server):
    spec = card_spec(a2a_server.url)
    backend = A2ABackend(timeout_s=5)
    answer = await backend.answer(spec, spec.models[0].name, "hello")
    assert answer.text == "a2a says: hello" and answer.cost_usd > 0
    assert (await backend.answer(spec, spec.models[0].name, "task: sum")).text == "a2a says: task: sum"


async def test_a_part_carries_the_whole_message_as_metadata_not_as_text(a2a_server):
    spec = card_spec(a2a_server.url)
    whole = "book a flight to Rome and tell me the weather there"
    answer = await A2ABackend(timeout_s=5).answer(spec, spec.models[0].name, "tell me the weather there", whole)
    assert answer.text == f"a2a says: tell me the weather there (from: {whole})"


async def test_failures_are_classed_for_dispatch(a2a_server):
    spec = card_spec(a2a_server.url)
    backend = A2ABackend(timeout_s=5)
    with pytest.raises(AgentError) as server_error:
        await backend.answer(spec, spec.models[0].name, "boom")
    assert server_error.value.retryable
    with pytest.raises(AgentError) as rpc_error:
        await backend.answer(spec, spec.models[0].name, "rpc-error")
    assert not rpc_error.value.retryable and "-32601" in str(rpc_error.value)
    with pytest.raises(AgentError) as refused:
        await backend.answer(card_spec("http://127.0.0.1:9/a2a"), "1", "hi")
    assert refused.value.retryable
    assert str(refused.value) == str(server_error.value), "a closed port must read as a failing server does"
