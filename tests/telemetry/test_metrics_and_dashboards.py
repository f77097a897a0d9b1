"""The dashboards reference only metrics the service exports, and a real run exports them."""

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest

from swarm_route.serve.telemetry import METRICS, OTHER, PREFIX, Metrics, trail_entropy

DASHBOARDS = sorted((Path(__file__).parents[2] / "dashboards").glob("*.json"))
NAME = re.compile(r"\bray_(swarm_route_[a-z_]+?)(?:_bucket|_sum|_count)?\b")


def referenced() -> set[str]:
    names = set()
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                names |= set(NAME.findall(target["expr"]))
    return names


def test_dashboards_are_importable_and_name_only_declared_metrics():
    assert DASHBOARDS
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        assert dash["title"] and dash["panels"] and all(p["targets"] for p in dash["panels"])
    assert referenced() and referenced() <= {PREFIX + n for n in METRICS}
    for description in (d for _, d, _ in METRICS.values()):
        assert description.isascii(), "Ray exports descriptions as ASCII; anything else kills the recorder"


def test_trail_entropy():
    assert trail_entropy({"source>a/m": 1.0, "source>b/m": 1.0, "a/m>sink": 9.0}) == pytest.approx(1.0)
    assert trail_entropy({"source>a/m": 5.0, "source>b/m": 0.1}) < 0.2
    assert trail_entropy({"source>a/m": 1.0}) == 0.0 and trail_entropy({}) is None


@pytest.mark.integration
def test_a_running_service_exports_what_the_dashboards_name(service, http_admin, openai_server):
    http_admin.post(
        "/v1/agents",
        json={
            "name": "metered",
            "description": "paid answers about astronomy",
            "kind": "openai",
            "endpoint": openai_server.base_url,
            "models": [{"name": "echo-1", "cost_per_1k_tokens": 1.0}],
            "skills": [{"name": "astronomy", "examples": ["how far is the moon", "what is a black hole"]}],
        },
    )
    paid = http_admin.post("/v1/query", json={"query": "how far away is the moon"}).json()
    assert paid["cost_usd"] > 0
    http_admin.post("/v1/feedback", json={"request_id": paid["request_id"], "score": 1.0})
    for q in ("what is 3 * 3", "qwertyuiop asdf"):
        http_admin.post("/v1/query", json={"query": q})
    url = f"http://127.0.0.1:{service.settings.serve.metrics_port}/metrics"
    wanted = {n for n in referenced() if n != PREFIX + "store_errors_total"}  # only exists once a write failed
    deadline, missing = time.monotonic() + 60, wanted
    while time.monotonic() < deadline:
        body = urllib.request.urlopen(url, timeout=5).read().decode()
        missing = {n for n in wanted if f"ray_{n}" not in body}
        if not missing:
            break
        time.sleep(2)
    assert not missing, f"not exported: {sorted(missing)}"


def test_label_sets_from_the_registry_are_bounded():
    """Agents registered under ever new names must not grow a metric's label sets without end."""
    metrics = Metrics(max_label_sets=3)
    tags = [{"intent": "math", "agent": f"agent-{i}", "model": "m"} for i in range(5)]
    assert [metrics.bounded("choices_total", t) for t in tags[:3]] == tags[:3]
    assert metrics.bounded("choices_total", tags[4]) == {"intent": OTHER, "agent": OTHER, "model": OTHER}
    assert metrics.bounded("choices_total", tags[1]) == tags[1], "a label set already exported keeps its name"
    assert metrics.bounded("cost_usd_total", {"intent": "new"}) == {"intent": "new"}, "each metric has its own bound"


def test_the_packages_info_lines_reach_the_replicas_stderr_at_once(capfd):
    import logging

    from swarm_route.serve import telemetry

    ours = logging.getLogger("swarm_route")
    before = (ours.level, list(ours.handlers), ours.propagate)
    telemetry._STDERR.setStream(__import__("sys").stderr)  # pytest's capture, not the stream of import time
    try:
        telemetry.replica_logging()
        telemetry.replica_logging()  # a second replica in the process: no second copy of each line
        logging.getLogger("swarm_route.wiring").info("intent classifier: tuning 3/10")
        lines = [line for line in capfd.readouterr().err.splitlines() if "tuning 3/10" in line]
        assert len(lines) == 1 and "INFO swarm_route.wiring -- intent classifier: tuning 3/10" in lines[0]
    finally:
        ours.setLevel(before[0])
        ours.handlers[:] = before[1]
        ours.propagate = before[2]
