"""Dispatch: run the chosen paths concurrently, retry what is retryable, fall back to the next-best path.

Every attempt, failed or not, lands in the trace, so a client can see a retry or a fallback happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Protocol

from opentelemetry import trace
from opentelemetry.trace import StatusCode
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from swarm_route.core.dispatch.replicas import Replicas
from swarm_route.core.messages import (
    AgentAnswer,
    AgentError,
    Attempt,
    Candidate,
    DispatchResult,
    PathAnswer,
    RouteDecision,
    estimate_tokens,
    possible_tokens,
)
from swarm_route.core.reachability import Reachability, Unreachable
from swarm_route.core.registry import URL_KINDS, AgentKind, AgentSpec
from swarm_route.keys import Keys
from swarm_route.timing import ms_since


class AgentBackend(Protocol):
    """One kind of agent (builtin, openai, replay, a2a): how dispatch asks it one query. ``context``: the
    whole message when ``query`` is one part of it ("book a flight to Rome and tell me the weather there"
    asks the weather agent "tell me the weather there"): an agent that reads language is told it, a tool
    that parses its part ignores it."""

    async def answer(self, spec: AgentSpec, model: str, query: str, context: str | None = None) -> AgentAnswer: ...


log = logging.getLogger(__name__)
_tracer = trace.get_tracer("swarm_route")  # the API's no-op tracer unless a provider is installed


class Busy(AgentError):
    """The agent's concurrency limit stayed full for the whole call timeout; try another path instead."""


MAX_ERROR_CHARS = 300


