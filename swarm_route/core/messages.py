"""Every message that crosses a stage or a Serve handle, typed once.

The walk of a query passes these from stage to stage (``core.pipeline``); the API's response schema reuses
them rather than copying their fields; the finished record the updater learns from is built from them.
One agent-model pair is a ``Hop``; ``node_id`` and ``edge_id`` are the only places that spell a node or an
edge of the path graph as text (pheromone is keyed by those strings).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SOURCE = "source"
SINK = "sink"


def node_id(agent: str, model: str) -> str:
    """The path graph's node of one agent answering with one model."""
    return f"{agent}/{model}"


def node_agent(node: str) -> str:
    """The agent of a node (a model's name may hold '/', an agent's may not)."""
    return node.partition("/")[0]


def edge_id(u: str, v: str) -> str:
    """An edge of the path graph: what pheromone is laid on."""
    return f"{u}>{v}"


def edge_agents(edge: str) -> set[str]:
    """The agents whose nodes an edge joins (none for source and sink)."""
    return {node_agent(n) for n in edge.split(">") if n not in (SOURCE, SINK)}


def path_edges(nodes: tuple[str, ...] | list[str]) -> list[str]:
    """The edges of a path through ``nodes`` (agent/model nodes, without source and sink)."""
    return [edge_id(u, v) for u, v in itertools.pairwise((SOURCE, *nodes, SINK))]


class Hop(BaseModel):
    """One agent answering with one of its models: a node of the path graph."""

    model_config = ConfigDict(frozen=True)

    agent: str
    model: str

    @property
    def node(self) -> str:
        return node_id(self.agent, self.model)


# ---------------------------------------------------------------------------------------------- classify


def top_intent(weights: Mapping[str, float]) -> str | None:
    """The heaviest intent of a weights map (the first of equals), None when there is none."""
    return max(weights, key=weights.__getitem__) if weights else None


@dataclass(frozen=True)
class IntentResult:
    weights: dict[str, float]  # intent → weight, summing to 1 over the intents kept; empty when out of scope
    similarity: dict[str, float]  # intent → classifier score (higher fits better)
    oos_score: float  # in (0, 1): above 0.5 means the best intent scored below the out-of-scope threshold
    out_of_scope: bool
    set_floor: float = 1.0  # calibrated weight an intent needs to join the agent set (the best always does)
    parts: dict[str, str] = field(default_factory=dict)  # a compound query: intent → the part that asks for it

    def top(self) -> str | None:
        return top_intent(self.weights)


# ---------------------------------------------------------------------------------------------- route


@dataclass(frozen=True, kw_only=True)
class Query:
    """One validated query, as the walk receives it."""

    text: str
    budget_usd: float | None = None
    max_agents: int = 3
    cost_weight: float | None = None  # λ for this query; None: the configured one
    agent: str | None = None  # addressed directly: skip the choice among agents
    explore: bool = True  # False: always the most probable path (benchmarks' frozen runs)
    caller: str | None = None  # the id of the API key that asked: only it (or an admin) may grade the answer


@dataclass(frozen=True, kw_only=True)
class RouteRequest(Query):
    """A query with its intent weights: what the router needs besides the registry and trails it reads."""

    intent: IntentResult

    @classmethod
    def of(cls, query: Query, intent: IntentResult) -> RouteRequest:
        return cls(**{f.name: getattr(query, f.name) for f in fields(Query)}, intent=intent)


class Candidate(BaseModel):
    path: list[Hop]
    edges: list[str]
    tau: float
    eta: float
    ability: float = Field(description="intent match × predicted quality on this query")
    quality: float = Field(description="predicted score on this query, from graded neighbours")
    expected_cost_usd: float
    latency_s: float | None = None
    probability: float = 0.0
    excluded: str | None = Field(None, description="why the candidate could not be chosen")
    over_budget: bool = Field(False, description="excluded because its expected cost exceeds the budget")

    @property
    def agents(self) -> list[str]:
        return [h.agent for h in self.path]


class Selected(BaseModel):
    """Why an agent is in the set: the capability it covers and the evidence for it."""

    agents: list[str]
    intent: str = Field(description="the needed intent this path was chosen to cover")
    weight: float = Field(description="the intent's weight after mixing in the LLM's pick")
    classifier_weight: float = Field(description="the intent classifier's calibrated weight")
    llm_selected: bool | None = Field(None, description="whether the LLM named this agent (None: no LLM)")
    tau: float
    probability: float = Field(description="p of this path among those serving the intent")
    part: str | None = Field(None, description="the part of a compound query this path is asked (None: all of it)")


