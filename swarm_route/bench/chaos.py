"""``swarm-route bench chaos``: steady load while things break; does any query fail, is feedback lost?

It starts its own parts so it can break them: a redis-server with an append-only file (stopped for
``--redis-down-s`` and restarted with its data), two fake-LLM replica processes behind one ``openai`` agent
(one killed for good), and the service on local Ray (its router replica killed once; Ray restarts it).
Clients send queries the agent serves and, for each answer, feedback; feedback the service refuses (503
while its outbox is full or a stage restarts) is retried, so ``feedback_sent`` counts what was accepted.
After the load, it waits for the updater to apply what was accepted: ``lost = sent − applied``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time
from typing import Any

import httpx

from swarm_route.bench.report import console, table, write_json
from swarm_route.config import Settings
from swarm_route.core.registry import AgentKind, AgentSpec, ModelOption, Skill
from swarm_route.store import RedisProcess, free_port

TOPICS = ["volcanoes", "tides", "bread", "bees", "glaciers", "jazz", "comets", "coral reefs", "tea", "rainbows"]
ASKS = ["explain how {} work", "tell me about {}", "give me an overview of {}", "describe {} in simple words"]


class FakeLLM:
    """A fake-LLM replica in a process of its own, so killing it is a real crash."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "swarm_route.bench.fake_llm", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def wait(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/models", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"fake LLM on {self.port} did not start")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def _explainer(replicas: list[FakeLLM]) -> AgentSpec:
    return AgentSpec(
        name="explainer",
        description="Explains topics of science, nature and culture in plain words.",
        kind=AgentKind.openai,
        endpoint=replicas[0].url,
        replicas=[r.url for r in replicas[1:]],
        models=[ModelOption(name="echo-1", cost_per_1k_tokens=0.001)],
        skills=[Skill(name="explain", examples=[a.format(t) for a in ASKS for t in TOPICS])],
    )


class Load:
    def __init__(self, url: str, concurrency: int) -> None:
        self.client = httpx.AsyncClient(base_url=url, timeout=60.0)
        self.concurrency = concurrency
        self.requests = self.failed = self.feedback_sent = self.feedback_retries = 0
        self.failures: dict[str, int] = {}
        self._rng = random.Random(0)

    def _fail(self, why: str) -> None:
        self.failed += 1
        self.failures[why] = self.failures.get(why, 0) + 1

    async def _feedback(self, request_id: str, stop_at: float) -> None:
        body = {"request_id": request_id, "score": round(self._rng.uniform(0.5, 1.0), 2)}
        while time.monotonic() < stop_at + 60:
            with contextlib.suppress(httpx.HTTPError):
                r = await self.client.post("/v1/feedback", json=body)
                if r.status_code == 202:
                    self.feedback_sent += 1
                    return
                if r.status_code not in (503, 429):
                    return  # not accepted, and retrying would not change that
            self.feedback_retries += 1
            await asyncio.sleep(0.5)

    async def _client(self, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            query = self._rng.choice(ASKS).format(self._rng.choice(TOPICS))
            self.requests += 1
            try:
                r = await self.client.post("/v1/query", json={"query": query})
            except httpx.HTTPError as exc:
                self._fail(type(exc).__name__)
                continue
            if r.status_code != 200:
                self._fail(f"HTTP {r.status_code}")
                continue
            body = r.json()
            if body["declined"] or not body["agents"]:
                self._fail("declined")
                continue
            await self._feedback(body["request_id"], stop_at)

    async def run(self, seconds: float) -> None:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(self._client(stop_at) for _ in range(self.concurrency)))


async def _applied(client: httpx.AsyncClient) -> int:
    r = await client.get("/v1/updater/stats")
    return int(r.json().get("feedback", 0)) if r.status_code == 200 else -1


def _kill_router_replica() -> str:
    """The router's replica in the split topology; in the fast one (routing inside the ingress) the
    dispatch replica, the stage on the request path that is a deployment of its own."""
    import ray

    actors = ray.util.list_named_actors(all_namespaces=True)
    for stage in ("RouterDeployment", "DispatchDeployment"):
        for actor in actors:
            if stage in actor["name"]:
                ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=False)
                return actor["name"]
    return "no stage replica found"


async def _scenario(
    url: str, redis: RedisProcess, replicas: list[FakeLLM], seconds: float, redis_down_s: float, concurrency: int
) -> dict[str, Any]:
    load = Load(url, concurrency)
    events: list[str] = []

    async def chaos() -> None:
        t0 = time.monotonic()
        await asyncio.sleep(seconds * 0.15)
        replicas[0].kill()
        events.append(f"{time.monotonic() - t0:.1f} s: killed agent replica {replicas[0].url}")
        await asyncio.sleep(seconds * 0.1)
        redis.stop()
        events.append(f"{time.monotonic() - t0:.1f} s: stopped Redis")
        await asyncio.sleep(redis_down_s)
        await asyncio.to_thread(redis.start)
        events.append(f"{time.monotonic() - t0:.1f} s: Redis back with its data")
        await asyncio.sleep(seconds * 0.1)
        name = await asyncio.to_thread(_kill_router_replica)
        events.append(f"{time.monotonic() - t0:.1f} s: killed {name}")

    await asyncio.gather(load.run(seconds), chaos())
    deadline = time.monotonic() + 90
    applied = await _applied(load.client)
    while applied < load.feedback_sent and time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        applied = await _applied(load.client)
    await load.client.aclose()
    return {
        "requests": load.requests,
        "failed": load.failed,
        "failures": load.failures,
        "feedback_sent": load.feedback_sent,
        "feedback_applied": applied,
        "lost": max(0, load.feedback_sent - applied),
        "feedback_retries": load.feedback_retries,
        "events": events,
        "seconds": seconds,
        "redis_down_s": redis_down_s,
        "concurrency": concurrency,
    }


def run(
    *,
    seconds: float = 40.0,
    redis_down_s: float = 10.0,
    concurrency: int = 8,
    json_path: str | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    from swarm_route.serve.local import LocalService

    redis = RedisProcess(persist=True).start()
    replicas = [FakeLLM(), FakeLLM()]
    service = None
    try:
        for r in replicas:
            r.wait()
        base = settings or Settings()
        service = LocalService(
            base.model_copy(
                update={
                    "redis_url": redis.url,
                    "agents": [_explainer(replicas)],
                    "serve": base.serve.model_copy(update={"port": free_port()}),
                    "dispatch": base.dispatch.model_copy(update={"timeout_s": 5.0}),
                    # the fake LLM replicas run on this machine
                    "agent_policy": base.agent_policy.model_copy(
                        update={"allow_networks": [*base.agent_policy.allow_networks, "127.0.0.0/8"]}
                    ),
                }
            )
        )
        service.start()
        console.print(f"bench chaos: {service.url}, {concurrency} clients for {seconds:.0f} s")
        result = asyncio.run(_scenario(service.url, redis, replicas, seconds, redis_down_s, concurrency))
    finally:
        if service is not None:
            service.stop()
        for r in replicas:
            with contextlib.suppress(Exception):
                r.kill()
        redis.close()
    table(
        "chaos",
        ["figure", "value"],
        [(k, v) for k, v in result.items() if k not in ("events", "failures")],
    )
    for event in result["events"]:
        console.print(event)
    write_json(json_path, result)
    return result
