"""Stages built from the settings, without Ray: what the service's deployments adapt and the benchmarks run.

Each factory builds one core object the way the settings describe it, so the service and the benchmarks
cannot drift apart. The stage classes below are the pipeline's stages in process: the classifier with its
refit policy, the router with its registry, ability memory and optional LLM, dispatch with its agent
backends, the aggregator. ``serve/`` runs each in a deployment, or hands it to the ingress's pipeline as is.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from swarm_route.agents.a2a_agent import A2ABackend
from swarm_route.agents.builtin import BuiltinBackend
from swarm_route.agents.openai_agent import OpenAIBackend
from swarm_route.agents.replay import ReplayBackend
from swarm_route.config import Settings
from swarm_route.core.classify.embedding import Embedder, Progress, cpu_threads, default_embedder
from swarm_route.core.classify.intent import (
    IntentClassifier,
    LabelledExamples,
    for_agents,
    load_intent_files,
    training_set,
)
from swarm_route.core.dispatch.aggregate import RefiningAggregator
from swarm_route.core.dispatch.dispatcher import AgentBackend, Dispatcher
from swarm_route.core.dispatch.replicas import Replicas
from swarm_route.core.dispatch.verify import AgreementVerifier, JudgeVerifier, Verifier
from swarm_route.core.failopen import STORE_ERRORS, Breaker, Watched
from swarm_route.core.learn.quality import QualityGate
from swarm_route.core.learn.updater import PheromoneUpdater, Registered, latencies
from swarm_route.core.llm import ChatModel, LLMSettings, LLMUnavailable
from swarm_route.core.messages import (
    Aggregate,
    DirectCall,
    DispatchResult,
    FitProgress,
    IntentResult,
    IntentStatus,
    PathAnswer,
    RouteDecision,
    RouteRequest,
)
from swarm_route.core.reachability import VIA_HEADER, Reachability, service_id
from swarm_route.core.registry import AgentKind, AgentRegistry, AgentSpec
from swarm_route.core.route.ability import AbilityModel
from swarm_route.core.route.agreement import AgreementMemory
from swarm_route.core.route.outcomes import AbilityMemory, OutcomeLog
from swarm_route.core.route.pheromone import PheromoneStore
from swarm_route.core.route.reasoning import LLMChoice, MalformedAnswer, ReasonThenSelect
from swarm_route.core.route.router import ReasoningRouter
from swarm_route.keys import Keys
from swarm_route.store import connect

log = logging.getLogger(__name__)
PROGRESS_LOG_S = 5.0  # a refit's progress is logged at most this often
LLM_NOT_USED = "LLM not used"  # how a decision's router_llm starts when the LLM failed


def pheromone_store(settings: Settings, client: Any) -> PheromoneStore:
    aco = settings.aco
    return PheromoneStore(
        client,
        Keys(settings.namespace),
        rho=aco.rho,
        tau_init=aco.tau_init,
        tau_min=aco.tau_min,
        tau_max=aco.tau_max,
        trial_events=aco.trial_events,
    )


def ability_model(settings: Settings) -> AbilityModel:
    """``ability``'s settings are the model's parameters, one for one (a setting added to one and not the
    other fails here, at start)."""
    return AbilityModel(**settings.ability.model_dump())


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
    registry: Registered | None = None,
) -> PheromoneUpdater:
    """The updater as the settings describe it: the service (with its registry) and the benchmark (without:
    a fixed pool) build it here alike."""
    return PheromoneUpdater(
        client,
        Keys(settings.namespace),
        store,
        quality_gate(settings),
        deposit_q=settings.aco.deposit_q,
        epsilon=settings.aco.epsilon,
        penalty=settings.aco.penalty,
        min_intent_weight=settings.updater.min_intent_weight,
        consumer=consumer,
        on_event=on_event,
        registry=registry,
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
        tune_cache=Path(s.tune_cache).expanduser() if s.tune_cache else None,
        compound=s.compound,
        max_false_cut=s.max_false_cut,
    )


def reasoning_router(
    settings: Settings,
    store: PheromoneStore,
    ability: AbilityModel | None = None,
    rng: random.Random | None = None,
    breaker: Breaker | None = None,
    agreement: AgreementMemory | None = None,
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
        trails_refresh_s=settings.store.trails_refresh_s,
        cascades=settings.cascade.enabled,
        explore_known=a.explore_known,
        agreement=agreement,
    )


def reason_then_select(settings: Settings, llm: LLMSettings) -> ReasonThenSelect:
    """The LLM routing step as the settings describe it, on ``llm`` (the service's, or a benchmark's)."""
    r = settings.reasoning
    return ReasonThenSelect(ChatModel(llm), shortlist_size=r.shortlist, max_set=r.max_set)


def store_breaker(settings: Settings, on_error: Callable[[str], None] | None = None) -> Breaker:
    """The replica's one breaker: every store read on its request path fails open through it, so a store
    that failed for one of them is skipped by all for ``store.breaker_open_s``; ``on_error`` counts each failure."""
    return Breaker(settings.store.breaker_open_s, on_error)


def agent_registry(settings: Settings, client: Any, breaker: Breaker) -> AgentRegistry:
    """A replica's view of the Redis registry, as stale as ``store.registry_refresh_s`` allows."""
    return AgentRegistry(client, Keys(settings.namespace), breaker, settings.store.registry_refresh_s)


