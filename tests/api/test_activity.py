"""The console's traffic record: walks written in batches off the request path, totals as if one by one."""

import asyncio

from swarm_route.api.activity import Activity
from swarm_route.core.failopen import Breaker
from swarm_route.core.messages import Query
from tests.core.test_pipeline import Stages, decision


async def test_walks_finishing_together_are_written_in_one_batch_and_counted_alike(redis_client, keys):
    walks = [await Stages(decision("calc")).pipeline().walk(Query(text=f"{i}+2"), f"r{i}") for i in range(5)]
    activity = Activity(redis_client, keys, Breaker(), size=3)
    executed = []
    pipeline = redis_client.pipeline

    def counted(*args, **kwargs):
        executed.append(1)
        return pipeline(*args, **kwargs)

    redis_client.pipeline = counted
    try:
        activity.record(walks[0], "0+2")
        await asyncio.sleep(0)  # its write starts
        for i, walked in enumerate(walks[1:], 1):  # these finish while the first write is in flight
            activity.record(walked, f"{i}+2")
        await activity._writer
    finally:
        del redis_client.pipeline
    assert len(executed) == 2, "one write for the first walk, one for the four behind it"
    assert [d.request_id for d in await activity.decisions(10)] == ["r4", "r3", "r2"], "newest first, capped"
    overview = await activity.overview(2)
    assert overview.requests == 5 and overview.per_agent == {"calc": 5} and overview.per_intent == {"math": 5}
    assert abs(overview.cost_usd - 0.05) < 1e-9


async def test_a_store_failure_loses_the_record_and_never_raises(redis_client, keys):
    walked = await Stages(decision("calc")).pipeline().walk(Query(text="2+2"), "r1")
    breaker = Breaker(open_s=60)
    activity = Activity(redis_client, keys, breaker)

    async def down(*args, **kwargs):
        raise ConnectionError("store down")

    activity._write = down
    activity.record(walked, "2+2")
    await activity._writer
    assert breaker.is_open
    activity.record(walked, "2+2")  # skipped while the breaker is open
    assert activity._writer.done() and not activity._waiting
