"""The walk of one query over in-process stages: what reaches the client, the aggregator and the sink."""

import pytest

from swarm_route.config import Settings
from swarm_route.core.dispatch.verify import AgreementVerifier, JudgeVerifier, Verifier
from swarm_route.core.messages import (
    Aggregate,
    Candidate,
    DispatchResult,
    Hop,
    IntentResult,
    PathAnswer,
    Query,
    RouteDecision,
    path_edges,
)
from swarm_route.core.pipeline import BudgetTooLow, Pipeline, StageUnavailable
from swarm_route.core.spend import Budget, Ledger, OverBudget
from swarm_route.wiring import cascade_verifier

INTENT = IntentResult({"math": 1.0}, {"math": 0.9}, 0.1, False)


def candidate(agent: str, cost: float = 0.001) -> Candidate:
    hop = Hop(agent=agent, model="m")
    return Candidate(
        path=[hop], edges=path_edges([hop.node]), tau=1, eta=1, ability=0.9, quality=0.9, expected_cost_usd=cost
    )


class Stages:
    """Classifier, router, dispatch, aggregator and sink at once, recording what each was asked."""

    def __init__(self, decision: RouteDecision) -> None:
        self.decision, self.routed, self.merged, self.events = decision, [], [], []

    async def classify(self, query):
        return INTENT

    async def route(self, request):
        self.routed.append(request)
        return self.decision

    async def run(self, query, decision):
        answers = [
            PathAnswer(
                candidate=i, hops=c.path, edges=c.edges, text=f"{c.agents[0]} says 4", cost_usd=0.01, latency_ms=1
            )
            for i, c in ((i, decision.candidates[i]) for i in decision.chosen)
        ]
        return DispatchResult(answers=answers, attempts=[], failed=[])

    async def stream(self, query, decision):
        yield "4"
        yield await self.run(query, decision)

    async def merge(self, query, answers, probabilities, reason):
        self.merged.append(answers)
        return Aggregate(text="merged", sources=[0, 1], conflicts=[])

    async def finished(self, event):
        self.events.append(event)
        return "queued"

    def pipeline(self, spend: Ledger | None = None, verifier: Verifier | None = None) -> Pipeline:
        return Pipeline(self, self, self, self, self, spend=spend, verifier=verifier)


def decision(*agents: str, chosen=(0,), declined=None, cost=0.001) -> RouteDecision:
    return RouteDecision(
        intent_weights={"math": 1.0},
        out_of_scope=False,
        oos_score=0.1,
        candidates=[candidate(a, cost) for a in agents],
        chosen=list(chosen),
        fallbacks=[],
        reasoning="because",
        declined=declined,
    )


async def test_one_answer_passes_through_with_its_evidence_and_a_finished_record():
    stages = Stages(decision("calc"))
    walked = await stages.pipeline().walk(Query(text="2+2", cost_weight=0.5), "r1")
    r = walked.response
    assert r.answer == "calc says 4" and r.agents == ["calc"] and r.models == ["m"] and not stages.merged
    assert (
        r.trace.reasoning == "because"
        and r.trace.chosen == [0]
        and set(r.trace.stages_ms)
        == {
            "classify",
            "route",
            "dispatch",
            "aggregate",
        }
    )
    assert stages.routed[0].intent is INTENT and stages.routed[0].cost_weight == 0.5
    (event,) = stages.events
    assert event.request_id == "r1" and event.paths[0].nodes == ["calc/m"]
    assert event.paths[0].edges == ["source>calc/m", "calc/m>sink"]
    assert event.paths[0].answer == "calc says 4", "its short form, for learning when paths agree"


async def test_several_answers_are_merged_by_the_aggregator():
    stages = Stages(decision("calc", "wolfram", chosen=(0, 1)))
    walked = await stages.pipeline().walk(Query(text="2+2"), "r2")
    assert walked.response.answer == "merged" and len(stages.merged[0]) == 2


