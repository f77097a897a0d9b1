"""The FastAPI ingress: validation, request ids, and the walk of a query through the stages.

This is the only module that knows HTTP. It calls each stage through its Serve handle, answers the client,
and only then, in the background, appends the finished request to the stream the updater learns from.
No ``from __future__ import annotations`` here: Serve rewrites endpoint signatures and needs real types.
"""

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from ray.serve.handle import DeploymentHandle
from redis.exceptions import RedisError

from swarm_route.agents.builtin import default_pool
from swarm_route.api.access import AccessControl, AccessDenied, Scope
from swarm_route.api.openai_compat import (
    AUTO_MODEL,
    ChatRequest,
    ModelCard,
    ModelList,
    chat_completion,
    stream_chunks,
)
from swarm_route.api.schemas import (
    ErrorBody,
    FeedbackAccepted,
    FeedbackRequest,
    InvokeRequest,
    InvokeResponse,
    QueryRequest,
    Trails,
    UpdaterState,
)
from swarm_route.config import Settings
from swarm_route.core.failopen import STORE_ERRORS, Periodic
from swarm_route.core.messages import Feedback, FinishedRequest, Query, QueryResponse
from swarm_route.core.onboarding import PolicyViolation, Registration, onboard
from swarm_route.core.outbox import Outbox
from swarm_route.core.pipeline import BudgetTooLow, Pipeline, StageUnavailable, Walked
from swarm_route.core.registry import AgentExists, AgentNotFound, AgentRegistry, AgentSpec
from swarm_route.core.stream import EventStream
from swarm_route.keys import Keys
from swarm_route.serve.adapters import RemoteAggregator, RemoteClassifier, RemoteDispatch, RemoteRouter
from swarm_route.serve.deployments import counted
from swarm_route.serve.telemetry import Metrics
from swarm_route.timing import ms_since
from swarm_route.tracing import configure as configure_tracing
from swarm_route.wiring import IntentStage, pheromone_store, redis_client, route_stage, store_breaker

log = logging.getLogger(__name__)

api = FastAPI(
    title="swarm_route",
    version="0.1.0",
    description="Routes each query to the cheapest agent path that answers it well, and shows why.",
)


