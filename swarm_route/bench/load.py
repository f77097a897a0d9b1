"""``swarm-route bench load``: what routing costs over calling the backend directly, under concurrency.

Without ``--url`` it starts the service on its embedded defaults (local Ray, embedded Redis) with one
``replay`` agent per model of the given routing matrices, warmed up on them, and drives it over HTTP through
the Serve proxy. Three modes run side by side, in rounds with their order rotated so drift on a noisy
machine hits each alike: ``direct`` (``POST /v1/agents/{best}/invoke``: the same proxy, ingress and
dispatch, no classification, routing or merging), ``routed`` (``POST /v1/query`` with learning on) and
``routed_updates_off`` (learning paused through ``PUT /v1/updater/state``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import psutil

from swarm_route.bench.report import ci95, console, interval_text, table, write_json
from swarm_route.config import Settings
from swarm_route.core.messages import node_id

MODES = ("direct", "routed", "routed_updates_off")
ROUNDS = 3
STAGE_SAMPLES = 30
RESAMPLES = 1000  # bootstrap draws behind the intervals of the overhead and the p99 ratio


def summary(latencies_ms: Sequence[float], errors: int, wall_s: float) -> dict[str, Any]:
    a = np.asarray(latencies_ms) if latencies_ms else np.asarray([np.nan])
    done = len(latencies_ms) + errors
    return {
        "p50_ms": round(float(np.nanpercentile(a, 50)), 3),
        "p99_ms": round(float(np.nanpercentile(a, 99)), 3),
        "rps": round(done / wall_s, 1) if wall_s else None,
        "errors": errors,
        "requests": done,
    }


def interval(
    a: Sequence[float],
    b: Sequence[float],
    figure: Callable[[np.ndarray, np.ndarray], np.ndarray],
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> list[float] | None:
    """95% percentile interval of ``figure(a, b)`` over bootstrap draws of each sample's requests. A median
    or a p99 of a few hundred requests moves by a millisecond from run to run here (the p99 of 600 is the
    sixth-slowest): the interval says whether a figure is on the far side of a target or on its line.
    ``figure`` takes (draws × requests) arrays and returns one value per draw."""
    if not len(a) or not len(b):
        return None
    rng = np.random.default_rng(seed)
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    values = figure(x[rng.integers(0, x.size, (resamples, x.size))], y[rng.integers(0, y.size, (resamples, y.size))])
    return ci95(values, digits=3)


def _p50_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.percentile(a, 50, axis=1) - np.percentile(b, 50, axis=1)


def _p99_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.percentile(a, 99, axis=1) / np.percentile(b, 99, axis=1)


class ProcessCpu:
    """CPU time (user + system) each process of a local service spends per request of each mode: which process
    a routed query's extra time lands in, and what bounds the throughput (the machine, when the processes'
    busy cores add up to all of them; the ingress, one GIL, when it alone is near one core). Processes are
    found by their command line: Serve replicas by deployment (replicas summed), the proxy, Redis, Ray's
    own daemons, and this process (the clients)."""

    NAMES = (
        (re.compile(r"ray::ServeReplica:[^:]+:(\w+)"), None),
        (re.compile(r"ray::ProxyActor"), "proxy"),
        (re.compile(r"redis-server"), "redis"),
        (re.compile(r"raylet|gcs_server"), "ray daemons"),
    )

    def __init__(self, processes: Sequence[tuple[str, psutil.Process]]) -> None:
        self.processes = list(processes)
        self.spent: dict[str, dict[str, float]] = {}  # mode → process → CPU seconds
        self.requests: dict[str, int] = {}
        self.wall: dict[str, float] = {}

    @classmethod
    def of_local_service(cls) -> ProcessCpu:
        found = [("clients (this process)", psutil.Process())]
        for process in psutil.process_iter(["cmdline"]):
            line = " ".join(process.info["cmdline"] or [])
            for pattern, name in cls.NAMES:
                if match := pattern.search(line):
                    found.append((name or match.group(1), process))
                    break
        return cls(found)

    def snapshot(self) -> dict[str, float]:
        seconds: dict[str, float] = {}
        for name, process in self.processes:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):  # a replica restarted meanwhile
                times = process.cpu_times()
                seconds[name] = seconds.get(name, 0.0) + times.user + times.system
        return seconds

    def add(self, mode: str, before: dict[str, float], after: dict[str, float], requests: int, wall_s: float) -> None:
        spent = self.spent.setdefault(mode, {})
        for name, seconds in after.items():
            spent[name] = spent.get(name, 0.0) + max(0.0, seconds - before.get(name, seconds))
        self.requests[mode] = self.requests.get(mode, 0) + requests
        self.wall[mode] = self.wall.get(mode, 0.0) + wall_s

    def per_request(self) -> dict[str, dict[str, float]]:
        """Per mode: each process's CPU ms per request, their total, and the cores they kept busy."""
        out = {}
        for mode, spent in self.spent.items():
            n = max(self.requests[mode], 1)
            figures = {name: round(1000 * seconds / n, 3) for name, seconds in sorted(spent.items())}
            figures["total"] = round(sum(figures.values()), 3)
            figures["cores_busy"] = round(sum(spent.values()) / self.wall[mode], 2) if self.wall[mode] else 0.0
            out[mode] = figures
        return out