def redis_client(settings: Settings) -> Any:
    if not settings.redis_url:
        raise RuntimeError("settings.redis_url is unset: set REDIS_URL, or start through `swarm-route serve`")
    return connect(settings.redis_url)


class IntentStage:
    """The classifier stage: refits when the registry version moves, then classifies.

    A small training set (agents' examples) is refitted before the next query is answered, in a thread,
    so a new agent is routable at once. Beside a large one (loaded intent files), a new agent's intents
    are added to the fitted model in about a second (``IntentClassifier.extended``); any other change is
    refitted in the background on at most ``intent.fit_threads`` threads while the previous model keeps
    answering. ``status()`` says which model answers and how far a refit is.
    """

    def __init__(self, settings: Settings, registry: Agents | None = None) -> None:
        """``registry``: the replica's own view when the stage runs inside the ingress (one cache of the
        registry and one breaker per replica); a deployment of its own reads through a view of its own."""
        self._registry = registry or agent_registry(settings, redis_client(settings), store_breaker(settings))
        self._settings = settings.intent
        self._all_settings = settings
        self._embedder = default_embedder() if self._settings.embeddings else None
        self._classifier = self._new_classifier()
        self._version: int | None = None
        self._lock = asyncio.Lock()
        self._background: asyncio.Task[None] | None = None
        self._files = load_intent_files(self._settings.files)
        self._status = IntentStatus(state="unfitted")

    async def status(self) -> IntentStatus:
        return self._status.model_copy()

    def _fit(self, agents: list[AgentSpec], threads: int | None) -> IntentClassifier:
        val = LabelledExamples(*for_agents(agents, self._files.val)) if self._files.val.texts else None
        files = LabelledExamples(*for_agents(agents, self._files.train))
        with cpu_threads(threads):
            return self._new_classifier().fit(training_set(agents, self._files.train), val, self._progress(), files)

    def _progress(self) -> Progress:
        """Progress into the status, and a log line with counts every ``PROGRESS_LOG_S`` (a refit of
        CLINC150 takes a couple of minutes)."""
        logged = [0.0]

        def report(step: str, done: int, total: int) -> None:
            self._status.progress = FitProgress(step=step, done=done, total=total)
            if time.monotonic() - logged[0] >= PROGRESS_LOG_S or done == total:
                logged[0] = time.monotonic()
                log.info("intent classifier: %s %d/%d", step, done, total)

        return report

    def _new_classifier(self) -> IntentClassifier:
        """Fine-tuning the encoder (minutes of all-core CPU) is for the operator's labelled files only:
        examples that registrations bring never start it."""
        settings = self._all_settings
        if not self._settings.files:
            settings = settings.model_copy(update={"intent": self._settings.model_copy(update={"tune_epochs": 0})})
        return intent_classifier(settings, self._embedder)

    def _refitting(self, version: int) -> None:
        """The status from the moment a refit is decided (a background one starts on the loop's next turn)."""
        self._status.state = "fitting" if self._version is None else "refitting"
        self._status.refit_version, self._status.refit_started, self._status.error = version, time.time(), None

    async def _refit(self, version: int, agents: list[AgentSpec], threads: int | None) -> None:
        first = self._version is None
        started = time.monotonic()
        try:
            classifier = await asyncio.to_thread(self._fit, agents, threads)
        except Exception as exc:  # the previous model keeps answering; the status and the log say why
            log.exception("intent classifier: refit for registry version %s failed", version)
            self._status.state, self._status.error = ("unfitted" if first else "failed"), f"{type(exc).__name__}: {exc}"
            self._status.refit_version = self._status.progress = None
            if first:
                raise
            return
        self._swap(version, classifier, "full", time.monotonic() - started)

    def _swap(
        self, version: int, classifier: IntentClassifier, how: Literal["full", "incremental"], took: float
    ) -> None:
        if self._version is not None and version <= self._version:
            return
        self._classifier, self._version = classifier, version
        self._status = IntentStatus(
            state="ready",
            registry_version=version,
            intents=len(classifier.intents),
            examples=classifier.examples,
            last_fit=how,
            last_fit_seconds=round(took, 3),
        )
        log.info(
            "intent classifier: registry version %s learnt (%s, %d intents, %d examples) in %.2f s",
            version,
            how,
            len(classifier.intents),
            classifier.examples,
            took,
        )

    async def _extended(self, version: int, agents: list[AgentSpec]) -> bool:
        """New agents' intents added to the answering model, if that is all that changed."""
        started = time.monotonic()
        data = training_set(agents, self._files.train)
        classifier = await asyncio.to_thread(self._classifier.extended, data)
        if classifier is None:
            return False
        self._swap(version, classifier, "incremental", time.monotonic() - started)
        return True

    async def _refresh(self) -> None:
        try:
            version, agents = await self._registry.snapshot()
        except STORE_ERRORS as exc:  # never read the registry yet: keep the model we have (fail open)
            log.warning("classifier: registry unreadable, keeping the current model: %s", exc)
            return
        if version == self._version:
            return
        async with self._lock:  # queries that waited here read the registry again: none refits an older one
            version, agents = await self._registry.snapshot()
            if version == self._version or (self._background is not None and not self._background.done()):
                return
            pool = list(agents.values())
            examples = sum(len(s.examples) + 1 for a in pool for s in a.skills) + len(self._files.train.texts)
            if self._version is None or examples <= self._settings.inline_refit_max:
                self._refitting(version)
                await self._refit(version, pool, None)  # the first fit uses every core: nothing answers yet
            elif not await self._extended(version, pool):
                self._refitting(version)
                self._background = asyncio.create_task(self._refit(version, pool, self._settings.fit_threads))

    async def classify_many(self, queries: list[str]) -> list[IntentResult]:
        await self._refresh()
        return self._classifier.classify_many(queries)

    async def classify(self, query: str) -> IntentResult:
        return (await self.classify_many([query]))[0]


