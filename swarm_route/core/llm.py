"""An OpenAI-compatible chat model the router, the aggregator or a cascade's judge may consult, and the
client agents use.

Every client is built here the same way: no SDK retries (callers decide what a failure means), a hard
timeout, and no redirects, since a redirect could carry a key and a user's query to a host nobody chose.
A consulted model is paid per query like an agent: each reply says what it cost at the operator's price,
from the usage the server reports, so the caller whose query asked for it is charged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import openai
from pydantic import BaseModel, Field

from swarm_route.core.messages import estimate_tokens, possible_tokens


def openai_client(
    base_url: str, api_key: str, timeout_s: float, headers: Mapping[str, str] | None = None
) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=base_url,
        api_key=api_key or "unused",
        timeout=timeout_s,
        max_retries=0,
        default_headers=dict(headers or {}),
        http_client=openai.DefaultAsyncHttpxClient(follow_redirects=False, timeout=timeout_s),
    )


class LLMSettings(BaseModel):
    """Where the model lives; the key is read from the named environment variable, never from config."""

    base_url: str = Field(pattern=r"^https?://", description="OpenAI-compatible base URL, e.g. http://vllm:8000/v1")
    model: str = Field(min_length=1)
    api_key_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")
    timeout_s: float = Field(5.0, gt=0, description="past this the caller falls back to its non-LLM decision")
    max_tokens: int = Field(400, ge=16)
    cost_per_1k_tokens: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="USD per 1,000 tokens (prompt and completion), charged to the key whose query made the call; "
        "0: free (a model the operator hosts)",
    )


@dataclass(frozen=True)
class Reply:
    """A usable answer, and what it cost at the model's price."""

    text: str
    cost_usd: float


class LLMUnavailable(Exception):
    """The model did not give a usable answer in time; callers fall back rather than fail. ``cost_usd``: what
    the call cost all the same (a model that answered, but with nothing usable; 0 when it gave no answer)."""

    def __init__(self, message: str, cost_usd: float = 0.0) -> None:
        super().__init__(message)
        self.cost_usd = cost_usd


class ChatModel:
    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        self._client = openai_client(settings.base_url, key, settings.timeout_s)

    async def complete(self, system: str, user: str) -> Reply:
        """The model's answer and its cost: tokens as the server reports them, estimated from the texts where
        it reports none or impossible ones."""
        try:
            completion = await self._client.chat.completions.create(
                model=self.settings.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                max_tokens=self.settings.max_tokens,
                temperature=0,
            )
        except openai.OpenAIError as exc:
            raise LLMUnavailable(f"{type(exc).__name__}: {exc}") from exc
        text = completion.choices[0].message.content if completion.choices else None
        usage = completion.usage
        reported = (usage.prompt_tokens, usage.completion_tokens) if usage else None
        if reported is not None and possible_tokens(*reported):
            tokens = sum(reported)
        else:  # none reported, or none possible: estimated, as an agent's would be
            tokens = estimate_tokens(system) + estimate_tokens(user) + estimate_tokens(text or "")
        cost = tokens * self.settings.cost_per_1k_tokens / 1000
        if not text:
            raise LLMUnavailable("empty answer", cost)
        return Reply(text, cost)
