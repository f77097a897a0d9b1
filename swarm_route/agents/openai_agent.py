"""Agents behind an OpenAI-compatible chat-completions endpoint (vLLM, OpenAI, …), through ``openai``."""

from __future__ import annotations

import asyncio
import os
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping

import openai

from swarm_route.agents import no_answer, refused_status
from swarm_route.core.llm import openai_client
from swarm_route.core.messages import AgentAnswer, estimate_tokens
from swarm_route.core.registry import AGENT_KEY_ENV, AgentSpec

MAX_CLIENTS = 256
# told to an agent asked one part of a message that asks for several things: the rest is context, not its task
PART_OF = (
    "The user's message asks for several things; another agent answers the others. Answer only the part "
    "in the user turn, reading the whole message for context: {context}"
)


class OpenAIBackend:
    """One client per (endpoint, key), built by ``openai_client``: retries are dispatch's job, redirects nobody's."""

    def __init__(self, timeout_s: float = 30.0, headers: Mapping[str, str] | None = None) -> None:
        """``headers`` go with every call (the service's ``VIA_HEADER``, so a call that comes back is refused)."""
        self._timeout = timeout_s
        self._headers = dict(headers or {})
        self._closing: set[asyncio.Future[None]] = set()
        # the most recently used clients: endpoints come and go with the registry, memory must not
        self._clients: OrderedDict[tuple[str, str | None], openai.AsyncOpenAI] = OrderedDict()

    def _client(self, spec: AgentSpec) -> openai.AsyncOpenAI:
        key = (spec.endpoint, spec.api_key_env)
        if key in self._clients:
            self._clients.move_to_end(key)
            return self._clients[key]
        named = spec.api_key_env if spec.api_key_env and re.match(AGENT_KEY_ENV, spec.api_key_env) else None
        api_key = os.environ.get(named, "") if named else ""
        self._clients[key] = client = openai_client(spec.endpoint, api_key, self._timeout, self._headers)
        while len(self._clients) > MAX_CLIENTS:
            _, old = self._clients.popitem(last=False)
            self._closing.add(task := asyncio.ensure_future(old.close()))
            task.add_done_callback(self._closing.discard)
        return client

    async def answer(self, spec: AgentSpec, model: str, query: str, context: str | None = None) -> AgentAnswer:
        price = next(m.cost_per_1k_tokens for m in spec.models if m.name == model)
        system = spec.description if context is None else f"{spec.description}\n\n{PART_OF.format(context=context)}"
        try:
            completion = await self._client(spec).chat.completions.create(
                model=model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": query}],
            )
        except (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError) as exc:
            raise no_answer(spec, f"{type(exc).__name__}: {exc}", retryable=True) from exc
        except openai.APIStatusError as exc:
            raise refused_status(spec, exc.status_code) from exc
        if not completion.choices or not completion.choices[0].message.content:
            raise no_answer(spec, "an empty answer", retryable=True)
        usage = completion.usage
        prompt, answer = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        return AgentAnswer(
            text=completion.choices[0].message.content,
            cost_usd=(prompt + answer) * price / 1000,
            prompt_tokens=prompt,
            completion_tokens=answer,
        )

    async def stream(self, spec: AgentSpec, model: str, query: str) -> AsyncIterator[str | AgentAnswer]:
        """The answer as it is written: text deltas, then the whole answer (tokens as reported with
        ``include_usage``, estimated where the server reports none)."""
        price = next(m.cost_per_1k_tokens for m in spec.models if m.name == model)
        try:
            stream = await self._client(spec).chat.completions.create(
                model=model,
                messages=[{"role": "system", "content": spec.description}, {"role": "user", "content": query}],
                stream=True,
                stream_options={"include_usage": True},
            )
            parts: list[str] = []
            usage = None
            async for chunk in stream:
                usage = chunk.usage or usage
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    parts.append(delta)
                    yield delta
        except (openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError) as exc:
            raise no_answer(spec, f"{type(exc).__name__}: {exc}", retryable=True) from exc
        except openai.APIStatusError as exc:
            raise refused_status(spec, exc.status_code) from exc
        text = "".join(parts)
        if not text:
            raise no_answer(spec, "an empty stream", retryable=True)
        prompt = usage.prompt_tokens if usage else estimate_tokens(query)
        answer = usage.completion_tokens if usage else estimate_tokens(text)
        yield AgentAnswer(
            text=text, cost_usd=(prompt + answer) * price / 1000, prompt_tokens=prompt, completion_tokens=answer
        )
