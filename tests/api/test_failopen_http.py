"""The store goes down under the running service: queries are still answered, feedback is still accepted,
and what was accepted reaches the updater once the store is back. (Restarts the session's Redis, which
keeps its data in an append-only file.)"""

import httpx
import pytest

from swarm_route.bench.load import measure
from tests.conftest import ADMIN_KEY
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_queries_and_feedback_survive_a_store_outage(service, redis_server):
    with httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        assert http.post("/v1/query", json={"query": "what is 3 * 5"}).json()["agents"] == ["calculator"]
        before = http.get("/v1/updater/stats").json().get("feedback", 0)
        redis_server.stop()
        try:
            answered = []
            for q in ("what is 6 * 7", "what is 12 / 4", "what time is it in Tokyo"):
                r = http.post("/v1/query", json={"query": q})
                assert r.status_code == 200, r.text
                answered.append(r.json())
            assert answered[0]["answer"].endswith("= 42") and answered[2]["agents"] == ["clock"]
            # the first may route on trails read a moment before the outage (store.trails_refresh_s); once a
            # read or write has failed, the trace says the store is unreachable
            assert all("store unreachable" in (b["trace"]["store"] or "") for b in answered[1:])
            assert all(b["learning"] == "queued" for b in answered), "held in the outbox, and the client is told"
            for body in answered:
                r = http.post("/v1/feedback", json={"request_id": body["request_id"], "score": 0.9})
                assert r.status_code == 202, r.text
            unknown = http.post("/v1/feedback", json={"request_id": "f" * 32, "score": 0.9})
            assert unknown.status_code == 503 and "retry" in unknown.json()["error"]
            assert http.get("/readyz").json()["status"] == "degraded"
            spec = {
                "name": "late",
                "description": "d",
                "kind": "builtin",
                "endpoint": "clock",
                "models": [{"name": "m"}],
            }
            refused = http.post("/v1/agents", json=spec)
            assert refused.status_code == 503 and "retry" in refused.json()["error"], "what cannot fail open says so"
        finally:
            redis_server.start()
        wait_for(lambda: http.get("/v1/updater/stats").json().get("feedback", 0) >= before + 3, timeout_s=30)
        assert wait_for(lambda: http.get("/readyz").json()["status"] == "ready")


async def test_bench_load_measures_routed_and_direct_side_by_side(service):
    prompts = ["what is 2 + 3", "what is 7 * 6", "compute 9 - 4"]
    result = await measure(service.url, ADMIN_KEY, prompts, "calculator", None, concurrency=4, requests=12)
    for mode in ("direct", "routed", "routed_updates_off"):
        assert result[mode]["requests"] == 12 and result[mode]["p50_ms"] > 0
    assert result["direct"]["errors"] == 0 and result["routed"]["errors"] == 0
    assert result["rps_ratio"] > 0 and result["p99_updates_on_over_off"] > 0
    low, high = result["overhead_p50_ms_ci95"]
    assert low <= high and result["p99_updates_on_over_off_ci95"][0] <= result["p99_updates_on_over_off_ci95"][1]
    assert len(result["rps_ratio_by_round"]) == 3 and all(r > 0 for r in result["rps_ratio_by_round"])
    stages = result["routed_stages_p50_ms"]
    assert {"classify", "route", "dispatch", "ingress"} <= set(stages)
    assert all(0 <= stages[s] <= stages["ingress"] for s in ("classify", "route", "dispatch")), "within the walk"
    assert 0 < result["direct_ingress_p50_ms"] < result["direct"]["p50_ms"], "the ingress's share of a direct call"
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
        assert http.get("/v1/updater/state").json() == {"enabled": True}, "the bench leaves learning on"