class Driver:
    """N concurrent clients sending M requests of one mode; latencies of the 2xx, count of the rest.

    On aiohttp rather than httpx: the load generator shares the machine with the service it measures, and
    httpx's connection pool cost 3.4–4.2 ms of CPU a request at 32 connections and 7.7–8.5 at 1,000 (~34 in
    ``bench load`` at 1,000, with its larger answers) against aiohttp's 0.2 and 0.4 (a local echo server,
    3,000 requests each): at 1,000 clients the clients took more of the two cores than the service did.
    Timeouts are per socket operation, as httpx's were. Make it inside the event loop that runs it."""

    def __init__(self, url: str, key: str | None, concurrency: int, timeout_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeout_s, sock_read=timeout_s)
        self.client = aiohttp.ClientSession(
            url, headers=headers, timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)
        )
        self.concurrency = concurrency
        self.errors_seen: dict[str, int] = {}

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """One request's status and JSON answer (None when it is not JSON)."""
        async with self.client.post(path, json=body) as r:
            return r.status, await r.json() if r.content_type == "application/json" else None

    async def run(self, requests: list[tuple[str, dict[str, Any]]]) -> tuple[list[float], int, float]:
        queue = list(reversed(requests))
        latencies: list[float] = []
        errors = 0

        async def client() -> None:
            nonlocal errors
            while queue:
                path, body = queue.pop()
                t = time.perf_counter()
                try:
                    async with self.client.post(path, json=body) as r:
                        await r.read()
                        ok, why = r.status == 200, f"HTTP {r.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    ok, why = False, type(exc).__name__
                if ok:
                    latencies.append((time.perf_counter() - t) * 1000)
                else:
                    errors += 1
                    self.errors_seen[why] = self.errors_seen.get(why, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(min(self.concurrency, len(requests)))))
        return latencies, errors, time.perf_counter() - started

    async def set_learning(self, enabled: bool) -> None:
        async with self.client.put("/v1/updater/state", json={"enabled": enabled}) as r:
            r.raise_for_status()


async def stage_medians(
    driver: Driver, routed: list[tuple[str, dict[str, Any]]], direct: list[tuple[str, dict[str, Any]]]
) -> tuple[dict[str, float], float | None]:
    """Where a routed query's time goes: medians of its trace's stage timings and of the ingress's whole
    walk; and the ingress's own time for a direct call (the overhead's share spent inside the ingress is
    the difference). From queries sent one at a time after the timed rounds (the client does not parse
    the timed ones)."""
    seen: dict[str, list[float]] = {}
    for path, body in routed:
        status, answer = await driver.post(path, body)
        if status == 200:
            for stage, ms in {**answer["trace"]["stages_ms"], "ingress": answer["latency_ms"]}.items():
                seen.setdefault(stage, []).append(ms)
    direct_ms = []
    for path, body in direct:
        status, answer = await driver.post(path, body)
        if status == 200:
            direct_ms.append(answer["latency_ms"])
    stages = {stage: round(float(np.median(ms)), 3) for stage, ms in seen.items()}
    return stages, round(float(np.median(direct_ms)), 3) if direct_ms else None


