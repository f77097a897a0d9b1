import random

import numpy as np
import pytest

from swarm_route.core.messages import IntentResult, RouteRequest
from swarm_route.core.route.agreement import AgreementMemory
from swarm_route.core.route.outcomes import Graded
from swarm_route.core.route.pheromone import PheromoneStore
from swarm_route.core.route.reasoning import LLMChoice
from swarm_route.core.route.router import CASCADE_EVIDENCE, ReasoningRouter
from tests.core.helpers import MATH, WEATHER, agent


def make_router(client, keys, q0: float = 1.0) -> ReasoningRouter:
    store = PheromoneStore(client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0)
    return ReasoningRouter(store, alpha=1, beta=2, q0=q0, cost_weight=0.5, llm_weight=0.4, rng=random.Random(1))


def intent(set_floor: float = 0.3, **weights: float) -> IntentResult:
    return IntentResult(weights, {k: 0.8 for k in weights}, 0.2, False, set_floor)


AGENTS = {
    "math": agent("math", "math", MATH, {"small": 0.001, "large": 0.003}),
    "weather": agent("weather", "weather", WEATHER),
}


async def test_picks_an_agent_that_serves_the_intent_and_explains_why(redis_client, keys):
    d = await make_router(redis_client, keys).route(RouteRequest(text="what is 2+2", intent=intent(math=1.0)), AGENTS)
    chosen = d.candidates[d.chosen[0]]
    assert chosen.agents == ["math"]
    assert all(c.excluded for c in d.candidates if c.agents == ["weather"])
    assert "math" in d.reasoning and "τ=" in d.reasoning and "p=" in d.reasoning
    assert sum(c.probability for c in d.candidates) == pytest.approx(1.0, abs=1e-4)


async def test_cheaper_model_wins_on_equal_trails_and_pheromone_can_overturn_it(redis_client, keys):
    router = make_router(redis_client, keys)
    d = await router.route(RouteRequest(text="what is 2+2", intent=intent(math=1.0)), AGENTS)
    assert d.candidates[d.chosen[0]].path[0].model == "small"
    large = next(c for c in d.candidates if c.path[0].model == "large")
    for _ in range(20):
        await router.pheromones.deposit("math", {e: 5.0 for e in large.edges})
    d = await router.route(RouteRequest(text="what is 2+2", intent=intent(math=1.0)), AGENTS)
    assert d.candidates[d.chosen[0]].path[0].model == "large"


async def test_trails_read_a_moment_ago_are_used_without_asking_the_store(redis_client, keys):
    router = make_router(redis_client, keys)
    router.trails_refresh_s = 60.0
    asked: list[list[str]] = []
    read = router.pheromones.read

    async def counted(intents):
        asked.append(list(intents))
        return await read(intents)

    router.pheromones.read = counted
    request = RouteRequest(text="what is 2+2", intent=intent(math=1.0))
    d = await router.route(request, AGENTS)
    large = next(c for c in d.candidates if c.path[0].model == "large")
    for _ in range(20):
        await router.pheromones.deposit("math", {e: 5.0 for e in large.edges})
    chosen = lambda d: d.candidates[d.chosen[0]].path[0].model  # noqa: E731
    assert chosen(await router.route(request, AGENTS)) == "small", "as last read"
    await router.route(RouteRequest(text="what is 2+2", intent=intent(math=0.6, weather=0.4)), AGENTS)
    assert asked == [["math"], ["math", "weather"]], "an intent not read lately: the query's intents are read"
    router.trails_refresh_s = 0.0
    assert chosen(await router.route(request, AGENTS)) == "large"


async def test_budget_is_a_hard_limit(redis_client, keys):
    router = make_router(redis_client, keys)
    d = await router.route(RouteRequest(text="what is 2+2", intent=intent(math=1.0), budget_usd=0.0005), AGENTS)
    assert all(d.candidates[i].path[0].model == "small" for i in d.chosen)
    assert any("budget" in (c.excluded or "") for c in d.candidates)
    d = await router.route(RouteRequest(text="what is 2+2", intent=intent(math=1.0), budget_usd=1e-9), AGENTS)
    assert d.declined and not d.chosen


