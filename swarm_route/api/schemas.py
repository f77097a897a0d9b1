"""Request and response bodies of the REST API; their limits are part of the contract a client sees."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from swarm_route.core.messages import Attempt
from swarm_route.core.spend import SpendReport

REQUEST_ID = r"^[0-9a-f]{32}$"


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="the user's question; longer than the configured limit is refused")
    budget_usd: float | None = Field(None, gt=0, description="hard limit on the expected cost of the chosen paths")
    max_agents: int = Field(
        3, ge=1, description="at most this many agents answer independently (merged); the router picks how many"
    )
    cost_weight: float | None = Field(
        None, ge=0, le=100, description="λ for this request: 0 ignores cost, higher trades quality for price"
    )


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(pattern=REQUEST_ID, description="the request_id of a /v1/query response")
    score: float = Field(ge=0, le=1, description="quality of the answer, 0 (useless) to 1 (perfect)")


class FeedbackAccepted(BaseModel):
    request_id: str
    accepted: bool = True


class Trails(BaseModel):
    intent: str
    tau_init: float
    tau_min: float
    tau_max: float
    trails: dict[str, float] = Field(description="edge 'u>v' → τ; edges not listed read as tau_init")
    on_trial: dict[str, int] = Field(
        default_factory=dict,
        description="a newcomer's seeded edge → graded events left before its trail evaporates like the rest",
    )


class ErrorBody(BaseModel):
    error: str
    detail: list[dict[str, Any]] | None = None


class InvokeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="sent to the agent as is")
    model: str | None = Field(None, description="one of the agent's models; its first when omitted")


class InvokeResponse(BaseModel):
    agent: str
    model: str
    answer: str
    cost_usd: float
    latency_ms: float
    attempts: list[Attempt]


class AgentState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="false pauses the agent: routing leaves it out until it is resumed")


class UpdaterState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(description="false pauses learning: finished requests are not published or graded")


class KeySpend(SpendReport):
    """One key's spend and budget, by id."""

    admin: bool | None = Field(None, description="the key's scope; None for an id no configured key has")


class ReplicaStatus(BaseModel):
    endpoint: str
    in_flight: int = Field(description="calls in flight, as one dispatch replica counts them")
    cooling_s: float = Field(description="seconds until a cooled-down replica is tried again; 0: healthy")


class AgentStatus(BaseModel):
    """An agent as the console's Agents page shows it."""

    name: str
    kind: str
    paused: bool
    skills: list[str]
    models: list[str]
    replicas: list[ReplicaStatus]
    latency_ms: dict[str, float] = Field(description="per model: recent latency (EWMA, written by the updater)")
    quality: float | None = Field(description="mean score of its recent graded answers; None before any")
    graded: int = Field(description="graded answers that mean is taken over")
    chosen_recently: int = Field(description="times chosen in the last 15 minutes")
