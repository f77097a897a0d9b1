"""Agents that speak A2A: one JSON-RPC ``message/send`` per query, text parts back.

Hand-written over httpx rather than through an A2A SDK: routing needs one method of the protocol, and the
call must follow our rules (no redirects, retries left to dispatch, errors classed as retryable or not).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from swarm_route.agents import no_answer, refused_status
from swarm_route.core.messages import AgentAnswer, AgentError, estimate_tokens
from swarm_route.core.registry import AgentSpec


def _texts(parts: list[dict[str, Any]] | None) -> list[str]:
    return [p["text"] for p in parts or [] if p.get("kind", p.get("type")) == "text" and p.get("text")]


def answer_text(result: dict[str, Any]) -> str:
    """The text of a ``message/send`` result: a Message's parts, or a Task's artifacts (else its status
    message)."""
    if result.get("kind") == "message":
        texts = _texts(result.get("parts"))
    else:
        texts = [t for artifact in result.get("artifacts") or [] for t in _texts(artifact.get("parts"))]
        texts = texts or _texts(((result.get("status") or {}).get("message") or {}).get("parts"))
    return "\n".join(texts)


CONTEXT_KEY = "swarm_route/whole_message"  # message metadata: the whole message a part was cut from


class A2ABackend:
    def __init__(self, timeout_s: float = 30.0, headers: Mapping[str, str] | None = None) -> None:
        self._http = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, headers=dict(headers or {}))

    async def answer(self, spec: AgentSpec, model: str, query: str, context: str | None = None) -> AgentAnswer:
        """``context`` (the whole message ``query`` is a part of) travels as the message's metadata, where an
        agent that wants it finds it and one that reads only text parts is not asked the other parts too."""
        price = next(m.cost_per_1k_tokens for m in spec.models if m.name == model)
        request = {
            "jsonrpc": "2.0",
            "id": uuid.uuid4().hex,
            "method": "message/send",
            "params": {
                "message": {
                    "role": "user",
                    "kind": "message",
                    "messageId": uuid.uuid4().hex,
                    "parts": [{"kind": "text", "text": query}],
                    **({"metadata": {CONTEXT_KEY: context}} if context is not None else {}),
                }
            },
        }
        try:
            response = await self._http.post(spec.endpoint, json=request)
        except httpx.HTTPError as exc:
            raise no_answer(spec, f"{type(exc).__name__}: {exc}", retryable=True) from exc
        if response.status_code != 200:
            raise refused_status(spec, response.status_code)
        try:
            body = response.json()
        except ValueError as exc:
            raise no_answer(spec, "a body that is not JSON", retryable=False) from exc
        if "error" in body:
            error = body["error"] or {}
            raise AgentError(f"A2A error {error.get('code')}: {error.get('message')}", retryable=False)
        text = answer_text(body.get("result") or {})
        if not text:
            raise no_answer(spec, "no text in the answer", retryable=True)
        tokens = estimate_tokens(query) + estimate_tokens(text)
        return AgentAnswer(text=text, cost_usd=tokens * price / 1000)