async def test_a_paused_agent_is_left_out_and_a_query_only_it_serves_says_so(redis_client, keys):
    router = make_router(redis_client, keys)
    two = AGENTS | {"math2": agent("math2", "math", MATH, {"tiny": 0.0001}).model_copy(update={"paused": True})}
    d = await router.route(RouteRequest(text="what is 2+2", intent=intent(math=1.0)), two)
    assert d.candidates[d.chosen[0]].agents == ["math"]
    assert all(c.excluded == "paused by an operator" for c in d.candidates if c.agents == ["math2"])
    alone = {"math": AGENTS["math"].model_copy(update={"paused": True})}
    d = await router.route(RouteRequest(text="what is 2+2", intent=intent(math=1.0)), alone)
    assert d.declined == "every agent serving this query is paused"


async def test_out_of_scope_is_declined_with_the_closest_intent(redis_client, keys):
    oos = IntentResult({}, {"math": 0.05}, 0.95, True)
    d = await make_router(redis_client, keys).route(RouteRequest(text="hello", intent=oos), AGENTS)
    assert d.declined and "math" in d.declined and d.chosen == []


async def test_the_set_holds_an_agent_per_needed_intent_and_stays_small_when_one_suffices(redis_client, keys):
    free = {"math": agent("math", "math", MATH), "weather": agent("weather", "weather", WEATHER)}
    router = make_router(redis_client, keys)
    d = await router.route(RouteRequest(text="weather and math", intent=intent(math=0.5, weather=0.5)), free)
    assert {a for i in d.chosen for a in d.candidates[i].agents} == {"math", "weather"}
    assert {s.intent for s in d.selection} == {"math", "weather"} and all(s.tau > 0 for s in d.selection)
    assert "each needs an agent" in d.reasoning
    d = await router.route(RouteRequest(text="mostly math", intent=intent(math=0.8, weather=0.2)), free)
    assert [s.agents for s in d.selection] == [["math"]], "weather's weight is below the set floor"
    assert "one agent suffices" in d.reasoning
    d = await router.route(
        RouteRequest(text="weather and math", intent=intent(math=0.5, weather=0.5), max_agents=1), free
    )
    assert len(d.chosen) == 1 and d.fallbacks and not set(d.fallbacks) & set(d.chosen)
    both = {"mathweather": agent("mathweather", "math", MATH), "weather": agent("weather", "weather", WEATHER)}
    both["mathweather"].skills.append(both["weather"].skills[0])
    d = await router.route(RouteRequest(text="weather and math", intent=intent(math=0.6, weather=0.4)), both)
    assert [s.agents for s in d.selection] == [["mathweather"]], "one agent covering both needs suffices"


async def test_each_part_of_a_query_asking_for_several_things_gets_its_agent(redis_client, keys):
    free = {"math": agent("math", "math", MATH), "weather": agent("weather", "weather", WEATHER)}
    parts = {"weather": "will it rain in Oslo", "math": "what is 2 + 2"}
    compound = IntentResult({"weather": 0.85, "math": 0.15}, {}, 0.2, False, 0.3, parts=parts)
    d = await make_router(redis_client, keys).route(RouteRequest(text="rain and sums", intent=compound), free)
    assert [(s.intent, s.part) for s in d.selection] == list(parts.items()), "math is below the floor, yet asked"
    assert "asks for 2 things: weather for «will it rain in Oslo»; math for «what is 2 + 2»; each" in d.reasoning
    assert "clear the set floor" not in d.reasoning, "math's weight is below it: the part, not the floor, asks"
    hedged = IntentResult({"weather": 0.5, "math": 0.1, "time": 0.4}, {}, 0.2, False, 0.3, parts=parts)
    free["time"] = agent("time", "time", ["what time is it"])
    d = await make_router(redis_client, keys).route(RouteRequest(text="rain and sums", intent=hedged), free)
    assert [s.intent for s in d.selection] == ["weather", "math", "time"] and "time also clear" in d.reasoning