class ApiError(Exception):
    def __init__(self, status: int, message: str, detail: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail


AuthHeader = Annotated[str | None, Header(description="Bearer <API key>, when keys are configured")]
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")


def _error(request: Request, status: int, message: str, detail: list[dict[str, Any]] | None = None) -> JSONResponse:
    """Our error shape, or OpenAI's on its endpoints so its clients show the message."""
    if request.url.path in OPENAI_PATHS:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse(status_code=status, content={"error": {"message": message, "type": kind, "code": status}})
    return JSONResponse(
        status_code=status, content=ErrorBody(error=message, detail=detail).model_dump(exclude_none=True)
    )


@api.exception_handler(AccessDenied)
async def _denied(request: Request, exc: AccessDenied) -> JSONResponse:
    response = _error(request, exc.status, exc.message)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return _error(request, exc.status, exc.message, exc.detail)


@api.exception_handler(StageUnavailable)
async def _stage_gone(request: Request, exc: StageUnavailable) -> JSONResponse:
    return _error(request, 503, str(exc))


@api.exception_handler(BudgetTooLow)
async def _budget(request: Request, exc: BudgetTooLow) -> JSONResponse:
    return await _api_error(request, _field_error("budget_usd", str(exc)))


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [
        {"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body", "problem": e["msg"]}
        for e in exc.errors()
    ]
    summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
    return _error(request, 422, f"invalid request: {summary}", problems)


@api.exception_handler(RedisError)
async def _store_down(request: Request, exc: RedisError) -> JSONResponse:
    """What cannot fail open (registering an agent, reading trails) says so, and that a retry will do."""
    log.warning("store unavailable: %s", exc)
    response = _error(request, 503, f"the store is unreachable ({type(exc).__name__}); retry shortly")
    response.headers["Retry-After"] = "5"
    return response


@api.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return _error(request, 500, f"internal error ({type(exc).__name__}); see server log")


def _field_error(field: str, problem: str) -> ApiError:
    """A limit the request model cannot express (it depends on settings), shaped like a validation error."""
    return ApiError(422, f"invalid request: {field}: {problem}", [{"field": field, "problem": problem}])


@serve.deployment
@serve.ingress(api)
class Ingress:
    async def __init__(
        self,
        settings: Settings,
        classifier: DeploymentHandle | None,
        router: DeploymentHandle | None,
        dispatcher: DeploymentHandle,
        aggregator: DeploymentHandle,
        updater: DeploymentHandle,
    ) -> None:
        configure_tracing()  # this replica's spans, when the OTEL_* variables ask for them
        self._settings = settings
        self._redis = redis_client(settings)
        self._metrics = Metrics()
        self._keys = Keys(settings.namespace)
        self._breaker = store_breaker(settings, counted(self._metrics))
        self._paused = Periodic("updates_paused", self._read_paused, False, self._breaker)  # the learning switch
        self._registry = AgentRegistry(self._redis, self._keys, self._breaker)
        self._stream = EventStream(self._redis, self._keys)
        self._outbox = Outbox(
            self._stream,
            capacity=settings.store.outbox_capacity,
            record_ttl_s=settings.updater.record_ttl_s,
            breaker=self._breaker,
            on_drop=lambda kind: self._metrics.inc("store_errors_total", operation=f"outbox_full_{kind}"),
        )
        self._recent: OrderedDict[str, asyncio.Task[Any]] = OrderedDict()  # request id → publish of its record
        self._stop = asyncio.Event()
        self._pheromones = pheromone_store(settings, self._redis)
        self._dispatch = RemoteDispatch(dispatcher)
        self._updater = updater
        # without handles (serve.colocate_routing), this replica classifies and routes itself
        self._pipeline = Pipeline(
            RemoteClassifier(classifier) if classifier is not None else IntentStage(settings),
            RemoteRouter(router) if router is not None else route_stage(settings, self._redis, self._breaker),
            self._dispatch,
            RemoteAggregator(aggregator),
            sink=self,
        )
        self._background: set[asyncio.Task[None]] = set()
        auth = settings.auth
        self._access = AccessControl(
            self._redis,
            self._keys,
            [k.get_secret_value() for k in auth.admin_keys],
            [k.get_secret_value() for k in auth.client_keys],
            auth.rate_per_minute,
            self._breaker,
        )
        await self._register_configured_agents()
        self._flusher = asyncio.create_task(self._outbox.run(self._stop))
        await self._warm_classifier()

    async def _warm_classifier(self) -> None:
        """The classifier fits on its first query (seconds with sentence embeddings): have it do so before
        this replica reports ready, so a first user is not the one who waits. A failure here is logged;
        queries then pay for the fit themselves."""
        try:
            await self._pipeline.classifier.classify("warm-up")
        except Exception:
            log.exception("classifier warm-up failed; the first query will fit it")

    async def _register_configured_agents(self) -> None:
        """Default pool only where absent (an operator's edits win); configured agents replace their entry."""
        for spec in default_pool() if self._settings.default_pool else []:
            with contextlib.suppress(AgentExists):
                await self._registry.register(spec)
        for spec in self._settings.agents:
            await self._registry.register(spec, replace=True)

    # ------------------------------------------------------------------ queries

    @api.post("/v1/query", response_model=QueryResponse, responses={422: {"model": ErrorBody}})
    async def query(self, body: QueryRequest, authorization: AuthHeader = None) -> QueryResponse:
        await self._access.check(authorization, Scope.client)
        return await self._answer(body)

    async def _answer(
        self,
        body: QueryRequest,
        agent: str | None = None,
        on_delta: Callable[[str], None] | None = None,
        request_id: str | None = None,
    ) -> QueryResponse:
        """The walk of one query; ``agent`` addresses a registered agent directly, skipping the choice;
        ``on_delta`` receives the answer's text as a single streaming agent writes it."""
        self._check_limits(body)
        query = Query(
            text=body.query,
            budget_usd=body.budget_usd,
            max_agents=body.max_agents,
            cost_weight=body.cost_weight,
            agent=agent,
        )
        walked = await self._pipeline.walk(query, request_id or uuid.uuid4().hex, on_delta)
        self._record(walked)
        return walked.response

    def _check_limits(self, body: QueryRequest) -> None:
        limits = self._settings.limits
        self._check_query(body.query)
        if body.max_agents > self._settings.reasoning.max_set:
            raise _field_error("max_agents", f"at most {self._settings.reasoning.max_set} allowed (reasoning.max_set)")
        if body.budget_usd is not None and body.budget_usd > limits.max_budget_usd:
            raise _field_error("budget_usd", f"at most {limits.max_budget_usd} allowed")

    def _check_query(self, query: str) -> None:
        limit = self._settings.limits.max_query_chars
        if len(query) > limit:
            raise _field_error("query", f"is {len(query)} characters; at most {limit} allowed")

    async def finished(self, event: FinishedRequest) -> None:
        """The pipeline's event sink: queued for the outbox in the background, unless learning is paused;
        remembered so feedback on it can wait for its record to be written."""
        if await self._paused.get():
            return
        self._recent[event.request_id] = self._in_background(self._outbox.put(event))
        while len(self._recent) > self._settings.store.outbox_capacity:
            self._recent.popitem(last=False)

    async def _read_paused(self) -> bool:
        return bool(await self._redis.exists(self._keys.updates_paused))

    def _record(self, walked: Walked) -> None:
        response, decision, m = walked.response, walked.decision, self._metrics
        m.inc("requests_total", outcome="declined" if response.declined else "answered")
        for stage, ms in response.trace.stages_ms.items():
            m.observe("stage_seconds", ms / 1000, stage=stage)
        top = max(decision.intent_weights, key=decision.intent_weights.get, default="none")
        for a in walked.answers:
            for hop in a.hops:
                m.inc("choices_total", intent=top, agent=hop.agent, model=hop.model)
        m.inc("cost_usd_total", response.cost_usd, intent=top)
        for attempt in walked.attempts:
            result = (
                "ok" if attempt.ok else ("retried" if attempt.attempt <= self._settings.dispatch.retries else "failed")
            )
            m.inc("attempts_total", result=result, fallback=str(attempt.fallback).lower())

    def _in_background(self, coro: Any) -> asyncio.Task[Any]:
        """The client never waits for learning; an error here is logged, not raised."""

        async def guarded() -> Any:
            try:
                return await coro
            except Exception:
                log.exception("background publish failed")
                self._metrics.inc("store_errors_total", operation="publish")
                return False

        task = asyncio.create_task(guarded())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ------------------------------------------------------------------ OpenAI-compatible

    @api.get("/v1/models", response_model=ModelList)
    async def models(self, authorization: AuthHeader = None) -> ModelList:
        await self._access.check(authorization, Scope.client)
        names = [AUTO_MODEL, *(a.name for a in await self._registry.all())]
        return ModelList(data=[ModelCard(id=n) for n in names])

    @api.post("/v1/chat/completions", responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
    async def chat_completions(self, body: ChatRequest, authorization: AuthHeader = None) -> Any:
        """The official ``openai`` client works unchanged: ``swarm-route/auto`` routes, an agent's name
        addresses it directly; the route trace rides along as the extra field ``swarm_route``."""
        await self._access.check(authorization, Scope.client)
        agent = None
        if body.model != AUTO_MODEL:
            if body.model not in (await self._registry.snapshot())[1]:  # fails open on the last snapshot
                raise ApiError(404, f"no model {body.model!r}: use {AUTO_MODEL!r} or an agent from GET /v1/models")
            agent = body.model
        request = QueryRequest(query=body.query(), budget_usd=body.budget_usd, max_agents=body.max_agents)
        if not body.stream:
            return chat_completion(body, await self._answer(request, agent))
        deltas: asyncio.Queue[str | None] = asyncio.Queue()
        request_id = uuid.uuid4().hex
        walk = asyncio.create_task(self._answer(request, agent, on_delta=deltas.put_nowait, request_id=request_id))
        walk.add_done_callback(lambda _: deltas.put_nowait(None))
        first = await deltas.get()
        if first is None:
            walk.result()  # an error before any text (say, a budget too low) is an HTTP error, not a stream
        return StreamingResponse(
            stream_chunks(body, request_id, first, deltas, walk),
            media_type="text/event-stream",
            headers={"x-swarm-route-request-id": request_id},
        )

    @api.post(
        "/v1/feedback",
        response_model=FeedbackAccepted,
        status_code=202,
        responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    )
    async def feedback(self, body: FeedbackRequest, authorization: AuthHeader = None) -> FeedbackAccepted:
        await self._access.check(authorization, Scope.client)
        await self._check_answered(body.request_id)
        if not await self._outbox.put(Feedback(request_id=body.request_id, score=body.score)):
            raise ApiError(503, "the store is down and the feedback buffer is full; retry in a few seconds")
        return FeedbackAccepted(request_id=body.request_id)

    async def _check_answered(self, request_id: str) -> None:
        """Feedback needs its request's record written first: a request this replica answered recently is
        checked here (its record is in the store or queued ahead in the outbox), others in the store."""
        published = self._recent.get(request_id)
        if published is not None:
            if not await asyncio.shield(published):
                raise ApiError(503, "this request's record was dropped while the store was down; feedback is lost")
            return
        missing = object()
        found = await self._breaker.call("feedback", lambda: self._stream.record(request_id), lambda: missing)
        if found is missing:
            raise ApiError(503, "the store is unreachable and this replica did not answer that request; retry shortly")
        if found is None:
            raise ApiError(404, f"unknown request_id {request_id!r} (never answered, or older than its TTL)")

    # ------------------------------------------------------------------ agents

    @api.post(
        "/v1/agents",
        response_model=AgentSpec,
        status_code=201,
        responses={409: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    )
    async def register_agent(self, body: Registration, authorization: AuthHeader = None) -> AgentSpec:
        """Our agent spec (with ``kind``) or an A2A agent card; routable on the next query."""
        await self._access.check(authorization, Scope.admin)
        policy = self._settings.agent_policy
        try:
            return await onboard(
                self._registry, self._pheromones, body, hosts=policy.hosts, replay_dirs=policy.replay_dirs
            )
        except PolicyViolation as exc:
            raise _field_error("endpoint", str(exc)) from None
        except AgentExists as exc:
            raise ApiError(409, f"an agent named {str(exc)!r} exists; DELETE it first or pick another name") from None

    @api.post(
        "/v1/agents/{name}/invoke",
        response_model=InvokeResponse,
        responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 502: {"model": ErrorBody}},
    )
    async def invoke(self, name: str, body: InvokeRequest, authorization: AuthHeader = None) -> InvokeResponse:
        """Call one agent directly, bypassing classification, routing and merging (still with retries,
        replica choice and limits): to try an agent out, and the baseline ``bench load`` compares with."""
        await self._access.check(authorization, Scope.client)
        self._check_query(body.query)
        started = time.perf_counter()
        result = await self._dispatch.call(name, body.model, body.query)
        if result.unknown == "agent":
            raise ApiError(404, f"no agent named {name!r}")
        if result.unknown == "model":
            raise ApiError(422, f"agent {name!r} has no model {result.model!r}")
        if result.answer is None:
            failures = "; ".join(a.error or "" for a in result.attempts)
            raise ApiError(502, f"agent {name!r} failed: {failures}")
        return InvokeResponse(
            agent=name,
            model=result.model or "",
            answer=result.answer.text,
            cost_usd=result.answer.cost_usd,
            latency_ms=ms_since(started),
            attempts=result.attempts,
        )

    @api.get("/v1/agents", response_model=list[AgentSpec])
    async def list_agents(self, authorization: AuthHeader = None) -> list[AgentSpec]:
        await self._access.check(authorization, Scope.client)
        return await self._registry.all()

    @api.get("/v1/agents/{name}", response_model=AgentSpec, responses={404: {"model": ErrorBody}})
    async def get_agent(self, name: str, authorization: AuthHeader = None) -> AgentSpec:
        await self._access.check(authorization, Scope.client)
        try:
            return await self._registry.get(name)
        except AgentNotFound:
            raise ApiError(404, f"no agent named {name!r}; GET /v1/agents lists them") from None

    @api.delete("/v1/agents/{name}", status_code=204, responses={404: {"model": ErrorBody}})
    async def delete_agent(self, name: str, authorization: AuthHeader = None) -> None:
        await self._access.check(authorization, Scope.admin)
        try:
            await self._registry.remove(name)
        except AgentNotFound:
            raise ApiError(404, f"no agent named {name!r}; GET /v1/agents lists them") from None

    # ------------------------------------------------------------------ evidence and health

    @api.get("/v1/pheromones/{intent}", response_model=Trails, responses={404: {"model": ErrorBody}})
    async def pheromones(self, intent: str, authorization: AuthHeader = None) -> Trails:
        await self._access.check(authorization, Scope.admin)
        known = {t for a in await self._registry.all() for t in a.intents()} | set(await self._pheromones.intents())
        if intent not in known:
            raise ApiError(404, f"no intent {intent!r}; known: {', '.join(sorted(known)) or 'none'}")
        p = self._pheromones
        return Trails(
            intent=intent,
            tau_init=p.tau_init,
            tau_min=p.tau_min,
            tau_max=p.tau_max,
            trails=await p.trails(intent),
        )

    @api.get("/v1/updater/state", response_model=UpdaterState)
    async def updater_state(self, authorization: AuthHeader = None) -> UpdaterState:
        await self._access.check(authorization, Scope.admin)
        return UpdaterState(enabled=not await self._read_paused())

    @api.put("/v1/updater/state", response_model=UpdaterState)
    async def set_updater_state(self, body: UpdaterState, authorization: AuthHeader = None) -> UpdaterState:
        """Pause or resume learning for every ingress replica (within a second): while paused, finished
        requests are not published, so trails and ability stay as they are. Feedback is still accepted."""
        await self._access.check(authorization, Scope.admin)
        if body.enabled:
            await self._redis.delete(self._keys.updates_paused)
        else:
            await self._redis.set(self._keys.updates_paused, "1")
        self._paused.set(not body.enabled)
        return body

    @api.get("/v1/updater/stats")
    async def updater_stats(self, authorization: AuthHeader = None) -> dict[str, int]:
        """Counters of the quality-gated updater: finished, graded, rejected, deposited, feedback, …"""
        await self._access.check(authorization, Scope.admin)
        return await self._updater.stats.remote()

    @api.get("/healthz")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/readyz", responses={503: {"model": ErrorBody}})
    async def readyz(self) -> dict[str, Any]:
        """Ready while it can answer: with the store down it still routes on what it last read (degraded)."""
        try:
            agents = len(await self._registry.all())
        except STORE_ERRORS as exc:
            raise ApiError(503, f"store unreachable and no registry read yet: {type(exc).__name__}") from None
        status = {"status": "ready", "agents": agents, "outbox": len(self._outbox)}
        try:
            await self._redis.ping()
        except STORE_ERRORS as exc:
            status |= {"status": "degraded", "store": f"unreachable: {type(exc).__name__}"}
        return status

    def __del__(self) -> None:
        self._stop.set()
