"""A fake of what cannot run here, a hosted LLM: a real HTTP server speaking the OpenAI chat-completions
protocol, for the chaos benchmark's agent replicas and the tests.

It answers deterministically from the request. Model names steer failure modes: ``broken`` answers HTTP
500, ``slow`` sleeps past any sane timeout, ``flaky`` fails every other call, ``redirect`` answers 307 to
another host, ``scripted`` answers with the next text queued in ``app.state.scripts``, ``stream-broken``
breaks its stream half-way, ``verbose`` reports 1,000 completion tokens (dearer than a router expects),
``lying`` reports a negative prompt token count.
``"stream": true`` gets the answer as server-sent chunks, word by word.
Run one as a process: ``python -m swarm_route.bench.fake_llm --port 8001``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


def make_app() -> FastAPI:
    app = FastAPI()
    calls = itertools.count()
    app.state.requests = []
    app.state.keys = []  # the bearer token of each chat request, so tests see what a caller sent
    app.state.scripts = []

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": "echo-1", "object": "model", "created": 0, "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    async def chat(body: dict, request: Request) -> JSONResponse:
        app.state.requests.append(body)
        app.state.keys.append(request.headers.get("authorization", "").removeprefix("Bearer "))
        model = body.get("model", "")
        n = next(calls)
        if model == "broken" or (model == "flaky" and n % 2 == 0):
            return JSONResponse(status_code=500, content={"error": {"message": "upstream exploded"}})
        if model == "redirect":
            return JSONResponse(
                status_code=307, content={}, headers={"location": "http://127.0.0.2:9/v1/chat/completions"}
            )
        if model == "slow":
            await asyncio.sleep(30)
        completion = 20
        if model == "verbose":  # an answer far longer than a router expects: it costs more than was held for it
            completion = 1000
            await asyncio.sleep(0.05)
        prompt = -100 if model == "lying" else 10
        question = body["messages"][-1]["content"]
        text = f"[{model}] you asked: {question}"
        if model == "scripted":
            text = app.state.scripts.pop(0) if app.state.scripts else "no script queued"
        if body.get("stream"):
            return StreamingResponse(_chunks(f"chatcmpl-{n}", model, text), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            }
        )

    return app


async def _chunks(completion_id: str, model: str, text: str) -> AsyncIterator[str]:
    """The answer word by word as ``chat.completion.chunk`` events; ``stream-broken`` dies half-way."""
    words = text.split(" ")
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def event(delta: dict[str, str], finish: str | None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return "data: " + json.dumps({**head, "choices": [choice]}) + "\n\n"

    for i, word in enumerate(words):
        if model == "stream-broken" and i == len(words) // 2:
            raise RuntimeError("replica died mid-stream")
        yield event({"content": word if i == 0 else " " + word}, None)
        await asyncio.sleep(0.005)
    yield event({}, "stop")
    yield "data: [DONE]\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(make_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
