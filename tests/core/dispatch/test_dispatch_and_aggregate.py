import asyncio

import pytest

from swarm_route.core.dispatch.aggregate import RefiningAggregator
from swarm_route.core.dispatch.dispatcher import Dispatcher
from swarm_route.core.llm import ChatModel, LLMSettings
from swarm_route.core.messages import AgentAnswer, AgentError, Candidate, Hop, PathAnswer, RouteDecision, Selected
from swarm_route.core.registry import AgentKind
from tests.core.helpers import MATH, agent


class ScriptedBackend:
    """Per agent name, a list of outcomes consumed call by call (an exception, 'hang', or an answer text)."""

    def __init__(self, script):
        self.script = script
        self.calls: list[str] = []

    async def answer(self, spec, model, query, context=None):
        self.calls.append(spec.name)
        outcome = self.script[spec.name].pop(0)
        if outcome == "hang":
            await asyncio.sleep(10)
        if isinstance(outcome, Exception):
            raise outcome
        return AgentAnswer(text=outcome, cost_usd=0.01)


def decision(*names: str, chosen=(0,), fallbacks=()) -> RouteDecision:
    cands = [
        Candidate(
            path=[Hop(agent=n, model="m")],
            edges=[f"source>{n}/m", f"{n}/m>sink"],
            tau=1,
            eta=1,
            ability=1,
            quality=1,
            expected_cost_usd=0,
            probability=0.5,
        )
        for n in names
    ]
    return RouteDecision(
        intent_weights={"x": 1},
        out_of_scope=False,
        oos_score=0,
        candidates=cands,
        chosen=list(chosen),
        fallbacks=list(fallbacks),
        reasoning="",
    )


def dispatcher(backend) -> Dispatcher:
    return Dispatcher({AgentKind.openai: backend}, timeout_s=0.2, retries=2, backoff_s=0.001, fallbacks=2)


AGENTS = {n: agent(n, "x", MATH) for n in ("a", "b", "c")}


async def test_retryable_errors_are_retried_and_recorded():
    backend = ScriptedBackend({"a": [AgentError("503", retryable=True), "hang", "fine"]})
    result = await dispatcher(backend).run("q", decision("a"), AGENTS)
    assert [a.text for a in result.answers] == ["fine"]
    assert [(x.attempt, x.ok) for x in result.attempts] == [(1, False), (2, False), (3, True)]
    assert result.attempts[1].error == "timed out"


async def test_non_retryable_error_falls_back_to_the_next_best_path():
    backend = ScriptedBackend({"a": [AgentError("bad request")], "b": [AgentError("no")], "c": ["from c"]})
    result = await dispatcher(backend).run("q", decision("a", "b", "c", fallbacks=(1, 2)), AGENTS)
    assert backend.calls == ["a", "b", "c"]
    assert result.answers[0].agents == ["c"] and result.failed == [0, 1]
    assert [x.fallback for x in result.attempts] == [False, True, True]


async def test_chosen_paths_run_concurrently():
    backend = ScriptedBackend({"a": ["A"], "b": ["B"]})

    async def slow_answer(spec, model, query, context=None):
        await asyncio.sleep(0.3)
        return AgentAnswer(text=spec.name)

    backend.answer = slow_answer
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    # a timeout well above the answers' time, and a bound well under two in a row: the suite runs beside Ray
    patient = Dispatcher({AgentKind.openai: backend}, timeout_s=5.0, retries=0, backoff_s=0.001, fallbacks=0)
    result = await patient.run("q", decision("a", "b", chosen=(0, 1)), AGENTS)
    assert loop.time() - t0 < 0.55 and sorted(a.text for a in result.answers) == ["a", "b"]


def answer(text: str, agent_name: str, score=None) -> PathAnswer:
    return PathAnswer(
        candidate=0, hops=[Hop(agent=agent_name, model="m")], edges=[], text=text, cost_usd=0, latency_ms=1, score=score
    )


def test_single_answer_passes_through_untouched():
    merged = RefiningAggregator().merge([answer("exactly this", "a")], [1.0])
    assert merged.text == "exactly this" and not merged.declined


def test_disagreeing_answers_are_merged_with_the_conflict_stated():
    merged = RefiningAggregator().merge(
        [answer("Paris is the capital", "a", 0.4), answer("Lyon obviously", "b", 0.9)], [0.6, 0.4]
    )
    assert merged.text.startswith("[b] Lyon") and merged.conflicts == ["a disagrees with b"]
    assert "disagrees" in merged.text