async def measure(
    url: str,
    key: str | None,
    prompts: list[str],
    agent: str,
    model: str | None,
    concurrency: int,
    requests: int,
    cpu: ProcessCpu | None = None,
) -> dict[str, Any]:
    """``cpu``: the local service's processes, whose CPU time per request is measured in the timed rounds."""
    driver = Driver(url, key, concurrency)
    rng = random.Random(0)
    bodies = {
        "direct": lambda q: (f"/v1/agents/{agent}/invoke", {"query": q, "model": model}),
        "routed": lambda q: ("/v1/query", {"query": q}),
        "routed_updates_off": lambda q: ("/v1/query", {"query": q}),
    }
    warm = [bodies[m](rng.choice(prompts)) for m in MODES for _ in range(min(50, requests))]
    await driver.run(warm)  # first calls pay for lazy imports, connection set-up and model loads
    samples: dict[str, tuple[list[float], int, float]] = {m: ([], 0, 0.0) for m in MODES}
    rounds: list[dict[str, float]] = []  # each round's rps per mode
    per_round = max(1, requests // ROUNDS)
    try:
        for r in range(ROUNDS):
            rounds.append({})
            for mode in MODES[r % 3 :] + MODES[: r % 3]:
                await driver.set_learning(mode != "routed_updates_off")
                await asyncio.sleep(1.1)  # ingress replicas re-read the switch within a second
                before = cpu.snapshot() if cpu else {}
                lat, err, wall = await driver.run([bodies[mode](rng.choice(prompts)) for _ in range(per_round)])
                if cpu:
                    cpu.add(mode, before, cpu.snapshot(), per_round, wall)
                old = samples[mode]
                samples[mode] = (old[0] + lat, old[1] + err, old[2] + wall)
                rounds[-1][mode] = per_round / wall if wall else 0.0
        stages, direct_ingress = await stage_medians(
            driver,
            [bodies["routed"](rng.choice(prompts)) for _ in range(STAGE_SAMPLES)],
            [bodies["direct"](rng.choice(prompts)) for _ in range(STAGE_SAMPLES)],
        )
    finally:
        await driver.set_learning(True)
        await driver.client.close()
    result: dict[str, Any] = {m: summary(*samples[m]) for m in MODES}
    result["routed_stages_p50_ms"] = stages
    result["cpu_ms_per_request"] = cpu.per_request() if cpu else None
    result["direct_ingress_p50_ms"] = direct_ingress
    routed, direct, off = result["routed"], result["direct"], result["routed_updates_off"]
    result |= {
        "concurrency": concurrency,
        "overhead_p50_ms": round(routed["p50_ms"] - direct["p50_ms"], 3),
        "rps_ratio": round(routed["rps"] / direct["rps"], 3) if direct["rps"] else None,
        "p99_updates_on_over_off": round(routed["p99_ms"] / off["p99_ms"], 3) if off["p99_ms"] else None,
        # how far each moves with which requests were drawn (the rps ratio: round by round, modes rotated)
        "overhead_p50_ms_ci95": interval(samples["routed"][0], samples["direct"][0], _p50_difference),
        "p99_updates_on_over_off_ci95": interval(samples["routed"][0], samples["routed_updates_off"][0], _p99_ratio),
        "rps_ratio_by_round": [round(r["routed"] / r["direct"], 3) if r["direct"] else None for r in rounds],
        "direct_target": node_id(agent, model),
        "error_kinds": driver.errors_seen,
    }
    return result


def _embedded(files: list[str], settings: Settings) -> tuple[Any, list[str], str, str]:
    """Start the service with the matrices' replay agents, warm it up; the best single model is the
    direct call's target (what a caller without a router would pick)."""
    from swarm_route.agents.replay import RoutingMatrix, replay_dirs, replay_pool
    from swarm_route.core.registry import as_name
    from swarm_route.serve.local import LocalService
    from swarm_route.store import free_port
    from swarm_route.warmup import warm_service

    matrix = RoutingMatrix.load(*files)
    settings = settings.model_copy(
        update={
            "agents": replay_pool(matrix, files),
            "default_pool": False,
            "serve": settings.serve.model_copy(update={"port": free_port()}),
            "agent_policy": settings.agent_policy.model_copy(update={"replay_dirs": replay_dirs(files)}),
        }
    )
    service = LocalService(settings)
    service.start()
    asyncio.run(warm_service(service.settings, files, matrix))
    best = max(matrix.models, key=lambda m: np.mean([r.records[m].score or 0.0 for r in matrix.rows if m in r.records]))
    return service, [r.prompt for r in matrix.rows], as_name(best), best


def run(
    files: list[str],
    *,
    url: str | None = None,
    key: str | None = None,
    agent: str | None = None,
    concurrency: int = 16,
    requests: int = 600,
    json_path: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any] | None:
    from swarm_route.agents.replay import RoutingMatrix

    missing = [f for f in files if not Path(f).is_file()]
    if missing or not files:
        console.print(f"bench load: skipped, no routing-matrix file at {', '.join(missing) or '(none given)'}")
        return None
    service = None
    if url is None:
        service, prompts, agent_name, model = _embedded(files, settings or Settings())
        url = service.url
    else:
        if agent is None:
            raise ValueError("with --url, name the agent of the direct calls with --agent")
        matrix = RoutingMatrix.load(*files)
        prompts, agent_name, model = [r.prompt for r in matrix.rows], agent, ""
    try:
        console.print(f"bench load: {url}, {concurrency} clients, {requests} requests per mode")
        cpu = ProcessCpu.of_local_service() if service is not None else None
        result = asyncio.run(measure(url, key, prompts, agent_name, model or None, concurrency, requests, cpu))
        result["topology"] = service.settings.serve.topology if service is not None else "as deployed at --url"
    finally:
        if service is not None:
            service.stop()
    table(
        "routed vs direct",
        ["mode", "p50_ms", "p99_ms", "rps", "errors", "requests"],
        [(m, *(result[m][k] for k in ("p50_ms", "p99_ms", "rps", "errors", "requests"))) for m in MODES],
    )
    table(
        "ratios",
        ["figure", "value"],
        [
            ("overhead_p50_ms", result["overhead_p50_ms"]),
            ("  95% interval", interval_text(result["overhead_p50_ms_ci95"])),
            ("rps_ratio", result["rps_ratio"]),
            ("  by round", ", ".join(map(str, result["rps_ratio_by_round"]))),
            ("p99_updates_on_over_off", result["p99_updates_on_over_off"]),
            ("  95% interval", interval_text(result["p99_updates_on_over_off_ci95"])),
            ("concurrency", result["concurrency"]),
            ("topology", result["topology"]),
            *((f"routed {stage} p50_ms", ms) for stage, ms in result["routed_stages_p50_ms"].items()),
            ("direct ingress p50_ms", result["direct_ingress_p50_ms"]),
        ],
    )
    if result["cpu_ms_per_request"]:
        cpu_figures = result["cpu_ms_per_request"]
        names = sorted({name for figures in cpu_figures.values() for name in figures} - {"total", "cores_busy"})
        table(
            "CPU ms per request, by process (psutil, the timed rounds)",
            ["process", *MODES],
            [(name, *(cpu_figures.get(m, {}).get(name) for m in MODES)) for name in [*names, "total", "cores_busy"]],
        )
    write_json(json_path, result)
    return result