class Agents(Protocol):
    """Where a stage reads the registry from: the Redis registry in the service, a fixed pool in a benchmark."""

    async def snapshot(self, needing: Iterable[str] = ()) -> tuple[int, dict[str, AgentSpec]]: ...


class FixedAgents:
    """A registry that never changes: the benchmarks' pools."""

    def __init__(self, agents: Mapping[str, AgentSpec]) -> None:
        self._agents = dict(agents)

    async def snapshot(self, needing: Iterable[str] = ()) -> tuple[int, dict[str, AgentSpec]]:
        return 0, self._agents


class RouteStage:
    """The router stage: the registry as last read, an agent addressed directly, the LLM's pick when one is
    configured (a slow, failing or malformed LLM never fails the query), learned ability and latencies."""

    def __init__(
        self,
        router: ReasoningRouter,
        agents: Agents,
        *,
        memory: AbilityMemory | None = None,
        latency: Watched[dict[str, float]] | None = None,
        llm: ReasonThenSelect | None = None,
    ) -> None:
        self.router, self._agents, self._memory, self._latency, self._llm = router, agents, memory, latency, llm

    async def route(self, request: RouteRequest) -> RouteDecision:
        _, agents = await self._agents.snapshot()
        intent = request.intent
        if request.agent is not None and request.agent in agents:  # addressed directly: its skills are the intent
            agents = {request.agent: agents[request.agent]}
            skills = agents[request.agent].intents()
            intent = IntentResult({t: 1 / len(skills) for t in skills}, intent.similarity, 0.0, False)
            request = RouteRequest.of(request, intent)
        choice, note, cost = (
            await self._ask_llm(request.text, intent, agents) if request.agent is None else (None, None, 0.0)
        )
        if self._memory is not None:
            await self._memory.refresh()
            self.router.ability, self.router.agreement = self._memory.model, self._memory.agreement
        latency = await self._latency.get() if self._latency is not None else None
        decision = await self.router.route(request, agents, latency_s=latency, llm=choice, llm_note=note)
        return decision.model_copy(update={"router_llm_cost_usd": cost}) if cost else decision

    async def _ask_llm(
        self, query: str, intent: IntentResult, agents: dict[str, AgentSpec]
    ) -> tuple[LLMChoice | None, str | None, float]:
        """The LLM's pick, or why there is none; and what asking cost (also when its answer was unusable)."""
        if self._llm is None:
            return None, None, 0.0
        try:
            choice = await self._llm.select(query, intent, agents)
        except (LLMUnavailable, MalformedAnswer) as exc:
            log.warning("routing without the LLM: %s", exc)
            return None, f"{LLM_NOT_USED} ({type(exc).__name__}: {exc}); decided from the evidence alone", exc.cost_usd
        return choice, None, choice.cost_usd


