"""The walk of one query, written once: classify → route → dispatch → aggregate → finished record.

Plain Python over five small stage protocols. The service hands it stages that call Serve deployments
through handles, or run inside the ingress replica (``serve.adapters``); the benchmarks hand it in-process
stages with replay agents. Ray and HTTP stay outside: a stage that cannot be reached raises
``StageUnavailable``, a budget too low to serve the query raises ``BudgetTooLow``, and the caller decides
what those mean to its client. With a ``Spend`` ledger the caller's key pays: its budget caps the request's,
the chosen paths' expected cost is held before dispatch and the real cost (the answers, and the operator's
models that routed, judged or merged them) settled after merging (``OverBudget`` when the key cannot pay;
``SpendUnavailable`` when the store is down and spend fails closed). Learning never delays an answer: the
finished record goes to an ``EventSink`` whose ``finished`` must return at once or, in a benchmark, apply
the update in line.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Protocol

from opentelemetry.trace import Tracer, get_tracer

from swarm_route.core.dispatch.aggregate import RefiningAggregator
from swarm_route.core.dispatch.verify import AgreementVerifier, Verdict, Verifier, short_answer
from swarm_route.core.messages import (
    Aggregate,
    Attempt,
    DispatchResult,
    FinishedRequest,
    IntentResult,
    PathAnswer,
    PathOutcome,
    Query,
    QueryResponse,
    RouteDecision,
    RouteEvidence,
    RouteRequest,
    Tier,
    Trace,
)
from swarm_route.core.spend import Bill, Headroom, OverBudget
from swarm_route.timing import ms_since
from swarm_route.tracing import TRACER_NAME, carrier


class Classifier(Protocol):
    async def classify(self, query: str) -> IntentResult: ...


class Router(Protocol):
    async def route(self, request: RouteRequest) -> RouteDecision: ...


class Dispatch(Protocol):
    async def run(self, query: str, decision: RouteDecision) -> DispatchResult: ...

    def stream(self, query: str, decision: RouteDecision) -> AsyncIterator[str | DispatchResult]:
        """Text deltas of a single streaming path as they arrive, then the ``DispatchResult``."""
        ...


class Aggregator(Protocol):
    async def merge(
        self, query: str, answers: Sequence[PathAnswer], probabilities: Sequence[float], reason: str
    ) -> Aggregate: ...


class EventSink(Protocol):
    async def finished(self, event: FinishedRequest) -> str:
        """Take a finished request for learning and say what becomes of it (``QueryResponse.learning``):
        the client is told before it is answered. The service queues it and returns at once."""
        ...


class Spend(Protocol):
    """The API key's ledger (``core.spend.Ledger``): what it may spend, held before dispatch, settled after."""

    async def headroom(self, key_id: str | None) -> Headroom | None: ...

    def refuse(self, key_id: str | None, room: Headroom, cheapest_usd: float) -> OverBudget: ...

    def paying(
        self, key_id: str | None, request_id: str, expected_usd: float
    ) -> AbstractAsyncContextManager[Bill]: ...

    def charge(self, key_id: str | None, request_id: str, cost_usd: float) -> None: ...


class StageUnavailable(Exception):
    """A stage could not be reached even after retries (its replica died and is restarting)."""

    def __init__(self, stage: str, why: str) -> None:
        super().__init__(f"the {stage} stage is unavailable ({why}); retry shortly")
        self.stage = stage


class BudgetTooLow(Exception):
    """Every path that serves the query costs more than the request's budget."""

    def __init__(self, cheapest_usd: float) -> None:
        super().__init__(f"too low: the cheapest path that serves this query costs ${cheapest_usd:.6f}")
        self.cheapest_usd = cheapest_usd


@dataclass(frozen=True)
class Walked:
    """One query's walk: the response for the client, and what the walk saw on the way (for metrics)."""

    response: QueryResponse
    decision: RouteDecision
    answers: list[PathAnswer]
    attempts: list[Attempt]
    caller: str | None = None  # the id of the key that asked (None: the API is open)