async def test_a_decline_answers_politely_and_teaches_nothing():
    stages = Stages(decision(chosen=(), declined="no registered skill fits"))
    walked = await stages.pipeline().walk(Query(text="sing"), "r3")
    assert walked.response.declined and "no registered skill fits" in walked.response.answer
    assert not stages.events


async def test_a_budget_below_every_path_is_the_callers_error_and_only_then():
    over = decision("calc", chosen=(), declined="every agent serving this query is over the budget", cost=2)
    over.candidates[0].excluded, over.candidates[0].over_budget = "expected cost $2 exceeds budget $1", True
    with pytest.raises(BudgetTooLow, match=r"\$2\.000000"):
        await Stages(over).pipeline().walk(Query(text="2+2", budget_usd=1.0), "r4")
    unserved = decision("calc", chosen=(), declined="no registered agent serves the query's intents")
    unserved.candidates[0].excluded = "serves none of the query's intents"
    walked = await Stages(unserved).pipeline().walk(Query(text="2+2", budget_usd=1.0), "r5")
    assert walked.response.declined and "budget" not in walked.response.answer


async def test_streamed_text_reaches_the_caller_and_the_result_the_response():
    stages = Stages(decision("calc"))
    deltas = []
    walked = await stages.pipeline().walk(Query(text="2+2"), "r5", on_delta=deltas.append)
    assert deltas == ["4"] and walked.response.answer == "calc says 4"


async def test_decide_routes_without_dispatching():
    stages = Stages(decision("calc"))
    d = await stages.pipeline().decide(Query(text="2+2"))
    assert d.chosen == [0] and not stages.events


async def test_the_key_pays_and_its_budget_caps_the_request(redis_client, keys):
    """The router is asked within what the key has left; the real cost (not the expected one) is charged."""
    ledger = Ledger(redis_client, keys, {"team": Budget(daily_usd=0.05, per_request_usd=0.02)})
    stages = Stages(decision("calc", cost=0.001))
    await stages.pipeline(ledger).walk(Query(text="2+2", caller="team", budget_usd=1.0), "r1")
    assert stages.routed[0].budget_usd == 0.02  # the per-request cap, below the request's own budget
    report = await ledger.report("team")
    assert report.spent_usd["daily"] == pytest.approx(0.01) and report.held_usd == 0
    await stages.pipeline(ledger).walk(Query(text="2+2", caller="team"), "r2")
    await stages.pipeline(ledger).walk(Query(text="2+2", caller="team"), "r3")
    assert stages.routed[-1].budget_usd == pytest.approx(0.02)
    await stages.pipeline(ledger).walk(Query(text="2+2", caller="team"), "r4")
    assert stages.routed[-1].budget_usd == pytest.approx(0.02)  # 0.05 - 0.03 left, the per-request cap is lower
    await stages.pipeline(ledger).walk(Query(text="2+2", caller="team"), "r5")
    with pytest.raises(OverBudget, match=r"daily budget .* is spent"):
        await stages.pipeline(ledger).walk(Query(text="2+2", caller="team"), "r6")


async def test_a_path_dearer_than_the_keys_headroom_names_the_keys_budget(redis_client, keys):
    ledger = Ledger(redis_client, keys, {"team": Budget(per_request_usd=1.0)})
    over = decision("calc", chosen=(), declined="every agent serving this query is over the budget", cost=2)
    over.candidates[0].excluded, over.candidates[0].over_budget = "expected cost $2 exceeds budget $1", True
    with pytest.raises(OverBudget, match="per-request budget of \\$1 of key 'team'") as refused:
        await Stages(over).pipeline(ledger).walk(Query(text="2+2", caller="team"), "r1")
    assert refused.value.resets_at is None
    with pytest.raises(BudgetTooLow):  # the request's own, lower budget is the caller's own error
        await Stages(over).pipeline(ledger).walk(Query(text="2+2", caller="team", budget_usd=0.5), "r2")


