import datetime as dt

import pytest

from swarm_route.agents.builtin import BuiltinBackend, calculate, default_pool, describe_python, tell_time
from swarm_route.core.messages import AgentError


@pytest.mark.parametrize(
    "query, result",
    [
        ("what is 12 * 7", "= 84"),
        ("compute 2^10 + 3", "= 1027"),
        ("what is 15% of 80?", "= 12"),
        ("sqrt(144) / 3", "= 4"),
        ("1,234 divided by 2", "= 617"),
        ("19.99 times 3 plus 4.50", "= 64.47"),
    ],
)
def test_calculator(query, result):
    assert calculate(query).endswith(result)


@pytest.mark.parametrize("query", ["tell me a joke", "9 ** 99999999", "__import__('os').system('true')", "1/0"])
def test_calculator_refuses_what_is_not_safe_arithmetic(query):
    with pytest.raises(AgentError):
        calculate(query)


def test_clock():
    now = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert "21:00" in tell_time("what time is it in Tokyo", now) and "Asia/Tokyo" in tell_time("time in tokyo", now)
    assert "Thursday" in tell_time("what day of the week is 2024-07-04", now)
    assert "59 days" in tell_time("days between 2025-01-01 and 2025-03-01", now)
    with pytest.raises(AgentError):
        tell_time("please sing", now)
    with pytest.raises(AgentError):
        tell_time("what day is 2025-02-30", now)


def test_pydoc_reads_real_documentation_and_never_imports_outside_the_stdlib():
    assert describe_python("what does itertools.groupby do").startswith("itertools.groupby(")
    with pytest.raises(AgentError):
        describe_python("explain pytest.raises")
    with pytest.raises(AgentError):
        describe_python("what is antigravity")


async def test_default_pool_agents_answer_through_the_backend():
    backend = BuiltinBackend()
    pool = {a.name: a for a in default_pool()}
    assert len(pool) >= 2 and len({a.intents()[0] for a in pool.values()}) == len(pool)
    answer = await backend.answer(pool["calculator"], "ast-eval", "what is 6 * 7")
    assert answer.text.endswith("42") and answer.cost_usd == 0