def _error_text(exc: BaseException) -> str:
    """What the trace says of a failed call: the first line of the error, bounded. An exception that
    crossed a process boundary formats as a traceback (pids, paths, source lines): none of it reaches a client."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    if not isinstance(exc, AgentError):
        log.warning("agent call failed unexpectedly", exc_info=exc)
        return f"{type(exc).__name__} (see the dispatch replica's log)"
    first = (str(exc).strip().splitlines() or [""])[0]
    return first[:MAX_ERROR_CHARS] or type(exc).__name__


def _aim(spec: AgentSpec, endpoint: str) -> tuple[AgentSpec, str | None]:
    """The spec pointed at the chosen replica, and the replica to name in the trace (None: only one)."""
    target = spec if endpoint == spec.endpoint else spec.model_copy(update={"endpoint": endpoint})
    return target, endpoint if len(spec.endpoints()) > 1 else None


def _sane(answer: AgentAnswer, spec: AgentSpec, model: str, query: str) -> AgentAnswer:
    """An agent's report of its own tokens, cost and score, believed only where it is possible: a negative
    token count or cost would make the agent look cheap to the router and the updater, a NaN would poison
    both. What is not believed is estimated (price × estimated tokens), or dropped (a score)."""
    tokens_ok = possible_tokens(answer.prompt_tokens, answer.completion_tokens)
    cost_ok = isinstance(answer.cost_usd, int | float) and math.isfinite(answer.cost_usd) and answer.cost_usd >= 0
    score_ok = answer.score is None or (math.isfinite(answer.score) and 0 <= answer.score <= 1)
    if tokens_ok and cost_ok and score_ok:
        return answer
    prompt, completion = estimate_tokens(query), estimate_tokens(answer.text)
    price = next((m.cost_per_1k_tokens for m in spec.models if m.name == model), 0.0)
    log.warning("agent %s reported impossible usage (%r); estimated instead", spec.name, answer)
    return AgentAnswer(
        text=answer.text,
        cost_usd=answer.cost_usd if cost_ok else price * (prompt + completion) / 1000,
        prompt_tokens=answer.prompt_tokens if tokens_ok else prompt,
        completion_tokens=answer.completion_tokens if tokens_ok else completion,
        score=answer.score if score_ok else None,
    )


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError) or (isinstance(exc, AgentError) and exc.retryable)


class Dispatcher:
    def __init__(
        self,
        backends: Mapping[AgentKind, AgentBackend],
        *,
        timeout_s: float,
        retries: int,
        backoff_s: float,
        fallbacks: int,
        replicas: Replicas | None = None,
        reachability: Reachability | None = None,
    ) -> None:
        """``reachability``, when given, is checked before every call to a URL agent (openai, a2a) on a fresh
        resolution of its host: a name re-pointed at a private address after registration is refused."""
        self.backends = backends
        self.reachability = reachability
        self.replicas = replicas or Replicas(None, Keys("local"))
        self._slots: dict[str, tuple[int, asyncio.Semaphore]] = {}
        self.timeout_s, self.retries, self.backoff_s, self.max_fallbacks = (
            timeout_s,
            retries,
            backoff_s,
            fallbacks,
        )

    async def _reachable(self, spec: AgentSpec, endpoint: str) -> None:
        if self.reachability is not None and spec.kind in URL_KINDS:
            try:
                await self.reachability.check(endpoint)
            except Unreachable as exc:
                raise AgentError(f"not called: {exc}") from None

    async def _limited(self, spec: AgentSpec, call: Awaitable[AgentAnswer], endpoint: str) -> AgentAnswer:
        """The call within the timeout, counted in flight on its replica, and within the agent's
        ``max_concurrency`` (waiting for a slot counts against the same timeout)."""
        deadline = time.monotonic() + self.timeout_s
        try:
            async with self._occupy(spec, endpoint):
                return await asyncio.wait_for(call, max(0.0, deadline - time.monotonic()))
        except Busy:
            call.close()  # type: ignore[attr-defined]
            raise

    @contextlib.asynccontextmanager
    async def _occupy(self, spec: AgentSpec, endpoint: str) -> AsyncIterator[None]:
        """A slot of the agent's ``max_concurrency`` (waited for up to the timeout) and an in-flight count
        on the replica, for the duration of a call."""
        slot = self._slot(spec)
        if slot is not None:
            try:
                await asyncio.wait_for(slot.acquire(), self.timeout_s)
            except TimeoutError:
                raise Busy(f"{spec.name} stayed at its limit of {spec.max_concurrency} calls in flight") from None
        self.replicas.in_flight[endpoint] += 1
        try:
            yield
        finally:
            self.replicas.in_flight[endpoint] -= 1
            if slot is not None:
                slot.release()

    async def stream(
        self, query: str, decision: RouteDecision, agents: Mapping[str, AgentSpec]
    ) -> AsyncIterator[str | DispatchResult]:
        """Text deltas of a single streaming path as they arrive, then its ``DispatchResult``. Anything
        else (several paths, several hops, a backend that does not stream), and a stream that fails before
        its first delta, is dispatched as ``run`` does (retries, replicas, fallbacks): only the result."""
        one = decision.candidates[decision.chosen[0]] if len(decision.chosen) == 1 else None
        spec = agents.get(one.path[0].agent) if one is not None and len(one.path) == 1 else None
        backend = self.backends.get(spec.kind) if spec is not None else None
        if one is None or spec is None or not hasattr(backend, "stream"):
            yield await self.run(query, decision, agents)
            return
        await self.replicas.sync()
        model, endpoint = one.path[0].model, self.replicas.choose(spec.endpoints())
        target, replica = _aim(spec, endpoint)
        started, parts, answer = time.perf_counter(), [], None
        try:
            await self._reachable(spec, endpoint)
            async with self._occupy(spec, endpoint):
                items = backend.stream(target, model, query).__aiter__()  # type: ignore[union-attr]
                while True:
                    try:
                        item = await asyncio.wait_for(items.__anext__(), self.timeout_s)
                    except StopAsyncIteration:
                        break
                    if isinstance(item, AgentAnswer):
                        answer = item
                    else:
                        parts.append(item)
                        yield item
        except Exception as exc:
            error = _error_text(exc)
            cooled = _retryable(exc) and await self.replicas.failed(endpoint)
            failed = Attempt(
                agent=spec.name,
                model=model,
                attempt=1,
                ok=False,
                latency_ms=ms_since(started),
                error=f"stream broke after {sum(map(len, parts))} characters: {error}" if parts else error,
                replica=replica,
                cooled_down=cooled,
            )
            if not parts:  # nothing reached the client yet: dispatch as usual
                result = await self.run(query, decision, agents)
                yield result.model_copy(update={"attempts": [failed, *result.attempts]})
                return
            answer, attempts = AgentAnswer(text="".join(parts)), [failed]
        else:
            self.replicas.succeeded(endpoint)
            answer = _sane(answer or AgentAnswer(text="".join(parts)), spec, model, query)
            attempts = [
                Attempt(agent=spec.name, model=model, attempt=1, ok=True, latency_ms=ms_since(started), replica=replica)
            ]
        yield DispatchResult(
            answers=[
                PathAnswer(
                    candidate=decision.chosen[0],
                    hops=one.path,
                    edges=one.edges,
                    text=answer.text,
                    cost_usd=answer.cost_usd,
                    latency_ms=ms_since(started),
                    score=answer.score,
                    prompt_tokens=answer.prompt_tokens,
                    completion_tokens=answer.completion_tokens,
                )
            ],
            attempts=attempts,
            failed=[],
        )

    def _slot(self, spec: AgentSpec) -> asyncio.Semaphore | None:
        if spec.max_concurrency is None:
            return None
        known = self._slots.get(spec.name)
        if known is None or known[0] != spec.max_concurrency:  # new agent, or its limit was changed
            known = (spec.max_concurrency, asyncio.Semaphore(spec.max_concurrency))
            self._slots[spec.name] = known
        return known[1]

    async def run(self, query: str, decision: RouteDecision, agents: Mapping[str, AgentSpec]) -> DispatchResult:
        """Every chosen path at once, each asked its part of a compound query (or all of it); the answers in
        the order the query asked; fallbacks in order only when every chosen path failed."""
        attempts: list[Attempt] = []
        parts = {i: sel.part for i, sel in zip(decision.chosen, decision.selection, strict=False) if sel.part}
        results = await asyncio.gather(
            *(
                self._path(
                    parts.get(i, query),
                    i,
                    decision.candidates[i],
                    agents,
                    attempts,
                    context=query if i in parts else None,
                )
                for i in decision.chosen
            )
        )
        answers = [
            a.model_copy(update={"part": parts[a.candidate]}) if a.candidate in parts else a
            for a in results
            if a is not None
        ]
        answers.sort(key=lambda a: query.find(a.part) if a.part else 0)  # in the order the query asked
        failed = [i for i, a in zip(decision.chosen, results, strict=True) if a is None]
        if not answers:
            for i in decision.fallbacks[: self.max_fallbacks]:
                answer = await self._path(query, i, decision.candidates[i], agents, attempts, fallback=True)
                if answer is not None:
                    answers.append(answer)
                    break
                failed.append(i)
        return DispatchResult(answers=answers, attempts=attempts, failed=failed)

    async def call(self, spec: AgentSpec, model: str, query: str) -> tuple[AgentAnswer | None, list[Attempt]]:
        """One agent and model, no routing: with the same retries, replicas and limits as a routed call."""
        attempts: list[Attempt] = []
        return await self._call(spec, model, query, attempts, fallback=False), attempts

    async def _path(
        self,
        query: str,
        index: int,
        candidate: Candidate,
        agents: Mapping[str, AgentSpec],
        attempts: list[Attempt],
        *,
        fallback: bool = False,
        context: str | None = None,
    ) -> PathAnswer | None:
        """Hops run in order; a later stage sees the query and the previous stage's answer. ``context``: the
        whole message ``query`` is a part of."""
        started = time.perf_counter()
        text, cost, score, tokens_in, tokens_out = query, 0.0, None, 0, 0
        for n, hop in enumerate(candidate.path):
            spec = agents.get(hop.agent)
            if spec is None:
                attempts.append(
                    Attempt(
                        agent=hop.agent,
                        model=hop.model,
                        attempt=1,
                        ok=False,
                        latency_ms=0,
                        error="agent was removed",
                        fallback=fallback,
                    )
                )
                return None
            prompt = text if n == 0 else f"{query}\n\nPrevious stage's answer:\n{text}"
            answer = await self._call(spec, hop.model, prompt, attempts, fallback, context)
            if answer is None:
                return None
            text, cost = answer.text, cost + answer.cost_usd
            score = answer.score
            tokens_in, tokens_out = tokens_in + answer.prompt_tokens, tokens_out + answer.completion_tokens
        return PathAnswer(
            candidate=index,
            hops=candidate.path,
            edges=candidate.edges,
            text=text,
            cost_usd=cost,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            score=score,
            prompt_tokens=tokens_in,
            completion_tokens=tokens_out,
        )

    async def _call(
        self,
        spec: AgentSpec,
        model: str,
        query: str,
        attempts: list[Attempt],
        fallback: bool,
        context: str | None = None,
    ) -> AgentAnswer | None:
        backend = self.backends.get(spec.kind)
        if backend is None:
            attempts.append(
                Attempt(
                    agent=spec.name,
                    model=model,
                    attempt=1,
                    ok=False,
                    latency_ms=0,
                    error=f"no backend for kind {spec.kind}",
                    fallback=fallback,
                )
            )
            return None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff_s, max=5 * self.backoff_s + 0.001),
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        n = 0
        endpoints = spec.endpoints()
        tried: set[str] = set()
        await self.replicas.sync()
        try:
            async for state in retrying:
                with state:
                    n += 1
                    t0 = time.perf_counter()
                    endpoint = self.replicas.choose(endpoints, tried)
                    target, replica = _aim(spec, endpoint)

                    def record(
                        error: str | None,
                        cooled: bool = False,
                        n: int = n,
                        t0: float = t0,
                        replica: str | None = replica,
                    ) -> None:
                        attempts.append(
                            Attempt(
                                agent=spec.name,
                                model=model,
                                attempt=n,
                                ok=error is None,
                                latency_ms=ms_since(t0),
                                error=error,
                                fallback=fallback,
                                replica=replica,
                                cooled_down=cooled,
                            )
                        )

                    attributes = {"swarm_route.agent": spec.name, "swarm_route.model": model, "swarm_route.attempt": n}
                    with _tracer.start_as_current_span("agent_call", attributes=attributes) as span:
                        try:
                            await self._reachable(spec, endpoint)
                            answer = await self._limited(spec, backend.answer(target, model, query, context), endpoint)
                        except Exception as exc:
                            error = _error_text(exc)
                            span.set_status(StatusCode.ERROR, error)
                            cooled = _retryable(exc) and await self.replicas.failed(endpoint)
                            tried.add(endpoint)
                            record(error, cooled)
                            raise
                    self.replicas.succeeded(endpoint)
                    record(None)
                    return _sane(answer, spec, model, query)
        except Exception:  # recorded above; the caller falls back
            return None
        return None
