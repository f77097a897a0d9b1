import asyncio
import random

import pytest

from swarm_route.agents.openai_agent import OpenAIBackend
from swarm_route.core.dispatch.dispatcher import Dispatcher
from swarm_route.core.dispatch.replicas import Replicas
from swarm_route.core.messages import Hop
from swarm_route.core.registry import AgentKind
from swarm_route.keys import Keys
from tests.core.dispatch.test_dispatch_and_aggregate import AGENTS, ScriptedBackend, decision
from tests.core.helpers import MATH, agent

DEAD = "http://127.0.0.1:9/v1"


def test_power_of_two_choices_prefers_the_less_busy_and_skips_cooled(keys):
    replicas = Replicas(None, keys, rng=random.Random(0))
    replicas.in_flight.update({"a": 5, "b": 0})
    assert {replicas.choose(["a", "b"]) for _ in range(20)} == {"b"}
    replicas.in_flight.update({"a": 0, "b": 0, "c": 0})
    assert replicas.choose(["a", "b"], exclude={"b"}) == "a"
    replicas._cool_until["a"] = 1e18
    assert {replicas.choose(["a", "b", "c"]) for _ in range(20)} <= {"b", "c"}
    replicas._cool_until.update({"b": 2e18, "c": 3e18})
    assert replicas.choose(["a", "b", "c"]) == "a", "all cooling: the first to come back is tried"


async def test_repeated_failures_cool_a_replica_down_for_every_dispatch_replica(redis_client, keys):
    one = Replicas(redis_client, keys, failures_to_cool=2, cooldown_s=30)
    other = Replicas(redis_client, keys, sync_s=0.0)
    assert not await one.failed("x")
    one.succeeded("x")
    assert not await one.failed("x"), "a success in between resets the count"
    assert await one.failed("x") and one.cooling("x")
    await other.sync()
    assert other.cooling("x") and not other.cooling("y")


async def test_a_dead_replica_is_failed_over_within_the_call_and_then_avoided(openai_server, redis_client, keys):
    spec = agent("llm", "x", MATH)
    spec.endpoint, spec.replicas = DEAD, [openai_server.base_url]
    replicas = Replicas(redis_client, keys, failures_to_cool=1, cooldown_s=30, rng=random.Random(3))
    d = Dispatcher(
        {AgentKind.openai: OpenAIBackend(2.0)}, timeout_s=2, retries=2, backoff_s=0.001, fallbacks=0, replicas=replicas
    )
    seen_dead = False
    for _ in range(6):
        result = await d.run("hi", decision("llm"), {"llm": spec})
        assert result.answers and "you asked: hi" in result.answers[0].text
        dead = [a for a in result.attempts if a.replica == DEAD]
        if dead:
            assert not seen_dead, "once cooled down, the dead replica gets no more calls"
            assert not dead[0].ok and dead[0].cooled_down
            seen_dead = True
        assert result.attempts[-1].ok and result.attempts[-1].replica == openai_server.base_url
    assert replicas.cooling(DEAD)


async def test_an_agent_at_its_concurrency_limit_makes_callers_wait_then_fall_back():
    backend = ScriptedBackend({"a": ["hang", "second"], "b": ["b answers", "b answers"]})
    agents = {"a": agent("a", "x", MATH), "b": agent("b", "x", MATH)}
    agents["a"].max_concurrency = 1
    d = Dispatcher({AgentKind.openai: backend}, timeout_s=0.3, retries=0, backoff_s=0.001, fallbacks=1)
    first, second = await asyncio.gather(
        d.run("q", decision("a", "b", fallbacks=[1]), agents),
        d.run("q", decision("a", "b", fallbacks=[1]), agents),
    )
    busy = [a for r in (first, second) for a in r.attempts if a.error and "at its limit" in a.error]
    assert len(busy) == 1, "the second caller waited out the timeout for a slot"
    assert backend.calls.count("a") == 1 and all(r.answers[0].text == "b answers" for r in (first, second))