class RouteEvidence(BaseModel):
    """What the router saw and why it chose: in its decision, and in the trace a client gets back."""

    intent_weights: dict[str, float]
    out_of_scope: bool
    oos_score: float
    candidates: list[Candidate]
    reasoning: str
    selection: list[Selected] = Field(default_factory=list, description="the agent set, one entry per chosen path")
    set_floor: float = Field(1.0, description="weight an intent needed to join the set")
    router_llm: str | None = Field(None, description="the routing LLM's reasoning, or why it was not used")
    store: str | None = Field(None, description="set when the store was unreachable and routing failed open")


class RouteDecision(RouteEvidence):
    chosen: list[int] = Field(description="indices into candidates, dispatched concurrently")
    escalation: list[int] = Field(
        default_factory=list,
        description="a cascade: indices into candidates asked only when a verifier rejects the chosen paths' answers",
    )
    fallbacks: list[int] = Field(description="indices tried in order if every chosen path fails")
    declined: str | None = None
    cost_weight: float = 0.0
    router_llm_cost_usd: float = Field(0.0, description="what asking the routing LLM cost, charged with the query")


# ---------------------------------------------------------------------------------------------- dispatch


@dataclass(frozen=True)
class AgentAnswer:
    """What every agent backend returns, so dispatch can treat them alike."""

    text: str
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    score: float | None = None  # a quality score known with the answer (a replay's recorded score), else None


class AgentError(Exception):
    """An agent call failed; ``retryable`` says whether trying the same replica again may help."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def estimate_tokens(text: str) -> int:
    """About four characters a token: enough for budgeting before a call, and for billing a call whose
    server reported no usage, or an impossible one."""
    return max(1, len(text) // 4)


def possible_tokens(*counts: object) -> bool:
    """Whether token counts a server reported can be believed: whole, not negative, not absurd (a negative
    count would credit whoever pays; one of 10^9 is no real call)."""
    return all(isinstance(n, int) and 0 <= n < 10**9 for n in counts)


EXPECTED_ANSWER_TOKENS = 300  # an answer's length, guessed before the call


def expected_tokens(query: str) -> int:
    """The tokens a call on ``query`` is expected to bill before it is made: its prompt and a typical answer
    (what the router prices a path without cost history at)."""
    return estimate_tokens(query) + EXPECTED_ANSWER_TOKENS


class Attempt(BaseModel):
    agent: str
    model: str
    attempt: int
    ok: bool
    latency_ms: float
    error: str | None = None
    fallback: bool = False
    replica: str | None = Field(None, description="the endpoint called, when the agent has several")
    cooled_down: bool = Field(False, description="this failure put the replica into cooldown")


class PathAnswer(BaseModel):
    candidate: int  # index into the decision's candidates
    part: str | None = None  # the part of a compound query it answers (None: all of it)
    hops: list[Hop]
    edges: list[str]
    text: str
    cost_usd: float = Field(description="what the query cost its caller: the agents' answers and the operator's models")
    latency_ms: float
    score: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def agents(self) -> list[str]:
        return [h.agent for h in self.hops]

    @property
    def label(self) -> str:
        """How the merged answer names where a part came from."""
        return "+".join(self.agents)


class DirectCall(BaseModel):
    """One agent called directly (no routing): its answer, or why there is none."""

    model: str | None
    answer: AgentAnswer | None = None  # None: every attempt failed, or nothing was called
    attempts: list[Attempt] = Field(default_factory=list)
    unknown: Literal["agent", "model"] | None = None  # what the call named that is not registered


class DispatchResult(BaseModel):
    answers: list[PathAnswer]
    attempts: list[Attempt]
    failed: list[int]  # candidates whose every attempt failed


# ---------------------------------------------------------------------------------------------- aggregate


class Aggregate(BaseModel):
    text: str
    sources: list[int]  # indices into the answers merged, leading answer first
    conflicts: list[str]
    declined: bool = False
    refined_by: str | None = None  # the LLM that wrote the merged text, None for a deterministic merge
    cost_usd: float = 0.0  # what asking the LLM to merge cost (also when its merge was not used)


# ---------------------------------------------------------------------------------------------- answer


class Tier(BaseModel):
    """One stage of a layered path as the walk took it: who answered, what the verifier made of it, and
    whether the walk stopped there or went on."""

    candidates: list[int] = Field(description="indices into candidates of the paths asked at this stage")
    verdict: Literal["accepted", "escalated", "final"]
    score: float | None = Field(None, description="the verifier's estimate that the stage's answer is right")
    reason: str


class Trace(RouteEvidence):
    """The routing evidence, what dispatch did and how long each stage took: why a query went where it went."""

    chosen: list[int] = Field(description="indices into candidates of the paths whose answers were used")
    tiers: list[Tier] = Field(default_factory=list, description="a cascade's stages in order; empty: one stage")
    attempts: list[Attempt]
    conflicts: list[str]
    refined_by: str | None = Field(None, description="the LLM that merged several answers; None: deterministic")
    llm_cost_usd: dict[str, float] = Field(
        default_factory=dict,
        description="what the operator's models cost this query (router, judge, aggregator; those asked), "
        "included in cost_usd",
    )
    stages_ms: dict[str, float]


class QueryResponse(BaseModel):
    request_id: str
    answer: str
    declined: bool
    agents: list[str]
    models: list[str]
    cost_usd: float = Field(description="what the query cost its caller: the agents' answers and the operator's models")
    latency_ms: float
    prompt_tokens: int = Field(0, description="as the agents reported them; 0 for tool agents")
    completion_tokens: int = 0
    learning: str = Field(
        "off",
        description="what becomes of this answer for learning: queued, paused, not recorded (nothing answered), "
        "or dropped (the store is down and the replica's outbox is full); off: no learning here",
    )
    trace: Trace


# ---------------------------------------------------------------------------------------------- learn


SHORT_ANSWER_CHARS = 64  # a first line longer than this is prose or code, not an answer to compare


class PathOutcome(BaseModel):
    """One path's part of a finished request. Bounded here, so a record that reaches the updater cannot
    make a path look cheap (a negative cost) or divide by zero (a cost of exactly −ε)."""

    edges: list[str]
    nodes: list[str]
    cost_usd: float = Field(ge=0, allow_inf_nan=False)
    latency_ms: float = Field(ge=0, allow_inf_nan=False)
    score: float | None = Field(None, ge=0, le=1)  # known at answer time (a replay's recorded score)
    answer: str | None = Field(
        None, max_length=SHORT_ANSWER_CHARS, description="the answer's short form, '' when too long to compare"
    )
    stood: bool = Field(
        True,
        description="its answer is what the caller got (or says the same): a caller's grade is about it. A "
        "cascade's other answers were asked and paid for but not shown, and the grade says nothing of them",
    )

    @classmethod
    def of(cls, answer: PathAnswer, short: str | None = None, stood: bool = True) -> PathOutcome:
        """``short``: the answer's short form (``verify.short_answer``), kept to learn when paths agree."""
        return cls(
            edges=answer.edges,
            nodes=[h.node for h in answer.hops],
            cost_usd=answer.cost_usd,
            latency_ms=answer.latency_ms,
            score=answer.score,
            answer=short,
            stood=stood,
        )