async def test_the_llm_pick_is_mixed_with_the_classifier_not_obeyed(redis_client, keys):
    free = {"math": agent("math", "math", MATH), "weather": agent("weather", "weather", WEATHER)}
    router = make_router(redis_client, keys)
    d = await router.route(
        RouteRequest(text="rain or sums?", intent=intent(math=0.9, weather=0.1)),
        free,
        llm=LLMChoice(agents=["weather"], reasoning="rain"),
    )
    picked = {s.intent: s for s in d.selection}
    assert set(picked) == {"math", "weather"}, "the classifier's strong pick and the LLM's both stay"
    assert picked["weather"].llm_selected and not picked["math"].llm_selected
    assert d.intent_weights["weather"] == pytest.approx(0.46) and d.router_llm == "rain"
    sure = IntentResult({"math": 1.0}, {"math": 0.9}, 0.05, False, 0.3)
    d = await router.route(
        RouteRequest(text="rain or sums?", intent=sure), free, llm=LLMChoice(agents=[], reasoning="chit-chat")
    )
    assert not d.declined, "a confident classifier outweighs one LLM 'none' at weight 0.4"
    unsure = IntentResult({"math": 1.0}, {"math": 0.1}, 0.3, False, 0.3)
    d = await router.route(
        RouteRequest(text="hm", intent=unsure), free, llm=LLMChoice(agents=[], reasoning="chit-chat")
    )
    assert d.declined and "LLM chose none" in d.declined
    d = await router.route(RouteRequest(text="hm", intent=unsure), free, llm_note="LLM not used (timeout)")
    assert not d.declined and d.router_llm == "LLM not used (timeout)"


async def test_an_explored_path_outside_the_listed_ones_is_still_in_the_trace(redis_client, keys):
    """A large pool's trace lists the most probable paths; a sampled one from further down must join them."""
    store = PheromoneStore(redis_client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0)
    pool = {f"a{i}": agent(f"a{i}", "math", MATH, {"m": 0.001 * (i + 1)}) for i in range(30)}
    router = ReasoningRouter(store, alpha=1, beta=1, q0=0.0, cost_weight=1.0, rng=random.Random(0), max_trace=3)
    seen = set()
    for _ in range(40):
        d = await router.route(RouteRequest(text="what is 2+2", intent=intent(math=1.0)), pool)
        chosen = d.candidates[d.chosen[0]]
        assert chosen.excluded is None and chosen.probability > 0
        seen.add(chosen.agents[0])
        assert len(d.candidates) <= 4 and all(0 <= i < len(d.candidates) for i in d.fallbacks)
    assert len(seen) > 3, "sampling should reach paths beyond the three most probable"


def agreeing(queries: int = 1000, cheap: int = 2) -> AgreementMemory:
    """Graded history of math queries: the ``cheap`` cheap models all give the right answer on 70% of them
    and differ on the rest, where the strong one is right."""
    memory = AgreementMemory()
    for i in range(queries):
        agree = i % 10 < 7
        said = {f"math/cheap{c + 1}": "4" if agree or c else "5" for c in range(cheap)}
        said["math/strong"] = "4"
        memory.add([Graded(f"q{i}", node, float(a == "4"), None, "math", a) for node, a in said.items()])
    return memory


def cascading_router(client, keys, cheap: int = 2, cascades: bool = True) -> ReasoningRouter:
    """A router that knows, from graded history, that ``cheap`` cheap models get math right 70% of the time
    and the dear one 95%, and how often the cheap ones agree (``agreeing``)."""
    from swarm_route.core.route.ability import AbilityModel

    nodes = [*(f"math/cheap{i + 1}" for i in range(cheap)), "math/strong"]
    scores = np.array([[0.7] * cheap + [0.95]] * len(MATH))
    ability = AbilityModel(shrinkage=0.0, intent_shrinkage=0.0).fit(MATH, nodes, scores, intents=["math"] * len(MATH))
    store = PheromoneStore(client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0)
    return ReasoningRouter(
        store,
        alpha=1,
        beta=2,
        q0=1.0,
        cost_weight=0.5,
        ability=ability,
        cascades=cascades,
        agreement=agreeing(cheap=cheap),
    )


CASCADE_POOL = {"math": agent("math", "math", MATH, {"cheap1": 0.001, "cheap2": 0.0012, "strong": 0.01})}


async def test_a_cascade_replaces_the_strong_pick_when_cheap_agreement_is_worth_more(redis_client, keys):
    """At a small cost weight the colony would pay for the strong model; two cheap ones agree 70% of the time
    and are then right, and escalating the rest keeps quality above the strong model's alone for less."""
    request = RouteRequest(text="what is 2 plus 2", intent=intent(math=1.0), cost_weight=0.05)
    d = await cascading_router(redis_client, keys).route(request, CASCADE_POOL)
    model = lambda i: d.candidates[i].path[0].model  # noqa: E731
    assert sorted(model(i) for i in d.chosen) == ["cheap1", "cheap2"] and [model(i) for i in d.escalation] == ["strong"]
    assert not set(d.fallbacks) & {*d.chosen, *d.escalation}
    assert "Cascade: math/cheap" in d.reasoning and "math/strong is asked" in d.reasoning
    assert len(d.selection) == 2 and all(s.intent == "math" for s in d.selection)


