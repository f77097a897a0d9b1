"""A request body larger than the limit is refused before anything reads it: with or without a key.

Pure ASGI (not ``BaseHTTPMiddleware``), so a streamed body is counted as it arrives and never buffered
whole: a declared ``Content-Length`` over the limit is refused at once, an undeclared (chunked) body as soon
as its bytes pass the limit.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from swarm_route.api.schemas import ErrorBody


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _refusal(self) -> JSONResponse:
        message = f"request body too large: at most {self.max_bytes} bytes (limits.max_body_bytes)"
        return JSONResponse(status_code=413, content=ErrorBody(error=message).model_dump(exclude_none=True))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refusal()(scope, receive, send)
            return
        seen, over = 0, False

        async def counted() -> Message:
            """The body as it arrives; past the limit, an end of body (the app then fails to parse what
            it got, and its answer is replaced below: raising here would be caught as a parse error)."""
            nonlocal seen, over
            if over:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def answered(message: Message) -> None:
            if not over:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._refusal()(scope, receive, send)

        await self.app(scope, counted, answered)
