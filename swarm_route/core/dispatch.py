"""Dispatch: run the chosen paths concurrently, retry what is retryable, fall back to the next-best path.

Every attempt, failed or not, lands in the trace, so a client can see a retry or a fallback happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.trace import StatusCode
from pydantic import BaseModel
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from swarm_route.agents.base import AgentAnswer, AgentBackend, AgentError
from swarm_route.core.registry import AgentKind, AgentSpec
from swarm_route.core.router import Candidate, RouteDecision
from swarm_route.timing import ms_since


class Attempt(BaseModel):
    agent: str
    model: str
    attempt: int
    ok: bool
    latency_ms: float
    error: str | None = None
    fallback: bool = False


class PathAnswer(BaseModel):
    candidate: int  # index into the decision's candidates
    agents: list[str]
    models: list[str]
    edges: list[str]
    text: str
    cost_usd: float
    latency_ms: float
    score: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class DispatchResult(BaseModel):
    answers: list[PathAnswer]
    attempts: list[Attempt]
    failed: list[int]  # candidates whose every attempt failed


_tracer = trace.get_tracer("swarm_route")  # the API's no-op tracer unless a provider is installed


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
    ) -> None:
        self.backends = backends
        self.timeout_s, self.retries, self.backoff_s, self.max_fallbacks = (
            timeout_s,
            retries,
            backoff_s,
            fallbacks,
        )

    async def run(self, query: str, decision: RouteDecision, agents: Mapping[str, AgentSpec]) -> DispatchResult:
        attempts: list[Attempt] = []
        results = await asyncio.gather(
            *(self._path(query, i, decision.candidates[i], agents, attempts) for i in decision.chosen)
        )
        answers = [a for a in results if a is not None]
        failed = [i for i, a in zip(decision.chosen, results, strict=True) if a is None]
        if not answers:
            for i in decision.fallbacks[: self.max_fallbacks]:
                answer = await self._path(query, i, decision.candidates[i], agents, attempts, fallback=True)
                if answer is not None:
                    answers.append(answer)
                    break
                failed.append(i)
        return DispatchResult(answers=answers, attempts=attempts, failed=failed)

    async def _path(
        self,
        query: str,
        index: int,
        candidate: Candidate,
        agents: Mapping[str, AgentSpec],
        attempts: list[Attempt],
        *,
        fallback: bool = False,
    ) -> PathAnswer | None:
        """Hops run in order; a later stage sees the query and the previous stage's answer."""
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
            answer = await self._call(spec, hop.model, prompt, attempts, fallback)
            if answer is None:
                return None
            text, cost = answer.text, cost + answer.cost_usd
            score = answer.score
            tokens_in, tokens_out = tokens_in + answer.prompt_tokens, tokens_out + answer.completion_tokens
        return PathAnswer(
            candidate=index,
            agents=[h.agent for h in candidate.path],
            models=[h.model for h in candidate.path],
            edges=candidate.edges,
            text=text,
            cost_usd=cost,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            score=score,
            prompt_tokens=tokens_in,
            completion_tokens=tokens_out,
        )

    async def _call(
        self, spec: AgentSpec, model: str, query: str, attempts: list[Attempt], fallback: bool
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
        try:
            async for state in retrying:
                with state:
                    n += 1
                    t0 = time.perf_counter()

                    def record(error: str | None, n: int = n, t0: float = t0) -> None:
                        attempts.append(
                            Attempt(
                                agent=spec.name,
                                model=model,
                                attempt=n,
                                ok=error is None,
                                latency_ms=ms_since(t0),
                                error=error,
                                fallback=fallback,
                            )
                        )

                    attributes = {"swarm_route.agent": spec.name, "swarm_route.model": model, "swarm_route.attempt": n}
                    with _tracer.start_as_current_span("agent_call", attributes=attributes) as span:
                        try:
                            answer = await asyncio.wait_for(backend.answer(spec, model, query), self.timeout_s)
                        except Exception as exc:
                            error = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
                            span.set_status(StatusCode.ERROR, error)
                            record(error)
                            raise
                    record(None)
                    return answer
        except Exception:  # recorded above; the caller falls back
            return None
        return None