def test_replicas_are_validated_like_endpoints():
    spec = agent("llm", "x", MATH)
    with pytest.raises(ValueError, match="http"):
        type(spec).model_validate({**spec.model_dump(), "replicas": ["file:///etc/passwd"]})


async def collect(stream):  # type: ignore[no-untyped-def]
    deltas, results = [], []
    async for item in stream:
        (deltas if isinstance(item, str) else results).append(item)
    return deltas, results


async def test_a_streaming_agent_is_passed_through_and_a_dead_replica_falls_back_before_any_text(openai_server):
    spec = agent("llm", "x", MATH)
    spec.endpoint, spec.replicas = DEAD, [openai_server.base_url]
    d = Dispatcher(
        {AgentKind.openai: OpenAIBackend(2.0)},
        timeout_s=2,
        retries=2,
        backoff_s=0.001,
        fallbacks=0,
        replicas=Replicas(None, Keys("s"), rng=random.Random(0)),
    )
    for _ in range(4):  # whichever replica it picks first, the client gets the whole answer
        deltas, (result,) = await collect(d.stream("tell me a story", decision("llm"), {"llm": spec}))
        assert result.answers[0].text == "[m] you asked: tell me a story"
        if deltas:
            assert len(deltas) == 7 and "".join(deltas) == result.answers[0].text, "word by word, as written"
        else:
            assert not result.attempts[0].ok and result.attempts[0].replica == DEAD and result.attempts[-1].ok


async def test_a_stream_that_breaks_half_way_keeps_what_was_sent_and_says_so(openai_server):
    spec = agent("llm", "x", MATH, {"stream-broken": 0.0})
    spec.endpoint = openai_server.base_url
    d = Dispatcher({AgentKind.openai: OpenAIBackend(2.0)}, timeout_s=2, retries=0, backoff_s=0.001, fallbacks=0)
    decided = decision("llm")
    decided.candidates[0].path[0] = Hop(agent="llm", model="stream-broken")
    deltas, (result,) = await collect(d.stream("one two three four five six", decided, {"llm": spec}))
    assert deltas and result.answers[0].text == "".join(deltas)
    assert "stream broke after" in result.attempts[0].error


async def test_several_paths_are_not_streamed():
    backend = ScriptedBackend({"a": ["from a"], "b": ["from b"]})
    d = Dispatcher({AgentKind.openai: backend}, timeout_s=1, retries=0, backoff_s=0.001, fallbacks=0)
    deltas, (result,) = await collect(d.stream("q", decision("a", "b", chosen=(0, 1)), AGENTS))
    assert deltas == [] and {a.text for a in result.answers} == {"from a", "from b"}


async def test_a_url_agent_is_refused_at_call_time_when_its_host_resolves_to_a_denied_address(openai_server):
    """Registered while allowed (or before a DNS record was re-pointed): dispatch checks again per call."""
    from swarm_route.core.reachability import Reachability

    llm = agent("llm", "x", MATH, {"m": 0.0})
    llm.endpoint = openai_server.base_url  # 127.0.0.1: not public
    calls = len(openai_server.app.state.requests)

    def guarded(*allowed: str) -> Dispatcher:
        backends = {AgentKind.openai: OpenAIBackend(2.0)}
        return Dispatcher(
            backends, timeout_s=2, retries=1, backoff_s=0.001, fallbacks=0, reachability=Reachability(allowed)
        )

    result = await guarded().run("hi", decision("llm"), {"llm": llm})
    assert not result.answers and "non-public" in result.attempts[0].error
    assert len(result.attempts) == 1, "not retried: the address will not change within a call"
    assert len(openai_server.app.state.requests) == calls, "nothing was sent"
    allowed = guarded("127.0.0.0/8")
    assert (await allowed.run("hi", decision("llm"), {"llm": llm})).answers