async def test_no_cascade_when_disabled_too_dear_over_budget_or_for_a_query_of_several_parts(redis_client, keys):
    ask = lambda **kw: RouteRequest(text="what is 2 plus 2", intent=intent(math=1.0), cost_weight=0.05, **kw)  # noqa: E731
    off = await cascading_router(redis_client, keys, cascades=False).route(ask(), CASCADE_POOL)
    assert len(off.chosen) == 1 and not off.escalation and "Cascade" not in off.reasoning
    cheap = await cascading_router(redis_client, keys).route(
        RouteRequest(text="what is 2 plus 2", intent=intent(math=1.0), cost_weight=0.5), CASCADE_POOL
    )
    assert not cheap.escalation, "at a high cost weight the cheapest model alone is worth more"
    tokens = cheap.candidates[0].expected_cost_usd / 0.001  # thousands of tokens the router expects
    tight = await cascading_router(redis_client, keys).route(ask(budget_usd=0.011 * tokens), CASCADE_POOL)
    assert not tight.escalation, "the worst case (both cheap and the strong) must fit the budget"
    assert not (await cascading_router(redis_client, keys).route(ask(max_agents=1), CASCADE_POOL)).escalation
    parts = IntentResult({"math": 1.0}, {}, 0.2, False, 0.3, parts={"math": "2 plus 2"})
    split = await cascading_router(redis_client, keys).route(
        RouteRequest(text="what is 2 plus 2", intent=parts, cost_weight=0.05), CASCADE_POOL
    )
    assert not split.escalation


async def test_exploration_fades_as_every_path_on_offer_is_graded_on_the_intent(redis_client, keys):
    """1 − q0 of choices sample while a path is new; once every path has a long record on the intent, a
    sample mostly buys what is already known, and the most probable path is taken nearly always."""
    from swarm_route.core.route.ability import AbilityModel

    pool = {"math": agent("math", "math", MATH, {"small": 0.001, "large": 0.003})}
    nodes = ["math/small", "math/large"]

    def runs(history: int) -> int:
        texts = [MATH[i % len(MATH)] for i in range(history)]
        ability = AbilityModel().fit(texts, nodes, np.full((history, 2), 0.8), intents=["math"] * history)
        store = PheromoneStore(redis_client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0)
        return ReasoningRouter(
            store, alpha=1, beta=1, q0=0.0, cost_weight=0.5, ability=ability, rng=random.Random(3), explore_known=20
        )

    request = RouteRequest(text="what is 2 plus 2", intent=intent(math=1.0))
    for history, most in ((4, 0.75), (2000, 0.97)):
        router = runs(history)
        picked = [(await router.route(request, pool)).selection[0] for _ in range(300)]
        top = max(p.probability for p in picked)
        share = sum(p.probability == top for p in picked) / len(picked)
        assert (share < most) if history < 20 else (share > most), (history, share)
    exploit = runs(4)
    exploit.explore_known = None  # the plain ACS rule: q0 = 0 samples every time, whatever is known
    assert len({(await exploit.route(request, pool)).selection[0].probability for _ in range(50)}) == 2


async def test_a_panel_of_three_is_chosen_where_its_agreement_is_right_and_any_pair_s_is_not(redis_client, keys):
    """History where every pair of three cheap models sometimes agrees on a wrong answer, but all three agree
    only when right: a pair stands on a wrong answer a sixth of the time, the panel never; the router asks all
    three at once and escalates when they differ, and the reasoning names the three."""
    memory = AgreementMemory()
    wrong_pairs = [None, ("1", "2"), ("1", "3"), ("2", "3")]  # the pair that agrees on a wrong answer, if any
    for i in range(40):
        pair = wrong_pairs[0 if i < 25 else 1 + i % 3]
        said = {f"math/cheap{c}": "5" if pair and c in pair else "4" for c in "123"}
        said["math/strong"] = "4"
        memory.add([Graded(f"q{i}", node, float(a == "4"), None, "math", a) for node, a in said.items()])
    pool = {"math": agent("math", "math", MATH, {"cheap1": 0.001, "cheap2": 0.0012, "cheap3": 0.0011, "strong": 0.01})}
    router = cascading_router(redis_client, keys, cheap=3)
    router.agreement = memory
    request = RouteRequest(text="what is 2 plus 2", intent=intent(math=1.0), cost_weight=0.05)
    d = await router.route(request, pool)
    model = lambda i: d.candidates[i].path[0].model  # noqa: E731
    assert sorted(model(i) for i in d.chosen) == ["cheap1", "cheap2", "cheap3"], d.reasoning
    assert [model(i) for i in d.escalation] == ["strong"] and len(d.selection) == 3
    assert "predicted 38% of the time" in d.reasoning and ", math/cheap" in d.reasoning