class FinishedRequest(BaseModel):
    """What goes onto the finished-request stream: enough to grade a request and reward its path later."""

    type: Literal["finished"] = "finished"
    request_id: str
    query: str = ""  # kept so graded outcomes can teach the ability model; empty when not to be stored
    intent_weights: dict[str, float]
    paths: list[PathOutcome]
    cost_usd: float = Field(ge=0, allow_inf_nan=False)
    cascade: bool = Field(
        False, description="a cascade's walk: its paths were asked on condition, so they teach no trail"
    )
    caller: str | None = Field(None, description="id of the API key that made the request; None: no keys")
    trace_context: dict[str, str] = Field(default_factory=dict, description="W3C carrier of the query's span")
    created: float = Field(default_factory=time.time)


class Feedback(BaseModel):
    type: Literal["feedback"] = "feedback"
    request_id: str
    score: float = Field(ge=0, le=1)
    created: float = Field(default_factory=time.time)


Event = FinishedRequest | Feedback


class FitProgress(BaseModel):
    step: str
    done: int
    total: int


class IntentStatus(BaseModel):
    """What a classifier replica is answering with, and the refit it is working on, if any."""

    state: Literal["unfitted", "fitting", "ready", "refitting", "failed"] = Field(
        description="fitting: the first fit (not yet answering); refitting: the previous model answers while a "
        "new one is fitted in the background; failed: the last refit failed, the previous model answers"
    )
    registry_version: int | None = Field(None, description="the registry version the answering model learnt")
    intents: int = 0
    examples: int = Field(0, description="labelled examples the answering model learnt from")
    last_fit: Literal["full", "incremental"] | None = Field(
        None, description="incremental: new agents' intents added to the fitted model in about a second"
    )
    last_fit_seconds: float | None = None
    refit_version: int | None = Field(None, description="the registry version being learnt now")
    refit_started: float | None = Field(None, description="unix time the refit began")
    progress: FitProgress | None = None
    error: str | None = Field(None, description="why the last refit failed")