async def test_a_failed_dispatch_releases_the_hold(redis_client, keys):
    class Failing(Stages):
        async def run(self, query, decision):
            raise StageUnavailable("dispatch", "replica restarting")

    ledger = Ledger(redis_client, keys, {"team": Budget(daily_usd=1.0)})
    with pytest.raises(StageUnavailable):
        await Failing(decision("calc", cost=0.5)).pipeline(ledger).walk(Query(text="2+2", caller="team"), "r1")
    report = await ledger.report("team")
    assert report.held_usd == 0 and report.spent_usd["daily"] == 0
    routed = decision("calc", cost=0.5)
    routed.router_llm_cost_usd = 0.002
    with pytest.raises(StageUnavailable):
        await Failing(routed).pipeline(ledger).walk(Query(text="2+2", caller="team"), "r2")
    report = await ledger.report("team")
    assert report.held_usd == 0 and report.spent_usd["daily"] == pytest.approx(0.002), "the routing LLM answered"


class Cascade(Stages):
    """Stages whose agents say what ``says`` gives them; ``down`` agents fail; every dispatch is recorded."""

    def __init__(self, decision: RouteDecision, says: dict[str, str], down: set[str] = frozenset()) -> None:
        super().__init__(decision)
        self.says, self.down, self.dispatched = says, down, []

    async def run(self, query, decision):
        self.dispatched.append((list(decision.chosen), list(decision.fallbacks)))
        answers = [
            PathAnswer(
                candidate=i, hops=c.path, edges=c.edges, text=self.says[c.agents[0]], cost_usd=0.01, latency_ms=1
            )
            for i, c in ((i, decision.candidates[i]) for i in decision.chosen)
            if c.agents[0] not in self.down
        ]
        return DispatchResult(answers=answers, attempts=[], failed=[])


def cascade() -> RouteDecision:
    """Two cheap paths first, the strong one (index 2) when they disagree, a spare one as a fallback."""
    d = decision("cheap1", "cheap2", "strong", "spare", chosen=(0, 1))
    d.escalation, d.fallbacks = [2], [2, 3]
    return d


async def test_a_cascade_whose_first_stage_agrees_stops_there():
    stages = Cascade(cascade(), {"cheap1": "B.", "cheap2": "b", "strong": "C", "spare": "D"})
    r = (await stages.pipeline().walk(Query(text="A or B?"), "c1")).response
    assert stages.dispatched == [([0, 1], [2, 3])], "the strong path is never asked"
    assert r.answer == "B." and r.trace.chosen == [0] and r.cost_usd == pytest.approx(0.02)
    (tier,) = r.trace.tiers
    assert tier.verdict == "accepted" and tier.candidates == [0, 1] and "agree on «b»" in tier.reason
    assert [p.nodes for p in stages.events[0].paths] == [["cheap1/m"], ["cheap2/m"]]
    assert [p.stood for p in stages.events[0].paths] == [True, True], "both said what the caller got"


async def test_a_cascade_whose_first_stage_disagrees_goes_on_and_pays_for_every_stage():
    stages = Cascade(cascade(), {"cheap1": "A", "cheap2": "B", "strong": "C", "spare": "D"})
    r = (await stages.pipeline().walk(Query(text="A or B?"), "c2")).response
    assert stages.dispatched[1] == ([2], [3]), "the escalation path, with the rest as its fallbacks"
    assert r.answer == "C" and r.trace.chosen == [2] and not stages.merged
    assert r.agents == ["cheap1", "cheap2", "strong"] and r.cost_usd == pytest.approx(0.03)
    assert [t.verdict for t in r.trace.tiers] == ["escalated", "final"]
    assert "«a» vs «b»" in r.trace.tiers[0].reason and r.trace.tiers[1].candidates == [2]
    assert len(stages.events[0].paths) == 3, "each stage's answer is evidence for learning"
    assert [p.stood for p in stages.events[0].paths] == [False, False, True], "a caller's grade is the strong one's"
    assert stages.events[0].cascade, "asked on condition: the record says so, and teaches no trail"


