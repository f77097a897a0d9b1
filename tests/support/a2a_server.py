"""A real HTTP server speaking A2A's JSON-RPC ``message/send``: answers with a Message, or a Task with an
artifact for texts starting 'task:', and fails on 'boom' (HTTP 500) or 'rpc-error' (a JSON-RPC error). The
whole message a part was cut from (the message's metadata) is echoed after the answer."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tests.support.openai_server import ThreadedServer


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/a2a")
    async def rpc(body: dict) -> JSONResponse:
        text = body["params"]["message"]["parts"][0]["text"]
        if body.get("method") != "message/send" or text == "rpc-error":
            error = {"code": -32601, "message": "method not found"}
            return JSONResponse({"jsonrpc": "2.0", "id": body.get("id"), "error": error})
        if text == "boom":
            return JSONResponse(status_code=500, content={})
        context = (body["params"]["message"].get("metadata") or {}).get("swarm_route/whole_message")
        answer = [{"kind": "text", "text": f"a2a says: {text}" + (f" (from: {context})" if context else "")}]
        if text.startswith("task:"):
            result = {"kind": "task", "id": "t1", "status": {"state": "completed"}, "artifacts": [{"parts": answer}]}
        else:
            result = {"kind": "message", "role": "agent", "messageId": "m1", "parts": answer}
        return JSONResponse({"jsonrpc": "2.0", "id": body["id"], "result": result})

    return app


class A2AServer(ThreadedServer):
    def __init__(self) -> None:
        super().__init__(make_app())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/a2a"
