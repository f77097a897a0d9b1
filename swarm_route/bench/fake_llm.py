"""A fake of what cannot run here, a hosted LLM: a real HTTP server speaking the OpenAI chat-completions
protocol, for the chaos benchmark's agent replicas and the tests.

It answers deterministically from the request. Model names steer failure modes: ``broken`` answers HTTP
500, ``slow`` sleeps past any sane timeout, ``flaky`` fails every other call, ``redirect`` answers 307 to
another host, ``scripted`` answers with the next text queued in ``app.state.scripts``.
Run one as a process: ``python -m swarm_route.bench.fake_llm --port 8001``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse


def make_app() -> FastAPI:
    app = FastAPI()
    calls = itertools.count()
    app.state.requests = []
    app.state.scripts = []

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": "echo-1", "object": "model", "created": 0, "owned_by": "test"}]}

    @app.post("/v1/chat/completions")
    async def chat(body: dict) -> JSONResponse:
        app.state.requests.append(body)
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
        question = body["messages"][-1]["content"]
        text = f"[{model}] you asked: {question}"
        if model == "scripted":
            text = app.state.scripts.pop(0) if app.state.scripts else "no script queued"
        return JSONResponse(
            {
                "id": f"chatcmpl-{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
            }
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(make_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