async def test_a_configured_judge_decides_in_place_of_agreement(openai_server):
    """Two cheap answers that agree, scored low by the judge: the walk goes on, and the trace says why."""
    settings = Settings(cascade={"judge": {"base_url": openai_server.base_url, "model": "scripted"}})
    judge = cascade_verifier(settings)
    assert isinstance(judge, JudgeVerifier) and isinstance(cascade_verifier(Settings()), AgreementVerifier)
    openai_server.app.state.scripts[:] = ["0.2", "0.3"]
    stages = Cascade(cascade(), {"cheap1": "B", "cheap2": "B", "strong": "C", "spare": "D"})
    r = (await stages.pipeline(verifier=judge).walk(Query(text="A or B?"), "c5")).response
    assert r.answer == "C" and [t.verdict for t in r.trace.tiers] == ["escalated", "final"]
    assert r.trace.tiers[0].score == 0.3 and "the judge scored answer" in r.trace.tiers[0].reason


async def test_a_panel_of_three_stands_only_when_all_three_agree():
    """Two of three is not enough: the dissenting third sends the walk on to the strong path."""
    panel = decision("cheap1", "cheap2", "cheap3", "strong", chosen=(0, 1, 2))
    panel.escalation, panel.fallbacks = [3], [3]
    split = Cascade(panel, {"cheap1": "B", "cheap2": "b.", "cheap3": "A", "strong": "B"})
    r = (await split.pipeline().walk(Query(text="A or B?"), "p1")).response
    assert split.dispatched == [([0, 1, 2], [3]), ([3], [])] and r.trace.chosen == [3]
    assert [p.stood for p in split.events[0].paths] == [True, True, False, True], "two said what the strong one did"
    assert r.trace.tiers[0].score == round(2 / 3, 4) and r.cost_usd == pytest.approx(0.04)
    agreed = Cascade(panel, {"cheap1": "A", "cheap2": "a", "cheap3": "A.", "strong": "B"})
    r = (await agreed.pipeline().walk(Query(text="A or B?"), "p2")).response
    assert agreed.dispatched == [([0, 1, 2], [3])] and r.answer == "A"
    assert "3 of 3 answers agree" in r.trace.tiers[0].reason


async def test_when_the_strong_stage_fails_the_first_stages_answer_stands_unverified():
    stages = Cascade(cascade(), {"cheap1": "A", "cheap2": "B", "strong": "C", "spare": "D"}, down={"strong", "spare"})
    r = (await stages.pipeline().walk(Query(text="A or B?"), "c3")).response
    assert r.answer == "A" and not r.declined and r.trace.chosen == [0]
    assert "unverified" in r.trace.tiers[-1].reason and r.cost_usd == pytest.approx(0.02)


async def test_when_the_whole_first_stage_fails_the_walk_goes_on_to_the_strong_path():
    stages = Cascade(cascade(), {"cheap1": "A", "cheap2": "B", "strong": "C", "spare": "D"}, down={"cheap1", "cheap2"})
    r = (await stages.pipeline().walk(Query(text="A or B?"), "c4")).response
    assert r.answer == "C" and stages.dispatched[1] == ([2], [3])
    assert "every path of the first stage failed" in r.trace.tiers[0].reason


async def test_a_cascade_holds_its_escalation_on_the_callers_key(redis_client, keys):
    """The expected cost of every stage is held, so an escalation cannot take a key past its budget."""
    ledger = Ledger(redis_client, keys, {"team": Budget(daily_usd=1.0)})
    held = []
    paying = ledger.paying

    def spy(key_id, request_id, expected_usd):
        held.append(expected_usd)
        return paying(key_id, request_id, expected_usd)

    ledger.paying = spy
    stages = Cascade(cascade(), {"cheap1": "A", "cheap2": "B", "strong": "C", "spare": "D"})
    await stages.pipeline(ledger).walk(Query(text="A or B?", caller="team"), "c5")
    assert held == [pytest.approx(0.003)]
    assert (await ledger.report("team")).spent_usd["daily"] == pytest.approx(0.03)


class Priced(Stages):
    """Stages whose routing LLM and merging LLM cost money: the decision and the merge say how much."""

    def __init__(self, decision: RouteDecision, merge_usd: float) -> None:
        super().__init__(decision)
        self.merge_usd = merge_usd

    async def merge(self, query, answers, probabilities, reason):
        merged = await super().merge(query, answers, probabilities, reason)
        return merged.model_copy(update={"cost_usd": self.merge_usd})