def route_stage(
    settings: Settings, client: Any | None = None, breaker: Breaker | None = None, registry: Agents | None = None
) -> RouteStage:
    """The service's router stage: registry, trails, graded outcomes and the dispatchers' latencies in Redis;
    ``registry``, the replica's own view when it runs inside the ingress."""
    client = client if client is not None else redis_client(settings)
    keys, breaker = Keys(settings.namespace), breaker or store_breaker(settings)
    memory = AbilityMemory(OutcomeLog(client, keys), ability_model(settings), breaker=breaker)

    async def read_latency(_: dict[str, float]) -> dict[str, float]:
        return await latencies(client, keys)

    llm = settings.reasoning.llm
    return RouteStage(
        reasoning_router(
            settings, pheromone_store(settings, client), memory.model, breaker=breaker, agreement=memory.agreement
        ),
        registry or agent_registry(settings, client, breaker),
        memory=memory,
        # the dispatchers' smoothed per-node latencies: slow to move, so read once a second, not per query
        latency=Watched("latency", read_latency, {}, breaker),
        llm=reason_then_select(settings, llm) if llm else None,
    )


class DispatchStage:
    """Dispatch over the registry as last read: routed paths, streamed single paths, and direct calls."""

    def __init__(self, dispatcher: Dispatcher, agents: Agents) -> None:
        self.dispatcher, self._agents = dispatcher, agents

    async def run(self, query: str, decision: RouteDecision) -> DispatchResult:
        _, agents = await self._agents.snapshot(_chosen(decision))
        return await self.dispatcher.run(query, decision, agents)

    async def stream(self, query: str, decision: RouteDecision) -> AsyncIterator[str | DispatchResult]:
        _, agents = await self._agents.snapshot(_chosen(decision))
        async for item in self.dispatcher.stream(query, decision, agents):
            yield item

    def in_flight(self) -> dict[str, int]:
        """Calls in flight per agent endpoint, as this dispatch replica counts them."""
        return {e: n for e, n in self.dispatcher.replicas.in_flight.items() if n}

    async def call(self, agent: str, model: str | None, query: str) -> DirectCall:
        """One agent, no classification, routing or merging, with the same retries, replicas and limits."""
        _, agents = await self._agents.snapshot([agent])
        spec = agents.get(agent)
        if spec is None:
            return DirectCall(model=model, unknown="agent")
        model = model or spec.models[0].name
        if model not in {m.name for m in spec.models}:
            return DirectCall(model=model, unknown="model")
        answer, attempts = await self.dispatcher.call(spec, model, query)
        return DirectCall(model=model, answer=answer, attempts=attempts)


