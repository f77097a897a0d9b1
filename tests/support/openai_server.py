"""A real HTTP server that speaks the OpenAI chat-completions protocol, for agents of kind ``openai``.

It answers deterministically from the request, so tests can check what the agent was sent. Model names
steer failure modes: ``broken`` answers HTTP 500, ``slow`` sleeps past any sane timeout, ``flaky`` fails
every other call. ``scripted`` answers with the next text a test queued in ``app.state.scripts``
(for routing and refining prompts whose answers must have a given shape).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from swarm_route.store import free_port


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


class ThreadedServer:
    """A real uvicorn server on a free loopback port, in a thread of the test process."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.port = free_port()
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> ThreadedServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("test server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


class OpenAIServer(ThreadedServer):
    def __init__(self) -> None:
        super().__init__(make_app())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"
