import json

import pytest

from swarm_route.core.learn.quality import QualityGate
from swarm_route.core.learn.stream import EventStream
from swarm_route.core.learn.updater import PheromoneUpdater
from swarm_route.core.messages import Feedback, FinishedRequest, PathOutcome
from swarm_route.core.onboarding import offboard
from swarm_route.core.registry import AgentRegistry
from swarm_route.core.route.pheromone import PheromoneStore
from tests.core.helpers import MATH, agent

EDGES = ["source>a/m", "a/m>sink"]


def updater(client, keys, sample_rate=1.0, penalty=0.0, registry=None) -> PheromoneUpdater:
    store = PheromoneStore(client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0)
    return PheromoneUpdater(
        client,
        keys,
        store,
        QualityGate(0.7, sample_rate),
        deposit_q=0.01,
        epsilon=0.01,
        min_intent_weight=0.05,
        penalty=penalty,
        registry=registry,
    )


def finished(rid: str, score=None, weights=None) -> FinishedRequest:
    return FinishedRequest(
        request_id=rid,
        intent_weights=weights or {"qa": 0.9, "chat": 0.1, "noise": 0.01},
        paths=[PathOutcome(edges=EDGES, nodes=["a/m"], cost_usd=0.0, latency_ms=200, score=score)],
        cost_usd=0.0,
    )


async def drain(u: PheromoneUpdater) -> None:
    while await u.step(block_ms=20):
        pass


async def step_failing_to_write(u: PheromoneUpdater, monkeypatch) -> None:
    """One batch read and handled while the store refuses the batch's transaction."""
    from redis.asyncio.client import Pipeline
    from redis.exceptions import ConnectionError as RedisConnectionError

    async def store_down(self, *args, **kwargs):
        raise RedisConnectionError("store down")

    with monkeypatch.context() as patched:
        patched.setattr(Pipeline, "execute", store_down)
        with pytest.raises(RedisConnectionError):
            await u.step(block_ms=20)


async def test_passing_score_deposits_in_each_weighted_specialist(redis_client, keys):
    u = updater(redis_client, keys)
    stream = EventStream(redis_client, keys)
    await stream.ensure_group()
    await stream.publish_many([finished("r1", score=1.0)], record_ttl_s=60)
    await drain(u)
    qa, chat, noise = (await u.store.read(["qa", "chat", "noise"])).values()
    assert qa[EDGES[0]] == pytest.approx(0.9 * 1.0 + 0.9)  # (1-ρ)·τ_init + w·Q/(0+ε)
    assert chat[EDGES[0]] == pytest.approx(0.9 + 0.1)
    assert noise == {}  # below min_intent_weight
    assert (await u.stats())["deposited"] == 1


async def test_a_failing_score_takes_the_penalty_off_the_path_and_a_broken_leader_loses_its_lead(redis_client, keys):
    """Without the penalty, a path that only ever fails keeps its lead over one nobody grades (every trail
    evaporates alike); with it, the failing path falls below the other within a few events."""
    other = "source>b/m"
    for penalty, falls in ((0.0, False), (1.0, True)):
        u = updater(redis_client, keys, penalty=penalty)
        await u.store.deposit_many("qa", [{EDGES[0]: 4.0, EDGES[1]: 4.0, other: 2.0}])
        for i in range(5):
            await u.handle(finished(f"p{penalty}-{i}", score=0.0, weights={"qa": 1.0}))
        qa = await u.store.trails("qa")
        assert (qa[EDGES[0]] < qa[other]) is falls, (penalty, qa)
        assert (await u.stats())["rejected"] == 5
        await redis_client.delete(keys.pheromone("qa"), keys.updater_stats)
    u = updater(redis_client, keys, penalty=1.0)
    await u.handle(finished("fail", score=0.0, weights={"qa": 1.0}))
    assert (await u.store.trails("qa"))[EDGES[0]] == pytest.approx(0.1), "bounded below by τ_min"


