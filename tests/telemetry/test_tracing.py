"""One trace per query with a span per stage and per agent call; the update linked to it; off by default."""

import time

import pytest

from swarm_route import tracing


def test_no_exporter_configured_means_no_provider(monkeypatch):
    monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    tracing.configure.cache_clear()
    try:
        assert tracing.configure() is False
        assert not tracing.tracer().start_span("x").get_span_context().is_valid  # the no-op tracer
    finally:
        tracing.configure.cache_clear()


@pytest.mark.integration
def test_a_query_is_one_trace_and_its_update_links_to_it(service, http_admin, otlp_receiver):
    body = http_admin.post("/v1/query", json={"query": "what is 12 * 12"}).json()
    rid = body["request_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        roots = [
            s for s in otlp_receiver.spans if s.name == "query" and s.attributes.get("swarm_route.request_id") == rid
        ]
        updates = [
            s
            for s in otlp_receiver.spans
            if s.name == "update.finished" and s.attributes.get("swarm_route.request_id") == rid
        ]
        if roots and updates:
            in_trace = {s.name for s in otlp_receiver.spans if roots and s.trace_id == roots[0].trace_id}
            if {"classify", "route", "dispatch", "dispatch_paths", "agent_call", "aggregate"} <= in_trace:
                break
        time.sleep(0.3)
    assert roots, "no query span received"
    trace_id = roots[0].trace_id
    names = {s.name for s in otlp_receiver.spans if s.trace_id == trace_id}
    assert {"query", "classify", "route", "dispatch", "dispatch_paths", "agent_call", "aggregate"} <= names
    call = next(s for s in otlp_receiver.spans if s.trace_id == trace_id and s.name == "agent_call")
    assert call.attributes["swarm_route.agent"] == "calculator"
    assert updates and updates[0].trace_id != trace_id and trace_id in updates[0].links
