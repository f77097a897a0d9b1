import asyncio

from redis.exceptions import ConnectionError as RedisConnectionError

from swarm_route.core.failopen import Breaker
from swarm_route.core.learn.outbox import Outbox
from swarm_route.core.learn.stream import EventStream
from swarm_route.core.messages import Event, Feedback, FinishedRequest


def finished(request_id: str) -> FinishedRequest:
    return FinishedRequest(request_id=request_id, intent_weights={"math": 1.0}, paths=[], cost_usd=0.0)


class CountedStream(EventStream):
    """The real stream, counting its writes; ``fail`` refuses the next that many."""

    def __init__(self, *args, fail: int = 0) -> None:
        super().__init__(*args)
        self.writes: list[int] = []
        self.fail = fail

    async def publish_many(self, events, record_ttl_s=None) -> None:
        await asyncio.sleep(0.01)  # a round trip, long enough for the others to queue behind it
        if self.fail:
            self.fail -= 1
            raise RedisConnectionError("store down")
        self.writes.append(len(events))
        await super().publish_many(events, record_ttl_s)


def written(entries) -> list[str]:
    return [e[1]["data"].split('"request_id":"')[1][:2] for e in entries]


async def test_events_put_during_a_write_go_in_one_write_in_order(redis_client, keys):
    stream = CountedStream(redis_client, keys)
    outbox = Outbox(stream, capacity=100, record_ttl_s=60)
    events: list[Event] = [finished(f"{i:02d}" * 16) for i in range(20)]
    events.insert(5, Feedback(request_id="04" * 16, score=0.9))  # after the record it grades
    first = asyncio.ensure_future(outbox.put(events[0]))
    await asyncio.sleep(0.005)  # its write is in flight
    assert all(await asyncio.gather(*(outbox.put(e) for e in events[1:]))) and await first
    assert stream.writes == [1, 20], "the first alone, the rest while it was in flight in one MULTI"
    ids = written(await redis_client.xrange(keys.finished))
    assert ids == [f"{i:02d}" for i in range(5)] + ["04"] + [f"{i:02d}" for i in range(5, 20)]
    assert await stream.record("19" * 16) is not None, "each record is kept for late feedback"


async def test_a_refused_write_queues_its_batch_in_order_and_flush_writes_it_later(redis_client, keys):
    stream = CountedStream(redis_client, keys, fail=1)
    outbox = Outbox(stream, capacity=100, record_ttl_s=60, breaker=Breaker(open_s=30))
    results = await asyncio.gather(*(outbox.put(finished(f"{i:02d}" * 16)) for i in range(6)))
    assert all(results) and len(outbox) == 6 and stream.writes == [], "all queued, none lost"
    assert await outbox.put(finished("99" * 16)) and len(outbox) == 7, "the store is failing: queued behind"
    assert await outbox.flush() == 7 and len(outbox) == 0 and stream.writes == [7]
    assert written(await redis_client.xrange(keys.finished)) == [f"{i:02d}" for i in range(6)] + ["99"]


async def test_a_full_outbox_refuses_a_batch_it_cannot_queue(redis_client, keys):
    stream = CountedStream(redis_client, keys, fail=1)
    outbox = Outbox(stream, capacity=2, record_ttl_s=60, breaker=Breaker(open_s=30))
    results = await asyncio.gather(
        outbox.put(finished("a" * 32)),
        outbox.put(finished("b" * 32)),
        outbox.put(finished("c" * 32)),
        outbox.put(Feedback(request_id="b" * 32, score=0.5)),
    )
    assert results == [True, True, False, False] and outbox.dropped == 1