async def test_failing_score_and_unsampled_requests_deposit_nothing(redis_client, keys):
    u = updater(redis_client, keys)
    await u.stream.ensure_group()
    await u.stream.publish_many([finished("r1", score=0.2)], record_ttl_s=60)
    await drain(u)
    assert await u.store.trails("qa") == {}
    assert (await u.stats())["rejected"] == 1
    u0 = updater(redis_client, keys, sample_rate=0.0)
    await u0.stream.publish_many([finished("r2", score=1.0)], record_ttl_s=60)
    await drain(u0)
    assert await u0.store.trails("qa") == {}


async def test_a_cascade_s_grades_teach_the_ability_model_but_no_trail_and_no_agreement(redis_client, keys):
    """A cascade's paths were asked on condition (its strong path only where the panel differed: the hard
    prompts), so their grades would rank paths on a biased sample: the outcomes are logged for the ability
    model, without the answers the agreement record reads, and no trail moves, on a pass or a failure."""
    from swarm_route.core.route.outcomes import OutcomeLog

    u = updater(redis_client, keys, penalty=1.0)
    for i, score in enumerate((1.0, 0.0)):
        event = finished(f"c{i}", score=score)
        event.query, event.cascade, event.paths[0].answer = f"question {i}", True, "b"
        await u.handle(event)
    assert await u.store.read(["qa", "chat"]) == {"qa": {}, "chat": {}}
    logged = await OutcomeLog(redis_client, keys).latest(10)
    assert [(o.text, o.score, o.answer) for o in logged] == [("question 0", 1.0, None), ("question 1", 0.0, None)]
    plain = finished("p", score=1.0)
    plain.query, plain.paths[0].answer = "question 2", "b"
    await u.handle(plain)
    assert (await u.store.trails("qa"))[EDGES[0]] > 1.0
    assert (await OutcomeLog(redis_client, keys).latest(1))[0].answer == "b"


async def test_late_feedback_grades_the_recorded_path(redis_client, keys):
    u = updater(redis_client, keys)
    await u.stream.ensure_group()
    await u.stream.publish_many([finished("r1")], record_ttl_s=60)  # no score known at answer time
    await drain(u)
    assert await u.store.trails("qa") == {}
    await u.stream.publish_many([Feedback(request_id="r1", score=0.9)])
    await u.stream.publish_many([Feedback(request_id="gone", score=0.9)])
    await drain(u)
    assert (await u.store.trails("qa"))[EDGES[1]] > 1.0
    stats = await u.stats()
    assert stats["feedback"] == 1 and stats["feedback_orphaned"] == 1


async def test_feedback_grades_only_the_answers_the_caller_got(redis_client, keys):
    """An escalated cascade: two cheap answers that differed were set aside and the strong path's stood. The
    caller's grade is about that one; giving it to the cheap paths would teach the ability model that they
    answer such queries as well as the strong path did."""
    from swarm_route.core.route.outcomes import OutcomeLog

    u = updater(redis_client, keys)
    await u.stream.ensure_group()
    record = finished("esc")
    record.query, record.cascade = "a hard question", True
    set_aside = [
        PathOutcome(edges=[f"source>{n}", f"{n}>sink"], nodes=[n], cost_usd=0.0, latency_ms=1, stood=False)
        for n in ("cheap1/m", "cheap2/m")
    ]
    record.paths = [*set_aside, *record.paths]
    await u.stream.publish_many([record], record_ttl_s=60)
    await u.stream.publish_many([Feedback(request_id="esc", score=0.9)])
    await drain(u)
    logged = await OutcomeLog(redis_client, keys).latest(10)
    assert [(o.node, o.score) for o in logged] == [("a/m", 0.9)]
    assert (await u.stats())["graded"] == 1


