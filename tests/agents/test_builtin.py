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


@pytest.mark.parametrize(
    "query",
    [
        "(9**9999)**9999",  # an exponent under the old cap, on a base already too large
        "10**5000",  # a result too large to print
        "2**10000 * 2**10000",
        "-" * 5000 + "1",  # nesting deeper than any recursion limit
        "(" * 300 + "1" + ")" * 300,
        "1" + "+1" * 400 + " and then some words" * 10,  # longer than a calculator query
        "factorial(1000) * factorial(1000) * factorial(1000)",
    ],
)
def test_hostile_arithmetic_is_refused_quickly_with_the_agents_own_error(query):
    import time

    started = time.perf_counter()
    with pytest.raises(AgentError):
        calculate(query)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "query, result",
    [("square root of 2", "sqrt(2) = 1.414213562"), ("log of 100", "log10(100) = 2"), ("7 squared", "= 49")],
)
def test_math_words_are_understood(query, result):
    assert calculate(query).endswith(result)


@pytest.mark.parametrize("query", ["cube root of 27", "days between 2024-01-01 and 2024-03-01", "arctan of 1"])
def test_a_query_only_partly_understood_is_declined_not_half_answered(query):
    with pytest.raises(AgentError):
        calculate(query)


async def test_a_slow_tool_fails_as_the_agents_own_error_off_the_event_loop(monkeypatch):
    import time

    from swarm_route.agents import builtin

    monkeypatch.setitem(builtin.TOOLS, "calculator", lambda q: time.sleep(0.3) or "late")
    spec = next(a for a in default_pool() if a.name == "calculator")
    with pytest.raises(AgentError, match="took longer"):
        await BuiltinBackend(deadline_s=0.05).answer(spec, "ast-eval", "1+1")
