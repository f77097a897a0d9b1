"""The OpenAI chat-completions dialect: request and response shapes, and server-sent-event chunks.

Only what the routing needs is read from a request (the last user message, the model name, ``stream``);
the rest of the OpenAI parameters are accepted and ignored rather than refused, so clients built for
OpenAI work unchanged.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from swarm_route.core.messages import QueryResponse, estimate_tokens

AUTO_MODEL = "swarm-route/auto"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(AUTO_MODEL, description=f"{AUTO_MODEL!r} routes; an agent's name addresses it directly")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    budget_usd: float | None = Field(None, gt=0, description="swarm_route extension: hard cost limit")
    max_agents: int = Field(3, ge=1, description="swarm_route extension: at most this many agents answer")

    @model_validator(mode="after")
    def _has_user_text(self) -> ChatRequest:
        if not any(m.role == "user" and m.text().strip() for m in self.messages):
            raise ValueError("messages needs at least one user message with text")
        return self

    def query(self) -> str:
        """The last user message: what is routed. Earlier turns are context the agents do not see yet."""
        return next(m.text() for m in reversed(self.messages) if m.role == "user" and m.text().strip())


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "swarm_route"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def chat_completion(request: ChatRequest, result: QueryResponse) -> dict[str, Any]:
    """A ``chat.completion`` object; token counts are the agents' own, estimated where they report none."""
    prompt = result.prompt_tokens or estimate_tokens(request.query())
    completion = result.completion_tokens or estimate_tokens(result.answer)
    return {
        "id": f"chatcmpl-{result.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.answer},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        "swarm_route": result.model_dump(mode="json", exclude={"answer"}),
    }


async def stream_chunks(
    request: ChatRequest,
    request_id: str,
    first: str | None,
    deltas: asyncio.Queue[str | None],
    walk: asyncio.Task[QueryResponse],
) -> AsyncIterator[str]:
    """``chat.completion.chunk`` events: the role, then the agent's own text as it streams it (when one
    streaming agent answers), else the final answer once known; last the stop with usage and the trace."""
    base = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": request.model,
    }

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(chunk)}\n\n"

    yield event({"role": "assistant", "content": ""})
    streamed = False
    item = first
    while item is not None:
        streamed = True
        yield event({"content": item})
        item = await deltas.get()
    result = await walk
    completion = chat_completion(request, result)
    if not streamed:
        yield event({"content": result.answer})
    yield event({}, "stop", usage=completion["usage"], swarm_route=completion["swarm_route"])
    yield "data: [DONE]\n\n"
