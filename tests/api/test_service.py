"""One replica's Service without HTTP: what it tells a client about learning, and whom it lets grade."""

import asyncio
import json

import pytest

from swarm_route.api.access import Caller
from swarm_route.api.errors import ApiError
from swarm_route.api.service import Service
from swarm_route.config import Settings
from swarm_route.core.failopen import Breaker
from swarm_route.core.messages import DirectCall, FinishedRequest, PathOutcome


class Unused:
    classifier = None

    async def call(self, agent, model, query):
        return DirectCall(model=model)


def finished(rid: str, caller: str | None) -> FinishedRequest:
    path = PathOutcome(edges=["source>a/m", "a/m>sink"], nodes=["a/m"], cost_usd=0.0, latency_ms=1.0)
    return FinishedRequest(request_id=rid, intent_weights={"x": 1.0}, paths=[path], cost_usd=0.0, caller=caller)


@pytest.fixture
def service(redis_client, keys):
    settings = Settings(namespace=keys.namespace, redis_url="redis://unused", store={"outbox_capacity": 1})

    async def stats():
        return {}

    return Service(
        settings, redis_client, Breaker(), pipeline=lambda s: Unused(), dispatch=Unused(), updater_stats=stats
    )


async def test_the_answer_says_whether_it_will_be_learnt_from(service, redis_client, keys):
    assert await service.finished(finished("a" * 32, None)) == "queued"
    await service.set_learning(False)
    assert await service.finished(finished("b" * 32, None)) == "paused"
    await service.feedback("b" * 32, 0.9, Caller())  # accepted while paused, as the docs say: the record was kept
    await asyncio.gather(*service._background)  # "a" is published in the background: read after it, not during
    events = [json.loads(fields["data"]) for _, fields in await redis_client.xrange(keys.finished)]
    published = sorted((e["type"], e["request_id"][0]) for e in events)
    assert published == [("feedback", "b"), ("finished", "a")], "the paused request was not published, its grade was"
    await service.set_learning(True)
    service.outbox._queue.append(finished("c" * 32, None))  # the store has been down: the outbox is at capacity
    said = await service.finished(finished("d" * 32, None))
    assert said.startswith("dropped") and "outbox is full" in said


async def test_only_the_requesting_key_or_an_admin_grades_and_only_once(service, redis_client, keys):
    await service.finished(finished("e" * 32, "key-one"))
    with pytest.raises(ApiError) as denied:
        await service.feedback("e" * 32, 0.5, Caller("key-two"))
    assert denied.value.status == 403
    await service.feedback("e" * 32, 0.5, Caller("key-one"))
    await redis_client.set(keys.graded("e" * 32), "1")  # what the updater does when it applies the grade
    with pytest.raises(ApiError) as twice:
        await service.feedback("e" * 32, 0.9, Caller("admin", admin=True))
    assert twice.value.status == 409
