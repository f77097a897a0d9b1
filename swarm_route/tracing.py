"""OpenTelemetry for the deployments: one trace per query, a span per stage and per agent call, and the
asynchronous update linked to the query's trace.

Configured by the standard variables: ``OTEL_TRACES_EXPORTER`` (``otlp`` or ``console``) or
``OTEL_EXPORTER_OTLP_ENDPOINT`` (OTLP over HTTP), ``OTEL_SERVICE_NAME`` and the batch processor's
``OTEL_BSP_*``. With none of them set nothing is installed and the API's no-op tracer costs nothing.
Ray replicas are separate processes, so each configures itself, and a query's context crosses a handle
call as a W3C ``traceparent`` carrier.
"""

from __future__ import annotations

import os
from functools import lru_cache

from opentelemetry import propagate, trace
from opentelemetry.trace import Tracer

TRACER_NAME = "swarm_route"


@lru_cache(maxsize=1)
def configure() -> bool:
    """Install a tracer provider in this process if the environment asks for one; True if it did."""
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "")
    if exporter_name == "none" or not (exporter_name or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    exporter: SpanExporter
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "swarm_route")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True


def tracer() -> Tracer:
    configure()
    return trace.get_tracer(TRACER_NAME)


def carrier() -> dict[str, str]:
    """The current span's context, to hand to another process."""
    out: dict[str, str] = {}
    propagate.inject(out)
    return out


def context_from(carrier: dict[str, str] | None):  # type: ignore[no-untyped-def]
    return propagate.extract(carrier or {})
