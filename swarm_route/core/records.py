"""What goes onto the finished-request stream: enough to grade a request and reward its path later."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field


class PathOutcome(BaseModel):
    edges: list[str]
    nodes: list[str]
    cost_usd: float
    latency_ms: float
    score: float | None = None  # known at answer time (a replay's recorded score)


class FinishedRequest(BaseModel):
    type: Literal["finished"] = "finished"
    request_id: str
    query: str = ""  # kept so graded outcomes can teach the ability model; empty when not to be stored
    intent_weights: dict[str, float]
    paths: list[PathOutcome]
    cost_usd: float
    trace_context: dict[str, str] = Field(default_factory=dict, description="W3C carrier of the query's span")
    created: float = Field(default_factory=time.time)


class Feedback(BaseModel):
    type: Literal["feedback"] = "feedback"
    request_id: str
    score: float = Field(ge=0, le=1)
    created: float = Field(default_factory=time.time)


Event = FinishedRequest | Feedback