async def test_a_grade_for_an_agent_removed_meanwhile_lays_no_trail(redis_client, keys):
    """Late feedback for an agent that was removed after it answered deposits nothing (its trails went with
    it), while grades of registered agents in the same batch do; an agent registered after the updater's
    last look at the registry still earns its trail."""
    registry = AgentRegistry(redis_client, keys, refresh_s=60.0)  # a view that will not refresh by itself
    u = updater(redis_client, keys, registry=registry)
    await registry.register(agent("a", "qa", MATH))
    await u.stream.ensure_group()
    await u.stream.publish_many([finished("r1")], record_ttl_s=60)
    await drain(u)
    assert (await registry.snapshot())[1].keys() == {"a"}
    await offboard(registry, u.store, "a")
    await AgentRegistry(redis_client, keys).register(agent("b", "qa", MATH))  # another replica registers b
    b = PathOutcome(edges=["source>b/m", "b/m>sink"], nodes=["b/m"], cost_usd=0.0, latency_ms=100, score=1.0)
    late, fresh = Feedback(request_id="r1", score=0.9), finished("r2").model_copy(update={"paths": [b]})
    await u.stream.publish_many([late, fresh])
    await drain(u)
    assert set(await u.store.trails("qa")) == {"source>b/m", "b/m>sink"}
    stats = await u.stats()
    assert stats["feedback"] == 1 and stats["unregistered"] == 2  # a's two specialists (qa, chat)
    late = finished("r3").model_copy(update={"paths": [*finished("r3").paths, b]})  # a's answer, in flight
    await u.stream.publish_many([late])
    await drain(u)
    assert set(await redis_client.hgetall(keys.latency)) == {"b/m"}, "the removed agent's latency stays gone"


async def test_latency_is_tracked_per_node(redis_client, keys):
    u = updater(redis_client, keys)
    await u.stream.ensure_group()
    await u.stream.publish_many([finished("r1")], record_ttl_s=60)
    await drain(u)
    assert float(await redis_client.hget(keys.latency, "a/m")) == pytest.approx(0.2)


async def test_malformed_entries_are_acknowledged_not_retried(redis_client, keys):
    u = updater(redis_client, keys)
    await u.stream.ensure_group()
    await redis_client.xadd(keys.finished, {"data": "{not json"})
    await drain(u)
    assert (await u.stats())["malformed"] == 1
    assert await u.stream.backlog() == 0


async def test_an_event_that_cannot_be_handled_is_dead_lettered_and_learning_goes_on(redis_client, keys, monkeypatch):
    import json

    u = updater(redis_client, keys)
    await u.stream.ensure_group()
    grade = u._grade

    def poisoned(writes, record, path, score):
        if record.request_id == "poison":
            raise ZeroDivisionError("a poison entry")
        grade(writes, record, path, score)

    monkeypatch.setattr(u, "_grade", poisoned)
    await u.stream.publish_many([finished("poison", score=1.0)], record_ttl_s=60)
    await u.stream.publish_many([finished("after", score=1.0)], record_ttl_s=60)
    await drain(u)
    stats = await u.stats()
    assert stats["dead_lettered"] == 1 and stats["deposited"] == 1, "the entry after the poison was learnt"
    (letter,) = [json.loads(x) for x in await redis_client.lrange(keys.dead_letters, 0, -1)]
    assert letter["event"]["request_id"] == "poison" and "ZeroDivisionError" in letter["error"]
    assert await u.stream.backlog() == 0, "acknowledged: not redelivered into a crash loop"


async def test_a_record_claiming_a_negative_or_nan_cost_never_reaches_the_update(redis_client, keys):
    from pydantic import ValidationError

    for cost in (-0.01, float("nan"), float("inf")):
        with pytest.raises(ValidationError):
            PathOutcome(edges=EDGES, nodes=["a/m"], cost_usd=cost, latency_ms=1)
    u = updater(redis_client, keys)
    await u.stream.ensure_group()
    bad = finished("neg", score=1.0).model_dump()
    bad["paths"][0]["cost_usd"] = -0.01  # = −ε: Δτ would divide by zero
    await redis_client.xadd(keys.finished, {"data": json.dumps(bad)})
    await drain(u)
    assert (await u.stats())["malformed"] == 1 and await u.store.trails("qa") == {}


