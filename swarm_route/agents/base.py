"""What every agent backend returns and raises, so dispatch can treat them alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from swarm_route.core.registry import AgentSpec


@dataclass(frozen=True)
class AgentAnswer:
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


class AgentBackend(Protocol):
    async def answer(self, spec: AgentSpec, model: str, query: str) -> AgentAnswer: ...


def estimate_tokens(text: str) -> int:
    """About four characters a token: enough for budgeting before a call, never used for billing."""
    return max(1, len(text) // 4)