def _chosen(decision: RouteDecision) -> set[str]:
    """The agents a decision asks: a dispatch replica's registry view must hold them (the router may have
    decided on a registry newer than that view)."""
    return {agent for i in decision.chosen for agent in decision.candidates[i].agents}


def cascade_verifier(settings: Settings) -> Verifier:
    """What judges a cascade's first stage: the configured judge model, else agreement."""
    c = settings.cascade
    return JudgeVerifier(ChatModel(c.judge), c.judge_accept) if c.judge else AgreementVerifier()


def dispatch_stage(
    settings: Settings, builtin: AgentBackend | None = None, client: Any | None = None, breaker: Breaker | None = None
) -> DispatchStage:
    """The service's dispatch stage over the Redis registry. ``builtin`` answers the default pool's tool
    agents (in process unless a deployment of its own does)."""
    client = client if client is not None else redis_client(settings)
    breaker = breaker or store_breaker(settings)
    return DispatchStage(
        dispatcher(settings, builtin, client, breaker),
        agent_registry(settings, client, breaker),
    )


def dispatcher(
    settings: Settings, builtin: AgentBackend | None = None, client: Any | None = None, breaker: Breaker | None = None
) -> Dispatcher:
    """The dispatcher with every agent kind's backend; replicas' cooldowns shared through ``client``."""
    d = settings.dispatch
    replicas = Replicas(
        client, Keys(settings.namespace), failures_to_cool=d.failures_to_cool, cooldown_s=d.cooldown_s, breaker=breaker
    )
    via = {VIA_HEADER: service_id(settings.namespace, settings.redis_url)}
    return Dispatcher(
        {
            AgentKind.builtin: builtin or BuiltinBackend(),
            AgentKind.openai: OpenAIBackend(d.timeout_s, via),
            AgentKind.replay: ReplayBackend(settings.agent_policy.replay_dirs),
            AgentKind.a2a: A2ABackend(d.timeout_s, via),
        },
        timeout_s=d.timeout_s,
        retries=d.retries,
        backoff_s=d.backoff_s,
        fallbacks=d.fallbacks,
        replicas=replicas,
        reachability=Reachability(settings.agent_policy.allow_networks),
    )


class AggregateStage:
    """The refining aggregator, with the configured LLM if any."""

    def __init__(self, settings: Settings) -> None:
        llm = settings.aggregator.llm
        self._aggregator = RefiningAggregator(llm=ChatModel(llm) if llm else None)

    async def merge(
        self, query: str, answers: Sequence[PathAnswer], probabilities: Sequence[float], reason: str
    ) -> Aggregate:
        return await self._aggregator.refine(query, answers, probabilities, reason)
