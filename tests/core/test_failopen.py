"""The store fails: routing answers from what it last read, and events wait in order for the store's return."""

import random
import time
from collections.abc import Iterator

import pytest

from swarm_route.core.failopen import UNREAD, Breaker, Watched
from swarm_route.core.learn.outbox import Outbox
from swarm_route.core.learn.stream import EventStream
from swarm_route.core.messages import Feedback, FinishedRequest, IntentResult, RouteRequest
from swarm_route.core.registry import AgentRegistry
from swarm_route.core.route.pheromone import PheromoneStore
from swarm_route.core.route.router import ReasoningRouter
from swarm_route.store import RedisProcess, connect
from tests.core.helpers import MATH, agent


@pytest.fixture
def flaky_redis() -> Iterator[RedisProcess]:
    """A store of the test's own, to stop and restart (with its data) without touching the session's."""
    server = RedisProcess(persist=True).start()
    yield server
    server.close()


def finished(request_id: str) -> FinishedRequest:
    return FinishedRequest(request_id=request_id, intent_weights={"math": 1.0}, paths=[], cost_usd=0.0)


async def test_events_wait_in_order_while_the_store_is_down_and_a_full_outbox_refuses(flaky_redis, keys):
    client = connect(flaky_redis.url)
    stream = EventStream(client, keys)
    outbox = Outbox(stream, capacity=3, record_ttl_s=60, breaker=Breaker(open_s=0.2))
    assert await outbox.put(finished("a" * 32)) and len(outbox) == 0, "written at once while the store is up"
    flaky_redis.stop()
    assert await outbox.put(finished("b" * 32))
    assert await outbox.put(Feedback(request_id="b" * 32, score=0.9))
    assert await outbox.put(finished("c" * 32)) and len(outbox) == 3
    assert not await outbox.put(Feedback(request_id="c" * 32, score=0.1)), "full: feedback is refused, not lost"
    assert not await outbox.put(finished("d" * 32)) and outbox.dropped == 1
    assert await outbox.flush() == 0 and len(outbox) == 3
    flaky_redis.start()
    assert await outbox.flush() == 3 and len(outbox) == 0
    entries = await client.xrange(keys.finished)
    kinds = [(e[1]["data"].split('"type":"')[1][:8], e[1]["data"].split('"request_id":"')[1][:1]) for e in entries]
    assert kinds == [("finished", "a"), ("finished", "b"), ("feedback", "b"), ("finished", "c")]
    assert await stream.record("b" * 32) is not None, "the record feedback needs was written too"
    await client.aclose()


async def test_routing_fails_open_on_the_last_trails_then_on_tau_init(flaky_redis, keys):
    client = connect(flaky_redis.url)
    store = PheromoneStore(client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0)
    agents = {"cheap": agent("cheap", "math", MATH, {"m": 0.001}), "dear": agent("dear", "math", MATH, {"m": 0.002})}
    registry = AgentRegistry(client, keys)
    for spec in agents.values():
        await registry.register(spec)
    await registry.snapshot()
    errors: list[str] = []
    router = ReasoningRouter(
        store, alpha=3, beta=1, q0=1.0, cost_weight=0.0, rng=random.Random(0), breaker=Breaker(0.2, errors.append)
    )
    intent = IntentResult({"math": 1.0}, {"math": 0.9}, 0.1, False)
    await store.deposit("math", {"source>dear/m": 4.0, "dear/m>sink": 4.0})
    up = await router.route(RouteRequest(text="2+2", intent=intent), agents)
    assert up.store is None and up.selection[0].agents == ["dear"], "the trail decides at λ=0"
    flaky_redis.stop()
    down = await router.route(RouteRequest(text="2+2", intent=intent), agents)
    assert down.selection[0].agents == ["dear"] and "trails as of" in down.store and errors == ["trails"]
    assert (await registry.snapshot())[1].keys() == agents.keys(), "the registry serves its last snapshot"
    router._last_trails.max_age_s = 0.0
    stale = await router.route(RouteRequest(text="2+2", intent=intent), agents)
    assert "τ_init" in stale.store and not stale.declined
    flaky_redis.start()
    await client.aclose()


async def test_a_hanging_store_costs_one_timeout_then_the_last_snapshot_is_served_at_once(flaky_redis, keys):
    client = connect(flaky_redis.url)
    registry = AgentRegistry(client, keys, breaker=Breaker(open_s=5.0))
    await registry.register(agent("math", "math", MATH))
    await registry.snapshot()
    flaky_redis.freeze()
    try:
        t = time.perf_counter()
        assert "math" in (await registry.snapshot())[1]
        first = time.perf_counter() - t
        t = time.perf_counter()
        assert "math" in (await registry.snapshot())[1]
        # the first waits out the socket timeout (2 s), the second must not (a generous bound: Ray runs beside)
        assert time.perf_counter() - t < 0.5 < first, "the open breaker skips the store instead of waiting again"
    finally:
        flaky_redis.thaw()
    await client.aclose()


async def test_a_watched_value_is_read_once_an_interval_in_the_background_and_kept_when_the_read_fails():
    import asyncio

    reads: list[float] = []
    failing = False

    async def fetch(previous: int) -> int:
        if failing:
            raise ConnectionError("store down")
        reads.append(time.monotonic())
        return len(reads)

    # an interval long beside a stall of this process (the suite runs beside Ray's replicas)
    value = Watched("test", fetch, 0, Breaker(open_s=0.05), interval_s=0.5)
    assert await value.get() == 0, "no query waits for the read: it starts in the background"
    await asyncio.sleep(0.01)
    assert [await value.get() for _ in range(5)] == [1] * 5, "one read serves the interval"
    time.sleep(0.55)
    assert await value.get() == 1, "past the interval, answered at once from the value as it is"
    await asyncio.sleep(0.01)
    assert await value.get() == 2
    value.set(7)
    assert await value.get() == 7, "this replica's own write is seen at once, not overwritten by a read"
    value.invalidate()
    assert await value.get() == 3, "after invalidate the next get reads before answering"
    failing = True
    time.sleep(0.55)
    assert await value.get() == 3
    await asyncio.sleep(0.01)
    assert await value.get() == 3, "a failed read keeps the last value"
    assert len(reads) == 3


async def test_a_watched_value_never_read_raises_the_stores_error_and_reads_one_at_a_time():
    import asyncio

    calls = []

    async def fetch(previous):
        calls.append(previous)
        if len(calls) == 1:
            raise ConnectionError("store down")
        await asyncio.sleep(0.02)
        return len(calls)

    value = Watched("test", fetch, UNREAD, Breaker(open_s=0.0), interval_s=0.0)
    with pytest.raises(ConnectionError):
        await value.get()
    assert await value.get() == 2, "nothing read yet: the next get reads again"
    assert await asyncio.gather(*(value.get() for _ in range(5))) == [3, 2, 2, 2, 2], "one read in flight at a time"
    assert calls[1:] == [UNREAD, 2], "fetch sees the previous value (a versioned snapshot reloads only on change)"
