"""The fake LLM (``swarm_route.bench.fake_llm``) served from a thread of the test process."""

from __future__ import annotations

import threading
import time

import uvicorn
from fastapi import FastAPI

from swarm_route.bench.fake_llm import make_app
from swarm_route.store import free_port


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
