"""Session-wide real parts: one Redis server, one OpenAI-compatible server, and (for integration tests) one
local Ray with the Serve app. Each test gets its own Redis namespace instead of its own server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from swarm_route.keys import Keys
from swarm_route.store import connect, free_port
from tests.support.a2a_server import A2AServer
from tests.support.openai_server import OpenAIServer
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.redis_server import RedisServer

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ADMIN_KEY = "admin-test-key-0123456789"
CLIENT_KEY = "client-test-key-0123456789"
GRADER_KEY = "grader-test-key-0123456789"  # a second client, whose rate limit test_access does not exhaust


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(persist=True).start()  # persisted: a fail-open test stops and restarts it
    yield server
    server.close()


@pytest.fixture(scope="session")
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def a2a_server() -> Iterator[A2AServer]:
    server = A2AServer().start()
    yield server
    server.stop()


@pytest.fixture
def keys() -> Keys:
    return Keys(f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def service(redis_server: RedisServer, openai_server: OpenAIServer, otlp_receiver: OTLPReceiver, tmp_path_factory):  # type: ignore[no-untyped-def]
    """The whole app on real Ray Serve, started once for the session, exporting spans to a real receiver."""
    from swarm_route.config import Settings
    from swarm_route.serve.local import LocalService

    # the standard variables; Ray's processes inherit them from this one
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_receiver.endpoint
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "200"

    settings = Settings(
        redis_url=redis_server.url,
        namespace="itest",
        serve={"port": free_port(), "num_cpus": 2, "max_ongoing_requests": 64, "metrics_port": free_port()},
        updater={"sample_rate": 1.0, "gate_threshold": 0.5, "block_ms": 50, "evaporate_interval_s": 3600},
        dispatch={"timeout_s": 2.0, "retries": 1, "backoff_s": 0.05},
        auth={"admin_keys": [ADMIN_KEY], "client_keys": [CLIENT_KEY, GRADER_KEY], "rate_per_minute": 20},
        agent_policy={
            "hosts": ["127.0.0.1", "*.internal.test"],
            "allow_networks": ["127.0.0.0/8"],
            "replay_dirs": [str(tmp_path_factory.getbasetemp())],  # the tests' recordings
        },
    )
    local = LocalService(settings)
    local.start(ready_timeout_s=180)
    yield local
    local.stop()


@pytest.fixture(scope="session")
def http_admin(service):  # type: ignore[no-untyped-def]
    import httpx

    with httpx.Client(base_url=service.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
        yield client
