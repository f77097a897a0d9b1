"""Thin Serve deployments: each builds one core object from the settings and exposes its methods.

Replicas keep their own Redis client and a version-checked registry cache, so a registration made through
any ingress replica is seen by every stage on the next query.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle
from redis.exceptions import RedisError

from swarm_route.agents.a2a_agent import A2ABackend
from swarm_route.agents.base import AgentAnswer, AgentError
from swarm_route.agents.builtin import BuiltinBackend
from swarm_route.agents.openai_agent import OpenAIBackend
from swarm_route.agents.replay import ReplayBackend
from swarm_route.config import Settings
from swarm_route.core.ability import AbilityModel
from swarm_route.core.aggregate import Aggregate, RefiningAggregator
from swarm_route.core.dispatch import Dispatcher, DispatchResult, PathAnswer
from swarm_route.core.embedding import Embedder, default_embedder
from swarm_route.core.failopen import STORE_ERRORS, Breaker, Periodic
from swarm_route.core.intent import (
    IntentClassifier,
    IntentResult,
    LabelledExamples,
    for_agents,
    load_intent_files,
    training_set,
)
from swarm_route.core.llm import ChatModel, LLMSettings, LLMUnavailable
from swarm_route.core.outcomes import AbilityMemory, OutcomeLog
from swarm_route.core.pheromone import PheromoneStore
from swarm_route.core.quality import QualityGate
from swarm_route.core.reasoning import LLMChoice, MalformedAnswer, ReasonThenSelect
from swarm_route.core.registry import AgentKind, AgentRegistry, AgentSpec
from swarm_route.core.replicas import Replicas
from swarm_route.core.router import ReasoningRouter, RouteDecision
from swarm_route.core.updater import PheromoneUpdater
from swarm_route.keys import Keys
from swarm_route.serve.telemetry import Metrics, trail_entropy
from swarm_route.serve.tracing import configure as configure_tracing
from swarm_route.serve.tracing import context_from, tracer
from swarm_route.store import connect

log = logging.getLogger(__name__)


def pheromone_store(settings: Settings, client: Any) -> PheromoneStore:
    aco = settings.aco
    return PheromoneStore(
        client,
        Keys(settings.namespace),
        rho=aco.rho,
        tau_init=aco.tau_init,
        tau_min=aco.tau_min,
        tau_max=aco.tau_max,
    )


def ability_model(settings: Settings) -> AbilityModel:
    a = settings.ability
    return AbilityModel(k=a.k, shrinkage=a.shrinkage, prior=a.prior)


def quality_gate(settings: Settings, sample_rate: float | None = None) -> QualityGate:
    u = settings.updater
    return QualityGate(u.gate_threshold, u.sample_rate if sample_rate is None else sample_rate)


def pheromone_updater(
    settings: Settings,
    client: Any,
    store: PheromoneStore,
    *,
    consumer: str = "updater-0",
    on_event: Callable[[str], None] | None = None,
) -> PheromoneUpdater:
    """The updater as the settings describe it: the service and the benchmark build it here alike."""
    return PheromoneUpdater(
        client,
        Keys(settings.namespace),
        store,
        quality_gate(settings),
        deposit_q=settings.aco.deposit_q,
        epsilon=settings.aco.epsilon,
        min_intent_weight=settings.updater.min_intent_weight,
        consumer=consumer,
        on_event=on_event,
    )


def intent_classifier(settings: Settings, embedder: Embedder | None) -> IntentClassifier:
    """The classifier as the settings describe it (unfitted): service and benchmarks build it here alike."""
    s = settings.intent
    return IntentClassifier(
        s.oos_threshold,
        s.temperature,
        embedder=embedder,
        set_coverage=s.set_coverage,
        set_size=settings.reasoning.max_set,
        max_false_decline=s.max_false_decline,
        tune_epochs=s.tune_epochs,
        tune_min_examples=s.tune_min_examples,
        tune_lr=s.tune_lr,
    )


def reasoning_router(
    settings: Settings,
    store: PheromoneStore,
    ability: AbilityModel | None = None,
    rng: random.Random | None = None,
    breaker: Breaker | None = None,
) -> ReasoningRouter:
    """The router as the settings describe it: the service and the benchmark build it here alike."""
    a = settings.aco
    return ReasoningRouter(
        store,
        alpha=a.alpha,
        beta=a.beta,
        q0=a.q0,
        cost_weight=a.cost_weight,
        llm_weight=settings.reasoning.llm_weight,
        max_set=settings.reasoning.max_set,
        ability=ability,
        rng=rng,
        breaker=breaker,
        max_stale_s=settings.store.max_stale_s,
    )


def reason_then_select(settings: Settings, llm: LLMSettings) -> ReasonThenSelect:
    """The LLM routing step as the settings describe it, on ``llm`` (the service's, or a benchmark's)."""
    r = settings.reasoning
    return ReasonThenSelect(ChatModel(llm), shortlist_size=r.shortlist, max_set=r.max_set)


def store_breaker(settings: Settings, metrics: Metrics) -> Breaker:
    """The replica's one breaker: every store read on its request path fails open through it, so a store
    that failed for one of them is skipped by all for ``store.breaker_open_s``, and each failure is counted."""
    return Breaker(settings.store.breaker_open_s, lambda op: metrics.inc("store_errors_total", operation=op))


def redis_client(settings: Settings) -> Any:
    if not settings.redis_url:
        raise RuntimeError("settings.redis_url is unset: set REDIS_URL, or start through `swarm-route serve`")
    return connect(settings.redis_url)


class InProcess:
    """A stage's class run inside the calling replica and called like its handle (``stage.method.remote(
    *args)`` gives an awaitable): colocating a stage saves the handle hop, which on a 2-core machine costs
    more than classifying or routing a query."""

    def __init__(self, stage: type, *args: Any) -> None:
        self._stage = stage(*args)

    def __getattr__(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(remote=getattr(self._stage, name))


class IntentStage:
    """The classifier stage: refits when the registry version moves, then classifies.

    A small training set (agents' examples) is refitted before the next query is answered, in a thread,
    so a new agent is routable at once; a large one (loaded intent files) is refitted in the background
    while the previous model keeps answering.
    """

    def __init__(self, settings: Settings) -> None:
        self._registry = AgentRegistry(
            redis_client(settings), Keys(settings.namespace), store_breaker(settings, Metrics())
        )
        self._settings = settings.intent
        self._all_settings = settings
        self._embedder = default_embedder() if self._settings.embeddings else None
        self._classifier = self._new_classifier()
        self._version: int | None = None
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._files = load_intent_files(self._settings.files)

    def _fit(self, agents: list[AgentSpec]) -> IntentClassifier:
        val = LabelledExamples(*for_agents(agents, self._files.val)) if self._files.val.texts else None
        return self._new_classifier().fit(training_set(agents, self._files.train), val)

    def _new_classifier(self) -> IntentClassifier:
        return intent_classifier(self._all_settings, self._embedder)

    async def _refit(self, version: int, agents: list[AgentSpec]) -> None:
        classifier = await asyncio.to_thread(self._fit, agents)
        if self._version is None or version > self._version:
            self._classifier, self._version = classifier, version

    async def _refresh(self) -> None:
        try:
            version, agents = await self._registry.snapshot()
        except STORE_ERRORS as exc:  # never read the registry yet: keep the model we have (fail open)
            log.warning("classifier: registry unreadable, keeping the current model: %s", exc)
            return
        if version == self._version:
            return
        async with self._lock:
            if version == self._version:
                return
            examples = sum(len(s.examples) + 1 for a in agents.values() for s in a.skills)
            if self._version is None or examples + len(self._files.train.texts) <= self._settings.inline_refit_max:
                await self._refit(version, list(agents.values()))
            elif self._background is None or self._background.done():
                self._background = asyncio.create_task(self._refit(version, list(agents.values())))

    async def classify_many(self, queries: list[str]) -> list[IntentResult]:
        await self._refresh()
        return self._classifier.classify_many(queries)

    async def classify(self, query: str) -> IntentResult:
        return (await self.classify_many([query]))[0]


@serve.deployment
class IntentClassifierDeployment(IntentStage):
    """The classifier stage as a deployment of its own, batching concurrent queries into one vectorised call.
    (Colocated in the ingress it runs unbatched: ``serve.batch`` there left concurrent queries hanging.)"""

    # Opportunistic batching: no wait for a batch to fill (a lone query would pay the wait in full); under
    # load, queries queue while a batch is classified and the next batch takes them all.
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)
    async def _classify_batch(self, queries: list[str]) -> list[IntentResult]:
        return await self.classify_many(queries)

    async def classify(self, query: str) -> IntentResult:
        return await self._classify_batch(query)


@serve.deployment
class RouterDeployment:
    def __init__(self, settings: Settings) -> None:
        client = redis_client(settings)
        self._keys = Keys(settings.namespace)
        self._client = client
        self._breaker = store_breaker(settings, Metrics())
        self._registry = AgentRegistry(client, self._keys, self._breaker)
        self._memory = AbilityMemory(OutcomeLog(client, self._keys), ability_model(settings))
        # the dispatchers' smoothed per-node latencies: slow to move, so read once a second, not per query
        self._latency = Periodic("latency", self._read_latency, {}, self._breaker)
        self._router = reasoning_router(
            settings, pheromone_store(settings, client), self._memory.model, breaker=self._breaker
        )
        llm = settings.reasoning.llm
        self._llm = reason_then_select(settings, llm) if llm else None

    async def route(
        self,
        query: str,
        intent: IntentResult,
        budget_usd: float | None,
        max_agents: int,
        cost_weight: float | None = None,
        agent: str | None = None,
    ) -> RouteDecision:
        _, agents = await self._registry.snapshot()
        if agent is not None and agent in agents:  # addressed directly: its skills are the intent
            agents = {agent: agents[agent]}
            skills = agents[agent].intents()
            intent = IntentResult({t: 1 / len(skills) for t in skills}, intent.similarity, 0.0, False)
        choice, note = await self._ask_llm(query, intent, agents) if agent is None else (None, None)
        await self._breaker.call("outcomes", self._memory.refresh, lambda: None)
        self._router.ability = self._memory.model
        latency = await self._latency.get()
        return await self._router.route(
            query,
            intent,
            agents,
            budget_usd=budget_usd,
            max_agents=max_agents,
            latency_s=latency,
            cost_weight=cost_weight,
            llm=choice,
            llm_note=note,
        )

    async def _read_latency(self) -> dict[str, float]:
        return {k: float(v) for k, v in (await self._client.hgetall(self._keys.latency)).items()}

    async def _ask_llm(
        self, query: str, intent: IntentResult, agents: dict[str, AgentSpec]
    ) -> tuple[LLMChoice | None, str | None]:
        """The LLM's pick, or None and why: a slow, failing or malformed LLM never fails the query."""
        if self._llm is None:
            return None, None
        try:
            return await self._llm.select(query, intent, agents), None
        except (LLMUnavailable, MalformedAnswer) as exc:
            log.warning("routing without the LLM: %s", exc)
            return None, f"LLM not used ({type(exc).__name__}: {exc}); decided from the evidence alone"


@serve.deployment
class BuiltinAgentsDeployment:
    """The default pool's tool agents, as a Serve deployment of their own (scaled like any model replica)."""

    def __init__(self) -> None:
        self._backend = BuiltinBackend()

    async def answer(self, spec: AgentSpec, model: str, query: str) -> dict[str, Any]:
        # Exceptions cross the handle as plain data: dispatch must know whether a retry can help.
        try:
            return {"answer": await self._backend.answer(spec, model, query)}
        except AgentError as exc:
            return {"error": str(exc), "retryable": exc.retryable}


class ServeBuiltinBackend:
    """The dispatcher's view of the BuiltinAgents deployment: an AgentBackend over a handle."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def answer(self, spec: AgentSpec, model: str, query: str) -> AgentAnswer:
        result = await self._handle.answer.remote(spec, model, query)
        if "error" in result:
            raise AgentError(result["error"], retryable=result["retryable"])
        return result["answer"]


@serve.deployment
class DispatchDeployment:
    def __init__(self, settings: Settings, builtin: DeploymentHandle) -> None:
        client = redis_client(settings)
        breaker = store_breaker(settings, Metrics())
        self._registry = AgentRegistry(client, Keys(settings.namespace), breaker)
        self._tracer = tracer()
        d = settings.dispatch
        replicas = Replicas(
            client,
            Keys(settings.namespace),
            failures_to_cool=d.failures_to_cool,
            cooldown_s=d.cooldown_s,
            breaker=breaker,
        )
        self._dispatcher = Dispatcher(
            {
                AgentKind.builtin: ServeBuiltinBackend(builtin),
                AgentKind.openai: OpenAIBackend(d.timeout_s),
                AgentKind.replay: ReplayBackend(),
                AgentKind.a2a: A2ABackend(d.timeout_s),
            },
            timeout_s=d.timeout_s,
            retries=d.retries,
            backoff_s=d.backoff_s,
            fallbacks=d.fallbacks,
            replicas=replicas,
        )

    async def run(
        self, query: str, decision: RouteDecision, trace_carrier: dict[str, str] | None = None
    ) -> DispatchResult:
        _, agents = await self._registry.snapshot()
        with self._tracer.start_as_current_span("dispatch_paths", context=context_from(trace_carrier)):
            return await self._dispatcher.run(query, decision, agents)

    async def stream(
        self, query: str, decision: RouteDecision, trace_carrier: dict[str, str] | None = None
    ) -> AsyncIterator[str | DispatchResult]:
        """``run``, streamed: text deltas of a single streaming path as they arrive, then the result.
        Called through ``handle.options(stream=True)``."""
        _, agents = await self._registry.snapshot()
        with self._tracer.start_as_current_span("dispatch_paths", context=context_from(trace_carrier)):
            async for item in self._dispatcher.stream(query, decision, agents):
                yield item

    async def call(self, agent: str, model: str | None, query: str) -> dict[str, Any]:
        """A direct call to one agent (no classification, routing or merging); ``error`` names what failed."""
        _, agents = await self._registry.snapshot()
        spec = agents.get(agent)
        if spec is None:
            return {"error": f"no agent named {agent!r}", "status": 404}
        model = model or spec.models[0].name
        if model not in {m.name for m in spec.models}:
            return {"error": f"agent {agent!r} has no model {model!r}", "status": 422}
        answer, attempts = await self._dispatcher.call(spec, model, query)
        return {"answer": answer, "model": model, "attempts": attempts}


@serve.deployment
class AggregatorDeployment:
    def __init__(self, settings: Settings) -> None:
        llm = settings.aggregator.llm
        self._aggregator = RefiningAggregator(llm=ChatModel(llm) if llm else None)

    async def merge(self, query: str, answers: list[PathAnswer], probabilities: list[float], reason: str) -> Aggregate:
        return await self._aggregator.refine(query, answers, probabilities, reason)


@serve.deployment
class UpdaterDeployment:
    """Runs the quality-gated pheromone update loop in the background of its replica."""

    async def __init__(self, settings: Settings) -> None:
        client = redis_client(settings)
        u = settings.updater
        replica = serve.get_replica_context().replica_tag
        configure_tracing()
        self._metrics = Metrics()
        self._store = pheromone_store(settings, client)
        self._updater = pheromone_updater(
            settings,
            client,
            self._store,
            consumer=f"updater-{replica}",
            on_event=lambda event: self._metrics.inc("updater_events_total", event=event),
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._updater.run(self._stop, u.evaporate_interval_s, u.block_ms))
        self._entropy = asyncio.create_task(self._watch_entropy())

    async def _watch_entropy(self, every_s: float = 10.0) -> None:
        """Trail entropy per intent, for the dashboard: falling entropy means the colony has converged."""
        while not self._stop.is_set():
            try:
                for intent in await self._store.intents():
                    value = trail_entropy(await self._store.trails(intent))
                    if value is not None:
                        self._metrics.set("trail_entropy", value, intent=intent)
            except RedisError as exc:
                log.warning("trail entropy skipped: %s", exc)
            await asyncio.sleep(every_s)

    async def stats(self) -> dict[str, int]:
        return await self._updater.stats()

    def check_health(self) -> None:
        if self._task.done():
            raise RuntimeError(f"updater loop ended: {self._task.exception()!r}")

    def __del__(self) -> None:
        self._stop.set()
        self._task.cancel()
        self._entropy.cancel()
