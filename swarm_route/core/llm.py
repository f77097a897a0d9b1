"""An OpenAI-compatible chat model the router or the aggregator may consult, and the client agents use.

Every client is built here the same way: no SDK retries (callers decide what a failure means), a hard
timeout, and no redirects, since a redirect could carry a key and a user's query to a host nobody chose.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import openai
from pydantic import BaseModel, Field


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


class LLMUnavailable(Exception):
    """The model did not give a usable answer in time; callers fall back rather than fail."""


class ChatModel:
    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        key = os.environ.get(settings.api_key_env, "") if settings.api_key_env else ""
        self._client = openai_client(settings.base_url, key, settings.timeout_s)

    async def complete(self, system: str, user: str) -> str:
        try:
            completion = await self._client.chat.completions.create(
                model=self.settings.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                max_tokens=self.settings.max_tokens,
                temperature=0,
            )
        except openai.OpenAIError as exc:
            raise LLMUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if not completion.choices or not completion.choices[0].message.content:
            raise LLMUnavailable("empty answer")
        return completion.choices[0].message.content