async def test_a_batch_learns_what_its_events_teach_one_by_one_in_a_few_round_trips(redis_client, keys, monkeypatch):
    """Counters, each node's latency EWMA, the outcome log and the trails come out as if every event had
    been handled alone, while the batch's writes take a constant number of round trips."""
    from redis.asyncio.client import Pipeline

    from swarm_route.core.route.outcomes import OutcomeLog
    from swarm_route.keys import Keys

    def events() -> list[FinishedRequest]:
        out = []
        for i in range(24):
            event = finished(f"r{i}", score=(0.9, 0.3, None)[i % 3], weights={"qa": 0.8, "chat": 0.2})
            event.query = f"question {i}"
            event.paths[0].latency_ms = 100 + 10 * i
            out.append(event)
        return out

    alone = Keys(keys.namespace + "-alone")
    one_by_one = updater(redis_client, alone)
    for event in events():
        await one_by_one.handle(event)

    batched = updater(redis_client, keys)
    await batched.stream.ensure_group()
    for event in events():
        await batched.stream.publish_many([event], record_ttl_s=60)
    trips = 0
    send, execute = redis_client.execute_command, Pipeline.execute

    async def counted_command(*args, **kwargs):
        nonlocal trips
        trips += 1
        return await send(*args, **kwargs)

    async def counted_pipeline(self, *args, **kwargs):
        nonlocal trips
        trips += 1
        return await execute(self, *args, **kwargs)

    monkeypatch.setattr(redis_client, "execute_command", counted_command)
    monkeypatch.setattr(Pipeline, "execute", counted_pipeline)
    assert await batched.step(count=64, block_ms=20) == 24
    assert trips <= 5, f"{trips} round trips for 24 events"  # the read (2), latencies, the writes with the ack
    monkeypatch.undo()

    assert await batched.stats() == await one_by_one.stats()
    assert (await batched.stats())["deposited"] == 8 and (await batched.stats())["rejected"] == 8
    # one by one, each step is stored to 6 digits; a batch folds its samples at full precision
    assert float((await latencies_of(redis_client, keys))["a/m"]) == pytest.approx(
        float((await latencies_of(redis_client, alone))["a/m"]), rel=1e-5
    )
    for intent in ("qa", "chat"):
        assert await batched.store.trails(intent) == pytest.approx(await one_by_one.store.trails(intent))
    mine, theirs = await OutcomeLog(redis_client, keys).latest(100), await OutcomeLog(redis_client, alone).latest(100)
    assert [o.text for o in mine] == [o.text for o in theirs] == [f"question {i}" for i in range(24) if i % 3 != 2]


async def latencies_of(client, keys) -> dict[str, str]:
    return await client.hgetall(keys.latency)


async def test_a_batch_the_store_fails_to_write_is_neither_acknowledged_nor_half_written(
    redis_client, keys, monkeypatch
):
    """The acknowledgement travels in the batch's transaction: a failed write leaves every entry pending (to be
    claimed again) and nothing of the batch written, so its redelivery is not learnt twice."""
    u = updater(redis_client, keys)
    await u.stream.ensure_group()
    for i in range(3):
        await u.stream.publish_many([finished(f"r{i}", score=1.0)], record_ttl_s=60)
    await step_failing_to_write(u, monkeypatch)
    assert await u.stream.backlog() == 3
    assert await u.stats() == {} and await u.store.trails("qa") == {}
    assert await redis_client.hgetall(keys.latency) == {}


async def test_a_grade_whose_batch_failed_to_write_is_applied_when_read_again(redis_client, keys, monkeypatch):
    """The first-grade marker is set before the batch's transaction: when the transaction fails, the same
    entry read again finds its own mark and is applied; a second grade of the request stays a duplicate."""
    from swarm_route.core.learn import stream

    u = updater(redis_client, keys)
    await u.stream.ensure_group()
    await u.stream.publish_many([finished("r1")], record_ttl_s=60)
    await drain(u)
    await u.stream.publish_many([Feedback(request_id="r1", score=0.9)])
    await step_failing_to_write(u, monkeypatch)
    monkeypatch.setattr(stream, "CLAIM_IDLE_MS", 0)  # read the unacknowledged entry again at once
    await u.stream.publish_many([Feedback(request_id="r1", score=0.1)])
    await drain(u)
    stats = await u.stats()
    assert stats["feedback"] == 1 and stats["feedback_duplicate"] == 1
    assert (await u.store.trails("qa"))[EDGES[0]] > 1.0, "the first grade (0.9, passing) was applied"
    assert await u.stream.backlog() == 0
