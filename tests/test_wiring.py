"""The classifier stage's refit policy: what answers while the registry changes, and what its status says."""

import asyncio
import threading

import pytest

from swarm_route.config import Settings
from swarm_route.core.llm import ChatModel, LLMSettings
from swarm_route.core.messages import IntentResult, Query, RouteRequest
from swarm_route.core.registry import AgentSpec
from swarm_route.core.route.reasoning import ReasonThenSelect
from swarm_route.wiring import FixedAgents, IntentStage, RouteStage
from tests.core.helpers import MATH, WEATHER, agent
from tests.core.route.test_router import make_router


class Registry:
    """A registry whose version moves when a test changes it."""

    def __init__(self, *agents: AgentSpec) -> None:
        self.version, self.agents = 1, {a.name: a for a in agents}

    def put(self, spec: AgentSpec) -> None:
        self.agents[spec.name] = spec
        self.version += 1

    async def snapshot(self) -> tuple[int, dict[str, AgentSpec]]:
        return self.version, dict(self.agents)


TRANSLATE = ["translate this into french", "how do you say hello in german", "say thank you in spanish"]


def stage(registry: Registry, inline_refit_max: int = 0) -> IntentStage:
    """``inline_refit_max=0``: every registry change after the first fit counts as large, as beside a
    loaded CLINC150 file, without loading one."""
    settings = Settings(intent={"embeddings": False, "inline_refit_max": inline_refit_max, "compound": False})
    return IntentStage(settings, registry)


async def test_the_first_fit_answers_the_first_query_and_the_status_says_what_it_learnt():
    s = stage(Registry(agent("weather", "weather", WEATHER), agent("math", "math", MATH)))
    assert (await s.status()).state == "unfitted"
    assert (await s.classify("will it rain in rome tomorrow")).top() == "weather"
    status = (await s.status())
    assert (status.state, status.registry_version, status.intents, status.last_fit) == ("ready", 1, 2, "full")
    assert status.examples == len(WEATHER) + len(MATH) + 2  # and each agent's description
    assert status.last_fit_seconds is not None and status.progress is None


async def test_a_new_agent_beside_a_large_model_is_learnt_incrementally_before_the_next_answer():
    registry = Registry(agent("weather", "weather", WEATHER), agent("math", "math", MATH))
    s = stage(registry)
    await s.classify("warm-up")
    registry.put(agent("translator", "translation", TRANSLATE))
    assert (await s.classify("translate good morning into french")).top() == "translation"
    status = (await s.status())
    assert (status.state, status.registry_version, status.intents, status.last_fit) == ("ready", 2, 3, "incremental")


async def test_other_changes_are_refitted_in_the_background_while_the_old_model_answers(monkeypatch):
    registry = Registry(agent("weather", "weather", WEATHER), agent("math", "math", MATH))
    s = stage(registry)
    await s.classify("warm-up")
    release, threads = threading.Event(), []
    fit = s._fit

    def slow_fit(agents, limit):
        threads.append(limit)
        release.wait(10)
        return fit(agents, limit)

    monkeypatch.setattr(s, "_fit", slow_fit)
    registry.put(agent("math", "math", [*MATH, "what is the integral of x squared"]))  # a known intent changed
    assert (await s.classify("what is 2 plus 2")).top() == "math", "the old model answers at once"
    status = (await s.status())
    assert (status.state, status.registry_version, status.refit_version) == ("refitting", 1, 2)
    release.set()
    for _ in range(100):
        await asyncio.sleep(0.05)
        if (await s.status()).state == "ready":
            break
    assert ((await s.status()).registry_version, (await s.status()).last_fit) == (2, "full")
    assert threads == [1], "a background refit is bounded to intent.fit_threads"


async def test_a_failed_refit_keeps_the_old_model_and_says_why(monkeypatch, caplog):
    registry = Registry(agent("weather", "weather", WEATHER), agent("math", "math", MATH))
    s = stage(registry)
    await s.classify("warm-up")

    def broken(agents, limit):
        raise MemoryError("no room for the new model")

    monkeypatch.setattr(s, "_fit", broken)
    registry.put(agent("math", "math", MATH[:2]))
    await s.classify("what is 2 plus 2")
    await s._background
    status = (await s.status())
    assert (status.state, status.registry_version) == ("failed", 1)
    assert status.error == "MemoryError: no room for the new model" and "refit" in caplog.text
    assert (await s.classify("will it rain in rome tomorrow")).top() == "weather"


@pytest.mark.parametrize("threads", [1, 2])
def test_fit_threads_bound_torch_and_blas_inside_and_are_restored_after(threads):
    torch = pytest.importorskip("torch")
    from threadpoolctl import threadpool_info

    from swarm_route.core.classify.embedding import cpu_threads

    before = torch.get_num_threads()
    with cpu_threads(threads):
        assert torch.get_num_threads() == threads
        assert all(pool["num_threads"] <= threads for pool in threadpool_info())
    assert torch.get_num_threads() == before


async def test_the_route_stage_puts_what_the_routing_llm_cost_on_the_decision(openai_server, redis_client, keys):
    """Used or not (an answer out of shape), the LLM's answer was paid for; an agent addressed by name asks none."""
    pool = {"math": agent("math", "math", MATH), "weather": agent("weather", "weather", WEATHER)}
    priced = LLMSettings(base_url=openai_server.base_url, model="scripted", cost_per_1k_tokens=2.0)
    stage = RouteStage(make_router(redis_client, keys), FixedAgents(pool), llm=ReasonThenSelect(ChatModel(priced)))
    request = RouteRequest.of(Query(text="will it rain?"), IntentResult({"weather": 1.0}, {"weather": 0.9}, 0.1, False))
    openai_server.app.state.scripts[:] = ["Rain is weather.\nSELECTED: A1", "no selection line"]
    used = await stage.route(request)
    assert used.router_llm == "Rain is weather." and used.router_llm_cost_usd == pytest.approx(0.06)
    unused = await stage.route(request)
    assert unused.router_llm.startswith("LLM not used") and unused.router_llm_cost_usd == pytest.approx(0.06)
    direct = RouteRequest.of(Query(text="will it rain?", agent="weather"), request.intent)
    assert (await stage.route(direct)).router_llm_cost_usd == 0.0