async def test_the_operators_models_are_paid_with_the_query_that_asked_them(redis_client, keys):
    """The routing LLM and the LLM that merged the answers are in the query's cost, its trace and its key's bill."""
    ledger = Ledger(redis_client, keys, {"team": Budget(daily_usd=1.0)})
    panel = decision("calc", "wolfram", chosen=(0, 1))
    panel.router_llm_cost_usd = 0.003
    stages = Priced(panel, merge_usd=0.002)
    r = (await stages.pipeline(ledger).walk(Query(text="2+2", caller="team"), "o1")).response
    assert r.trace.llm_cost_usd == {"router": 0.003, "aggregator": 0.002}
    assert r.cost_usd == pytest.approx(0.02 + 0.005), "two answers and two models"
    assert stages.events[0].paths[0].cost_usd == pytest.approx(0.01), "a path's own cost is what the colony learns"
    report = await ledger.report("team")
    assert report.spent_usd["daily"] == pytest.approx(0.025) and report.held_usd == 0
    free = (await Stages(decision("calc")).pipeline(ledger).walk(Query(text="2+2", caller="team"), "o2")).response
    assert free.trace.llm_cost_usd == {} and free.cost_usd == pytest.approx(0.01)


async def test_a_query_that_goes_no_further_still_pays_for_the_routing_llm(redis_client, keys):
    """Declined, or only decided (a dry run): the routing LLM answered, and its cost is the caller's."""
    ledger = Ledger(redis_client, keys, {"team": Budget(daily_usd=1.0)})
    declined = decision(chosen=(), declined="no registered skill fits")
    declined.router_llm_cost_usd = 0.004
    stages = Stages(declined)
    r = (await stages.pipeline(ledger).walk(Query(text="sing", caller="team"), "d1")).response
    assert r.declined and r.cost_usd == pytest.approx(0.004) and r.trace.llm_cost_usd == {"router": 0.004}
    assert (await ledger.report("team")).spent_usd["daily"] == pytest.approx(0.004)
    routed = decision("calc")
    routed.router_llm_cost_usd = 0.001
    await Stages(routed).pipeline(ledger).decide(Query(text="2+2", caller="team"))
    assert (await ledger.report("team")).spent_usd["daily"] == pytest.approx(0.005)
    assert not stages.events


async def test_a_priced_judge_is_paid_for_every_answer_it_scored(openai_server):
    """The fake server reports 30 tokens a call: at $1 per 1,000, each answer the judge scores costs $0.03."""
    settings = Settings(
        cascade={"judge": {"base_url": openai_server.base_url, "model": "scripted", "cost_per_1k_tokens": 1.0}}
    )
    openai_server.app.state.scripts[:] = ["0.9", "0.9"]
    stages = Cascade(cascade(), {"cheap1": "B", "cheap2": "B", "strong": "C", "spare": "D"})
    r = (await stages.pipeline(verifier=cascade_verifier(settings)).walk(Query(text="A or B?"), "j1")).response
    assert r.trace.tiers[0].verdict == "accepted" and r.trace.llm_cost_usd == {"judge": pytest.approx(0.06)}
    assert r.cost_usd == pytest.approx(0.02 + 0.06)


def test_a_finished_path_keeps_its_short_answer_and_a_long_one_is_refused():
    """The short form is what agreement is learnt from; a record cannot smuggle a long text in as one."""
    from pydantic import ValidationError

    from swarm_route.core.messages import SHORT_ANSWER_CHARS, PathOutcome

    hop = Hop(agent="calc", model="m")
    answer = PathAnswer(candidate=0, hops=[hop], edges=[], text="B.\nbecause", cost_usd=0.0, latency_ms=1)
    assert PathOutcome.of(answer, "b").answer == "b"
    with pytest.raises(ValidationError, match="answer"):
        PathOutcome.of(answer, "x" * (SHORT_ANSWER_CHARS + 1))
