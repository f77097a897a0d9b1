"""Both topologies walk the same pipeline: fast (the session's service: classify and route in the ingress)
and split (a second app beside it: each stage a deployment of its own, the classifier batching)."""

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from ray import serve

from swarm_route.serve.app import build_app
from tests.conftest import ADMIN_KEY
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
PREFIX = "/split"


@pytest.fixture(scope="module")
def split(service):
    """A second app beside the session's, on the same Serve instance, in its own Redis namespace."""
    apart = service.settings.serve.model_copy(update={"topology": "split"})
    settings = service.settings.model_copy(update={"namespace": "itest-split", "serve": apart})
    serve.run(build_app(settings), name="split", route_prefix=PREFIX, blocking=False)
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=service.url + PREFIX, timeout=30, headers=headers) as client:

        def ready() -> bool:
            try:
                return client.get("/readyz").json().get("status") == "ready"
            except (httpx.HTTPError, ValueError):
                return False

        assert wait_for(ready, timeout_s=120), "the split app did not become ready"
        yield client
    serve.delete("split")


@pytest.fixture(scope="module")
def fast(service):
    with httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client


@pytest.fixture(params=["fast", "split"])
def app(request):
    return request.getfixturevalue(request.param)


def test_either_topology_classifies_routes_and_answers(app):
    r = app.post("/v1/query", json={"query": "what is 6 * 7"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "42" in body["answer"] and body["agents"] == ["calculator"]
    trace = body["trace"]
    assert {"classify", "route", "dispatch"} <= set(trace["stages_ms"])
    assert trace["intent_weights"] and trace["selection"][0]["agents"] == ["calculator"]
    declined = app.post("/v1/query", json={"query": "x" * 100_000})
    assert declined.status_code == 422 and "query" in declined.text


def test_either_topology_answers_concurrent_queries(app):
    """Serve's batching inside the ingress once left every concurrent query hanging; none may."""
    queries = [f"what is {i} * 3" for i in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda q: app.post("/v1/query", json={"query": q}, timeout=20), queries))
    assert [r.status_code for r in answers] == [200] * 12
    assert all(str(i * 3) in r.json()["answer"] for i, r in enumerate(answers))


def test_either_topology_says_which_registry_version_its_classifier_learnt(app):
    app.post("/v1/query", json={"query": "what is 6 * 7"})  # the classifier catches up with the registry
    status = app.get("/v1/intents/status")
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["state"] == "ready" and body["last_fit"] in {"full", "incremental"}
    assert body["registry_version"] >= 1 and body["intents"] >= 3 and body["examples"] >= body["intents"]
    assert app.get("/readyz").json()["intents"] == "ready"