async def test_a_panel_s_record_is_doubted_by_its_standard_error(redis_client, keys):
    """A pair that always agrees and is then right 90% of the time is worth more than the strong path at
    this cost weight on a long record; on 40 queries the same record is too thin to bet on (the panel
    weighed is the best of several measured on one history, so its record flatters it)."""
    def history(queries: int) -> AgreementMemory:
        memory = AgreementMemory(max_queries=queries)
        for i in range(queries):
            right = float(i % 10 != 0)
            said = {"math/cheap1": ("4", right), "math/cheap2": ("4", right), "math/strong": ("4", 1.0)}
            memory.add([Graded(f"q{i}", node, score, None, "math", a) for node, (a, score) in said.items()])
        return memory

    request = RouteRequest(text="what is 2 plus 2", intent=intent(math=1.0), cost_weight=0.05)
    router = cascading_router(redis_client, keys)
    router.agreement = history(40)
    assert not (await router.route(request, CASCADE_POOL)).escalation
    router.agreement = history(1000)
    d = await router.route(request, CASCADE_POOL)
    assert d.escalation and "predicted 0% of the time" in d.reasoning


async def test_a_panel_without_a_record_is_never_a_cascade_and_a_record_decides(redis_client, keys):
    """No graded history of the pair answering together, or less than ``CASCADE_EVIDENCE`` queries of it: no
    cascade, whatever a prior would say. History where the pair never gives comparable answers on math
    (code, say) rules it out; history where they agree and are right makes it."""
    def history(answer: str, queries: int = 40) -> AgreementMemory:
        memory = AgreementMemory()
        for i in range(queries):
            said = {"math/cheap1": answer, "math/cheap2": answer, "math/strong": answer}
            memory.add([Graded(f"q{i}", node, 1.0, None, "math", a) for node, a in said.items()])
        return memory

    request = RouteRequest(text="what is 2 plus 2", intent=intent(math=1.0), cost_weight=0.05)
    router = cascading_router(redis_client, keys)
    for unknown in (AgreementMemory(), history("4", queries=CASCADE_EVIDENCE - 1)):
        router.agreement = unknown
        assert not (await router.route(request, CASCADE_POOL)).escalation
    router.agreement = history("")  # answers too long to compare: every cascade would escalate
    assert not (await router.route(request, CASCADE_POOL)).escalation
    router.agreement = history("4")
    d = await router.route(request, CASCADE_POOL)
    assert d.escalation and "predicted 0% of the time" in d.reasoning


async def test_an_exploring_choice_tries_the_path_that_has_no_record_yet(redis_client, keys):
    """A newcomer that looks worse than an incumbent with a long record (dearer, never graded) would be sampled
    by its small p and stay unknown; while it has fewer than ``explore_known`` graded outcomes on the intent,
    every exploring choice takes it, and once it has them exploration samples by p again."""
    from swarm_route.core.route.ability import AbilityModel

    pool = {"math": agent("math", "math", MATH, {"old": 0.001, "new": 0.01})}
    request = RouteRequest(text="what is 2 plus 2", intent=intent(math=1.0))

    def router(new_graded: int) -> ReasoningRouter:
        texts = [MATH[i % len(MATH)] for i in range(2000)]
        scores = np.column_stack([np.full(2000, 0.8), np.where(np.arange(2000) < new_graded, 0.8, np.nan)])
        ability = AbilityModel().fit(texts, ["math/old", "math/new"], scores, intents=["math"] * 2000)
        store = PheromoneStore(redis_client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0)
        return ReasoningRouter(
            store, alpha=1, beta=1, q0=0.7, cost_weight=1.0, ability=ability, rng=random.Random(5), explore_known=20
        )

    for new_graded, (low, high) in ((0, (0.2, 0.4)), (40, (0.0, 0.08))):
        r = router(new_graded)
        chosen = [await r.route(request, pool) for _ in range(300)]
        share = sum(d.candidates[d.chosen[0]].path[0].model == "new" for d in chosen) / len(chosen)
        assert low <= share <= high, (new_graded, share)
