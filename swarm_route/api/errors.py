"""Every error a client can get, in one shape: a status, a message saying what to fix, and the fields at fault.

OpenAI's endpoints answer in OpenAI's error shape so its clients show the message. No traceback reaches a
client: an unexpected error is logged here and answered as a 500 naming only its type.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from swarm_route.api.access import AccessDenied
from swarm_route.api.schemas import ErrorBody
from swarm_route.core.pipeline import BudgetTooLow, StageUnavailable
from swarm_route.core.spend import OverBudget, SpendUnavailable

log = logging.getLogger(__name__)
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


def field_error(field: str, problem: str) -> ApiError:
    """A limit the request model cannot express (it depends on settings), shaped like a validation error."""
    return ApiError(422, f"invalid request: {field}: {problem}", [{"field": field, "problem": problem}])


def _error(request: Request, status: int, message: str, detail: list[dict[str, Any]] | None = None) -> JSONResponse:
    """Our error shape, or OpenAI's on its endpoints so its clients show the message."""
    if request.url.path in OPENAI_PATHS:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": status}})
    return JSONResponse(
        status_code=status, content=ErrorBody(error=message, detail=detail).model_dump(exclude_none=True)
    )


async def _denied(request: Request, exc: AccessDenied) -> JSONResponse:
    response = _error(request, exc.status, exc.message)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _error(request, exc.status, exc.message, exc.detail)


async def _stage_gone(request: Request, exc: StageUnavailable) -> JSONResponse:
    return _error(request, 503, str(exc))


async def _budget(request: Request, exc: BudgetTooLow) -> JSONResponse:
    return await _api_error(request, field_error("budget_usd", str(exc)))


async def _over_budget(request: Request, exc: OverBudget) -> JSONResponse:
    """A spent day or month is a 429 with the seconds until it resets; a request dearer than the key's
    per-request cap a 402 (no waiting changes it)."""
    detail = {"budget": exc.budget, "limit_usd": exc.limit_usd, "key_id": exc.key_id}
    if exc.resets_at is None:
        return _error(request, 402, str(exc), [detail])
    response = _error(request, 429, str(exc), [detail | {"resets_at": exc.resets_at.isoformat()}])
    wait = exc.resets_at - datetime.now(UTC)
    response.headers["Retry-After"] = str(max(1, math.ceil(wait.total_seconds())))
    return response


async def _spend_closed(request: Request, exc: SpendUnavailable) -> JSONResponse:
    return _error(request, 503, f"{exc}; retry shortly")


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [
        {"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "problem": e["msg"]}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return _error(request, 422, f"invalid request: {summary}", problems)


async def _store_down(request: Request, exc: RedisError) -> JSONResponse:
    """What cannot fail open (registering an agent, reading trails) says so, and that a retry will do."""
    log.warning("store unavailable: %s", exc)
    response = _error(request, 503, f"the store is unreachable ({type(exc).__name__}); retry shortly")
    response.headers["Retry-After"] = "5"
    return response


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's own refusals (an unknown path, a wrong method, a body it could not parse), in our shape."""
    message = exc.detail if isinstance(exc.detail, str) else "invalid request"
    if exc.status_code == 400:
        message = "invalid request: body: not parsable JSON (malformed, or nested too deeply)"
    response = _error(request, exc.status_code, message)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unparsable(request: Request, exc: Exception) -> JSONResponse:
    """Text that is not valid Unicode (a lone surrogate) cannot be stored or sent on; JSON nested deeper
    than the parser recurses. Both are the client's to fix, in the same shape as every other 4xx."""
    problem = (
        "nested too deeply" if isinstance(exc, RecursionError) else "text is not valid Unicode (a lone surrogate?)"
    )
    return _error(request, 422, f"invalid request: body: {problem}", [{"field": "body", "problem": problem}])


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return _error(request, 500, f"internal error ({type(exc).__name__}); see server log")


def loop_detected(request: Request) -> JSONResponse:
    return _error(
        request,
        508,
        "loop detected: this request was sent by this service's own agent call (an agent's endpoint is this "
        "service); it is not answered, or it would be sent out again without end",
    )


def install(app: FastAPI) -> None:
    """Answer every error ``app`` can raise in our shape."""
    handlers: dict[type[Exception], Any] = {
        AccessDenied: _denied,
        ApiError: _api_error,
        StageUnavailable: _stage_gone,
        BudgetTooLow: _budget,
        OverBudget: _over_budget,
        SpendUnavailable: _spend_closed,
        RequestValidationError: _invalid,
        StarletteHTTPException: _http,
        RedisError: _store_down,
        UnicodeEncodeError: _unparsable,
        RecursionError: _unparsable,
        Exception: _unexpected,
    }
    for kind, handler in handlers.items():
        app.add_exception_handler(kind, handler)