def test_no_answer_is_a_polite_decline_that_says_why():
    merged = RefiningAggregator().merge([], [], "every agent chosen for it failed")
    assert merged.declined and "every agent chosen for it failed" in merged.text and "Sorry" in merged.text


async def test_an_llm_refines_several_answers_and_its_failures_fall_back(openai_server):
    llm = ChatModel(LLMSettings(base_url=openai_server.base_url, model="scripted"))
    aggregator = RefiningAggregator(llm=llm)
    two = [answer("Paris is the capital", "a", 0.4), answer("Lyon obviously", "b", 0.9)]
    openai_server.app.state.scripts[:] = [
        "Agents disagree: Paris (a) or Lyon (b).\nCONFLICTS: a says Paris | b says Lyon"
    ]
    merged = await aggregator.refine("capital of France?", two, [0.6, 0.4])
    assert merged.text == "Agents disagree: Paris (a) or Lyon (b)." and merged.refined_by == "scripted"
    assert merged.conflicts == ["a says Paris", "b says Lyon"] and merged.sources == [1, 0]
    sent = openai_server.app.state.requests[-1]["messages"][1]["content"]
    assert '{"agent": "b", "text": "Lyon obviously"}' in sent, "answers go to the LLM as escaped data"
    openai_server.app.state.scripts[:] = ["Paris, no conflict line"]
    fallback = await aggregator.refine("capital of France?", two, [0.6, 0.4])
    assert fallback.refined_by is None and fallback.text.startswith("[b] Lyon")
    calls = len(openai_server.app.state.requests)
    single = await aggregator.refine("capital?", [answer("exactly this", "a")], [1.0])
    assert single.text == "exactly this" and len(openai_server.app.state.requests) == calls, "one answer: no LLM"
    assert merged.cost_usd == fallback.cost_usd == single.cost_usd == 0.0, "an unpriced model is free"


async def test_a_priced_merging_llm_costs_what_it_used_also_when_its_merge_is_set_aside(openai_server):
    llm = ChatModel(LLMSettings(base_url=openai_server.base_url, model="scripted", cost_per_1k_tokens=1.0))
    two = [answer("Paris is the capital", "a", 0.4), answer("Lyon obviously", "b", 0.9)]
    openai_server.app.state.scripts[:] = ["Paris.\nCONFLICTS: none", "no conflict line"]
    merged = await RefiningAggregator(llm=llm).refine("capital of France?", two, [0.6, 0.4])
    assert merged.refined_by == "scripted" and merged.cost_usd == pytest.approx(0.03)
    fallback = await RefiningAggregator(llm=llm).refine("capital of France?", two, [0.6, 0.4])
    assert fallback.refined_by is None and fallback.cost_usd == pytest.approx(0.03)


async def test_impossible_usage_reports_are_estimated_not_believed():
    class Lying:
        async def answer(self, spec, model, query, context=None):
            return AgentAnswer(text="four", cost_usd=-5.0, prompt_tokens=-100, completion_tokens=3, score=float("nan"))

    result = await dispatcher(Lying()).run("what is 2+2", decision("a"), AGENTS)
    (answer,) = result.answers
    assert answer.cost_usd >= 0 and answer.prompt_tokens > 0 and answer.score is None


async def test_each_path_of_a_compound_query_is_asked_its_part_and_answers_come_in_the_order_asked():
    told: list[str | None] = []

    class Echo:
        async def answer(self, spec, model, query, context=None):
            told.append(context)
            return AgentAnswer(text=f"{spec.name}: {query}")

    query = "what is 2 + 2 and what time is it in Oslo"
    d = decision("a", "b", chosen=(1, 0))
    d.selection = [
        Selected(
            agents=["b"],
            intent="time",
            weight=0.5,
            classifier_weight=0.5,
            tau=1,
            probability=1,
            part="what time is it in Oslo",
        ),
        Selected(
            agents=["a"], intent="math", weight=0.5, classifier_weight=0.5, tau=1, probability=1, part="what is 2 + 2"
        ),
    ]
    result = await dispatcher(Echo()).run(query, d, AGENTS)
    assert [a.text for a in result.answers] == ["a: what is 2 + 2", "b: what time is it in Oslo"]
    assert told == [query, query], "each agent asked a part is told the whole message as context"
    merged = RefiningAggregator().merge(result.answers, [0.4, 0.6])
    assert merged.text == "[a] a: what is 2 + 2\n\n[b] b: what time is it in Oslo"
    assert not merged.conflicts, "answers to different parts do not disagree"
