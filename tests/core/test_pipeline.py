"""The walk of one query over in-process stages: what reaches the client, the aggregator and the sink."""

import pytest

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

    def pipeline(self, spend: Ledger | None = None) -> Pipeline:
        return Pipeline(self, self, self, self, self, spend=spend)


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