class Pipeline:
    def __init__(
        self,
        classifier: Classifier,
        router: Router,
        dispatch: Dispatch,
        aggregator: Aggregator,
        sink: EventSink | None = None,
        *,
        spend: Spend | None = None,
        trace: Tracer | None = None,
        verifier: Verifier | None = None,
    ) -> None:
        """``spend``: charge each answer to its caller's key and keep it within the key's budget (the
        benchmarks pass none). ``verifier``: judges a cascade's first stage (agreement of its answers unless
        another is given)."""
        self.classifier, self.router, self.dispatch, self.aggregator = classifier, router, dispatch, aggregator
        self.sink, self.spend = sink, spend
        self.verifier = verifier or AgreementVerifier()
        self._passthrough = RefiningAggregator()  # one answer, or none: no hop to the aggregator
        self._tracer = trace or get_tracer(TRACER_NAME)  # whatever provider the process installed, or none

    async def walk(
        self, request: Query, request_id: str, on_delta: Callable[[str], None] | None = None
    ) -> Walked:
        """``on_delta`` receives the answer's text as a single streaming agent writes it."""
        with self._tracer.start_as_current_span("query", attributes={"swarm_route.request_id": request_id}):
            return await self._walk(request, request_id, on_delta)

    async def decide(self, request: Query) -> RouteDecision:
        """Classify and route without dispatching: where the query would go, and why (a dry run, within
        what the caller's key has left; nothing is held, and only a priced routing LLM is charged)."""
        request, _ = await self._capped(request)
        decision = await self._decide(request, {})
        self._charge_unheld(request, uuid.uuid4().hex, decision.router_llm_cost_usd)
        return decision

    async def _capped(self, request: Query) -> tuple[Query, Headroom | None]:
        """The request within what its key has left, and that headroom when it is what caps the request."""
        room = await self.spend.headroom(request.caller) if self.spend else None
        if room is None or (request.budget_usd is not None and request.budget_usd <= room.usd):
            return request, None
        return replace(request, budget_usd=room.usd), room

    async def _decide(self, request: Query, stages: dict[str, float]) -> RouteDecision:
        with self._stage(stages, "classify"):
            intent = await self.classifier.classify(request.text)
        with self._stage(stages, "route"):
            return await self.router.route(RouteRequest.of(request, intent))

    @contextmanager
    def _stage(self, stages: dict[str, float], name: str) -> Iterator[None]:
        """Time a stage for the trace returned to the client, and span it for OpenTelemetry."""
        t = time.perf_counter()
        with self._tracer.start_as_current_span(name):
            yield
        stages[name] = ms_since(t)

    async def _walk(
        self, request: Query, request_id: str, on_delta: Callable[[str], None] | None
    ) -> Walked:
        started = time.perf_counter()
        stages: dict[str, float] = {}
        query = request.text
        request, room = await self._capped(request)
        decision = await self._decide(request, stages)
        over_budget = [c.expected_cost_usd for c in decision.candidates if c.excluded and c.over_budget]
        if decision.declined and over_budget and all(c.excluded for c in decision.candidates):
            self._charge_unheld(request, request_id, decision.router_llm_cost_usd)
            if self.spend is not None and room is not None:  # the key's budget, not the request's, was too low
                raise self.spend.refuse(request.caller, room, min(over_budget))
            raise BudgetTooLow(min(over_budget))  # the budget, and nothing else, left no path

        tiers: list[Tier] = []
        judge_usd = 0.0
        # each step adds what it cost as it ends, so a step that fails leaves the bill at what was spent before it
        async with self._paying(request, request_id, decision) as bill:
            bill.cost_usd = decision.router_llm_cost_usd
            with self._stage(stages, "dispatch"):
                if decision.declined:
                    result = DispatchResult(answers=[], attempts=[], failed=[])
                    answers, reason = [], decision.declined
                else:
                    result, tiers, answers, judge_usd = await self._layered(query, decision, on_delta)
                    reason = "every agent chosen for it failed" if not answers else ""
            asked = result.answers  # a cascade's every stage: all of them were paid for, and each is evidence
            bill.cost_usd += sum(a.cost_usd for a in asked) + judge_usd
            with self._stage(stages, "aggregate"):
                probs = [decision.candidates[a.candidate].probability for a in answers]
                if len(answers) <= 1:
                    merged = self._passthrough.merge(answers, probs, reason)
                else:
                    merged = await self.aggregator.merge(query, answers, probs, reason)
            bill.cost_usd += merged.cost_usd
        llm_cost = {"router": decision.router_llm_cost_usd, "judge": judge_usd, "aggregator": merged.cost_usd}
        if decision.declined:
            self._charge_unheld(request, request_id, bill.cost_usd)

        evidence = {name: getattr(decision, name) for name in RouteEvidence.model_fields}
        response = QueryResponse(
            request_id=request_id,
            answer=merged.text,
            declined=merged.declined,
            agents=[h.agent for a in asked for h in a.hops],
            models=[h.model for a in asked for h in a.hops],
            cost_usd=bill.cost_usd,
            latency_ms=ms_since(started),
            prompt_tokens=sum(a.prompt_tokens for a in asked),
            completion_tokens=sum(a.completion_tokens for a in asked),
            trace=Trace.model_construct(
                **evidence,
                chosen=[a.candidate for a in answers],
                tiers=tiers,
                attempts=result.attempts,
                conflicts=merged.conflicts,
                refined_by=merged.refined_by,
                llm_cost_usd={model: usd for model, usd in llm_cost.items() if usd},
                stages_ms=stages,
            ),
        )
        if self.sink is not None and not answers:
            response.learning = "not recorded (nothing was answered)"
        elif self.sink is not None:
            response.learning = await self.sink.finished(
                FinishedRequest(
                    request_id=request_id,
                    query=query,
                    intent_weights=decision.intent_weights,
                    paths=_outcomes(asked, answers),
                    cost_usd=response.cost_usd,
                    cascade=bool(decision.escalation),
                    caller=request.caller,
                    trace_context=carrier(),
                )
            )
        return Walked(response, decision, answers, result.attempts, request.caller)

    def _paying(self, request: Query, request_id: str, decision: RouteDecision) -> AbstractAsyncContextManager[Bill]:
        """What the walk's block costs, charged to the caller's key as the block sets it: the chosen paths'
        expected cost (a cascade's escalation included) held before, the real cost (answers and the operator's
        models) charged after; what was held is released also when dispatch fails. A declined query holds
        nothing (its routing LLM's cost, if any, is charged after)."""
        if self.spend is None or decision.declined:
            return nullcontext(Bill())
        expected = sum(decision.candidates[i].expected_cost_usd for i in (*decision.chosen, *decision.escalation))
        return self.spend.paying(request.caller, request_id, expected)

    def _charge_unheld(self, request: Query, request_id: str, cost_usd: float) -> None:
        """A cost nothing was held for: the routing LLM's answer to a query that went no further (declined,
        refused for its budget, or a dry run)."""
        if self.spend is not None and cost_usd:
            self.spend.charge(request.caller, request_id, cost_usd)

    async def _layered(
        self, query: str, decision: RouteDecision, on_delta: Callable[[str], None] | None
    ) -> tuple[DispatchResult, list[Tier], list[PathAnswer], float]:
        """The chosen paths; for a cascade, the verifier judges their answers and the walk stops there or
        goes on to the escalation paths. Returns everything asked, the stages taken, the answers that
        stand and what judging cost. When the stronger stage fails, the first stage's best answer stands, and
        the trace says it was not verified (failing open: an answer in hand is not thrown away)."""
        first = await self._dispatch(query, decision, on_delta)
        if not decision.escalation:
            return first, [], first.answers, 0.0
        asked = [a.candidate for a in first.answers] or list(decision.chosen)
        verdict = (
            await self.verifier.judge(query, first.answers)
            if first.answers
            else Verdict(False, 0.0, 0, "every path of the first stage failed")
        )
        if verdict.accepted:
            tier = Tier(candidates=asked, verdict="accepted", score=verdict.score, reason=verdict.reason)
            return first, [tier], [first.answers[verdict.answer]], verdict.cost_usd
        onward = decision.model_copy(
            update={
                "chosen": decision.escalation,
                "escalation": [],
                "selection": [],
                "fallbacks": [i for i in decision.fallbacks if i not in decision.escalation],
            }
        )
        second = await self._dispatch(query, onward, on_delta)
        tiers = [
            Tier(candidates=asked, verdict="escalated", score=verdict.score, reason=f"{verdict.reason}; went on"),
            Tier(
                candidates=[a.candidate for a in second.answers] or list(decision.escalation),
                verdict="final",
                reason="the stronger stage's answer stands"
                if second.answers
                else "the stronger stage failed: the first stage's answer stands, unverified",
            ),
        ]
        stands = second.answers or first.answers[verdict.answer : verdict.answer + 1]
        everything = DispatchResult(
            answers=[*first.answers, *second.answers],
            attempts=[*first.attempts, *second.attempts],
            failed=[*first.failed, *second.failed],
        )
        return everything, tiers, stands, verdict.cost_usd

    async def _dispatch(
        self, query: str, decision: RouteDecision, on_delta: Callable[[str], None] | None
    ) -> DispatchResult:
        if on_delta is None:
            return await self.dispatch.run(query, decision)
        result = None
        async for item in self.dispatch.stream(query, decision):
            if isinstance(item, str):
                on_delta(item)
            else:
                result = item
        if result is None:
            raise StageUnavailable("dispatch", "its stream ended without a result")
        return result


def _outcomes(asked: Sequence[PathAnswer], shown: Sequence[PathAnswer]) -> list[PathOutcome]:
    """Every asked path's outcome, each marked whether its answer stood: one the caller got, or one giving the
    same short answer (a panel that agreed). A caller's grade is about those; an escalated cascade's first
    answers, which differed and were set aside, would otherwise take the strong path's grade as their own."""
    stood = {id(a) for a in shown}  # the answers shown are among those asked
    shorts = [short_answer(a.text) for a in asked]
    said = {s for a, s in zip(asked, shorts, strict=True) if id(a) in stood} - {""}
    return [PathOutcome.of(a, s, id(a) in stood or s in said) for a, s in zip(asked, shorts, strict=True)]
