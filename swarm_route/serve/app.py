"""One function builds the whole Serve application from a Settings object.

``app_builder`` is the entry point a Serve config names (``import_path: swarm_route.serve.app:app_builder``);
its ``args`` are Settings fields, so the file in ``deployments/`` and the KubeRay manifest drive the same app.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from swarm_route.config import Settings, load_settings
from swarm_route.serve.deployments import (
    AggregatorDeployment,
    BuiltinAgentsDeployment,
    DispatchDeployment,
    IntentClassifierDeployment,
    RouterDeployment,
    UpdaterDeployment,
)
from swarm_route.serve.ingress import Ingress

# Stages are I/O-bound or light; reserving whole CPUs per replica would not fit a 2-core laptop.
_ACTOR = {"num_cpus": 0}


def build_app(settings: Settings) -> Application:
    opts = {"max_ongoing_requests": settings.serve.max_ongoing_requests, "ray_actor_options": _ACTOR}
    classifier = router = None  # the fast topology: the ingress runs both stages itself
    if settings.serve.topology == "split":
        classifier = IntentClassifierDeployment.options(**opts).bind(settings)
        router = RouterDeployment.options(**opts).bind(settings)
    builtin = BuiltinAgentsDeployment.options(**opts).bind()
    dispatcher = DispatchDeployment.options(**opts).bind(settings, builtin)
    aggregator = AggregatorDeployment.options(**opts).bind(settings)
    # The updater is not on the request path; binding it to the ingress keeps it part of the app.
    updater = UpdaterDeployment.options(num_replicas=1, max_ongoing_requests=8, ray_actor_options=_ACTOR).bind(settings)
    ingress = Ingress.options(num_replicas=settings.serve.ingress_replicas, **opts)
    return ingress.bind(settings, classifier, router, dispatcher, aggregator, updater)


def app_builder(args: dict[str, Any]) -> Application:
    """Serve-config entry point: ``args`` may name a YAML file as ``config`` and override any field."""
    args = dict(args or {})
    path = args.pop("config", None)
    return build_app(load_settings(path, **args))
