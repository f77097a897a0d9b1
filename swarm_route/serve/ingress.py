"""The ingress deployment: one replica's ``Service`` and the FastAPI app over it.

Classification and routing run in this replica (``serve.topology: fast``, the default: two handle hops
fewer) or are handles to deployments of their own (``split``); dispatch and merging are always handles.
"""

from __future__ import annotations

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from swarm_route.api.app import create_app
from swarm_route.api.service import Service
from swarm_route.config import Settings
from swarm_route.core.pipeline import Pipeline, Walked
from swarm_route.core.spend import ANONYMOUS
from swarm_route.serve.adapters import RemoteAggregator, RemoteClassifier, RemoteDispatch, RemoteRouter, call
from swarm_route.serve.deployments import counted
from swarm_route.serve.telemetry import Metrics, replica_logging
from swarm_route.tracing import configure as configure_tracing
from swarm_route.wiring import IntentStage, cascade_verifier, redis_client, route_stage, store_breaker


@serve.deployment
@serve.ingress()
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
        replica_logging()
        self._metrics = Metrics()
        redis = redis_client(settings)
        breaker = store_breaker(settings, counted(self._metrics))
        dispatch = RemoteDispatch(dispatcher)
        classify: list[RemoteClassifier | IntentStage] = []  # built with the service, which the stage reads through

        def pipeline(service: Service) -> Pipeline:
            classify.append(
                RemoteClassifier(classifier) if classifier is not None else IntentStage(settings, service.registry)
            )
            return Pipeline(
                classify[0],
                RemoteRouter(router) if router is not None else route_stage(settings, redis, breaker, service.registry),
                dispatch,
                RemoteAggregator(aggregator),
                sink=service,
                spend=service.ledger,
                verifier=cascade_verifier(settings),
            )

        async def updater_stats() -> dict[str, int]:
            return await call("updater", updater.stats)

        self._retries = settings.dispatch.retries
        self._service = Service(
            settings,
            redis,
            breaker,
            pipeline=pipeline,
            dispatch=dispatch,
            updater_stats=updater_stats,
            intent_status=lambda: classify[0].status(),
            record=self._record,
            count=counted(self._metrics),
        )
        await self._service.start()

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self._service)

    def _record(self, walked: Walked) -> None:
        response, decision, m = walked.response, walked.decision, self._metrics
        m.inc("requests_total", outcome="declined" if response.declined else "answered")
        for stage, ms in response.trace.stages_ms.items():
            m.observe("stage_seconds", ms / 1000, stage=stage)
        top = max(decision.intent_weights, key=decision.intent_weights.get, default="none")
        for a in walked.answers:
            for hop in a.hops:
                m.inc("choices_total", intent=top, agent=hop.agent, model=hop.model)
        m.inc("cost_usd_total", response.cost_usd, intent=top, key=walked.caller or ANONYMOUS)
        for attempt in walked.attempts:
            result = "ok" if attempt.ok else ("retried" if attempt.attempt <= self._retries else "failed")
            m.inc("attempts_total", result=result, fallback=str(attempt.fallback).lower())

    def __del__(self) -> None:
        self._service.stop()
