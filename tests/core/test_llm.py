"""The operator's chat model against a real OpenAI-protocol server: what each reply costs."""

import pytest

from swarm_route.core.llm import ChatModel, LLMSettings


def priced(server, model: str, price: float = 1.0) -> ChatModel:
    return ChatModel(LLMSettings(base_url=server.base_url, model=model, cost_per_1k_tokens=price))


async def test_a_reply_costs_the_tokens_the_server_reports_at_the_operators_price(openai_server):
    reply = await priced(openai_server, "echo-1", 2.0).complete("be brief", "hello")
    assert reply.text.endswith("you asked: hello") and reply.cost_usd == pytest.approx(30 * 2.0 / 1000)
    assert (await priced(openai_server, "echo-1", 0.0).complete("be brief", "hello")).cost_usd == 0.0


async def test_impossible_usage_is_estimated_from_the_texts_not_believed(openai_server):
    """A negative token count would credit the caller: the texts' estimate (~4 characters a token) is billed."""
    reply = await priced(openai_server, "lying").complete("s" * 400, "u" * 400)
    assert reply.cost_usd > 0 and reply.cost_usd == pytest.approx((100 + 100 + len(reply.text) // 4) / 1000)
