import asyncio

import pytest

from swarm_route.core.route.pheromone import PheromoneStore
from swarm_route.keys import Keys


def store(client, keys, **kw) -> PheromoneStore:
    return PheromoneStore(client, keys, **({"rho": 0.5, "tau_init": 1.0, "tau_min": 0.1, "tau_max": 3.0} | kw))


async def test_deposit_evaporates_then_adds_and_clamps(redis_client, keys):
    s = store(redis_client, keys)
    await s.deposit("qa", {"source>a/m": 1.0})
    assert await s.trails("qa") == {"source>a/m": pytest.approx(1.5)}  # (1-0.5)*1.0 + 1.0
    for _ in range(5):
        await s.deposit("qa", {"source>a/m": 10.0})
    assert (await s.trails("qa"))["source>a/m"] == pytest.approx(3.0)
    assert await s.intents() == ["qa"]


async def test_a_batch_of_events_leaves_the_trails_one_by_one_deposits_would(redis_client, keys):
    """Edges new mid-batch, clamps at both bounds, and a specialist wider than one HSET chunk."""
    events = [
        {f"wide{i}": 0.01 * (i % 7) for i in range(2500)},
        {"source>a/m": 1.0},
        {},
        {"source>a/m": 10.0, "source>b/m": 0.3},
        {"source>c/m": 0.0},
    ]
    one = store(redis_client, Keys(f"{keys.namespace}-one"))
    batch = store(redis_client, Keys(f"{keys.namespace}-batch"))
    for deltas in events:
        await one.deposit("qa", deltas)
    await batch.deposit_many("qa", events)
    assert await batch.trails("qa") == await one.trails("qa")  # the same 6-digit values, not just close
    assert len(await batch.trails("qa")) == 2503 and await batch.intents() == ["qa"]


async def test_scheduled_evaporation_decays_to_the_floor(redis_client, keys):
    s = store(redis_client, keys)
    await s.deposit("qa", {"e1": 1.0})
    assert await s.evaporate() == 1
    assert (await s.trails("qa"))["e1"] == pytest.approx(0.75)
    for _ in range(10):
        await s.evaporate()
    assert (await s.trails("qa"))["e1"] == pytest.approx(0.1)


async def test_concurrent_deposits_are_atomic(redis_client, keys):
    s = store(redis_client, keys, rho=0.0, tau_max=1000.0)
    await asyncio.gather(*(s.deposit("qa", {"e": 1.0}) for _ in range(50)))
    assert (await s.trails("qa"))["e"] == pytest.approx(51.0)


async def test_specialists_are_fused_by_intent_weight(redis_client, keys):
    s = store(redis_client, keys, rho=0.0, tau_max=10.0)
    await s.deposit("a", {"e": 2.0})  # τ_a(e) = 3
    trails = await s.read(["a", "b"])
    assert s.fuse({"a": 1.0}, trails, ["e"]) == pytest.approx(3.0)
    assert s.fuse({"a": 0.5, "b": 0.5}, trails, ["e"]) == pytest.approx(2.0)  # b unseen: τ_init
    assert s.fuse({"a": 1.0}, trails, ["e", "unseen"]) == pytest.approx(2.0)


async def test_bounds_must_contain_the_initial_trail(redis_client, keys):
    with pytest.raises(ValueError):
        store(redis_client, keys, tau_init=5.0)


async def test_a_newcomer_starts_at_the_best_trail_and_keeps_it_through_its_trial(redis_client, keys):
    """Seeded at the intent's best trail, a newcomer's edge does not evaporate while other paths' events
    come in, only its own graded events count down its trial; then it evaporates like every edge."""
    s = store(redis_client, keys, rho=0.5, tau_max=10.0, trial_events=2)
    await s.deposit("qa", {"old": 3.0, "weak": 0.0})  # old 0.5 + 3 = 3.5, weak 0.5
    assert await s.seed("qa", ["new", "old"]) == pytest.approx(3.5)
    assert await s.trails("qa") == {"old": 3.5, "weak": 0.5, "new": 3.5}  # a stored edge keeps its trail
    for _ in range(3):
        await s.deposit("qa", {"old": 0.0})  # others' events: evaporate every edge but the one on trial
    trails = await s.trails("qa")
    assert trails["new"] == pytest.approx(3.5) and trails["old"] == pytest.approx(0.4375)
    await s.deposit("qa", {"new": 1.0})  # its first graded event: no evaporation, the deposit counts
    await s.deposit("qa", {"new": -1.0})  # its second: the trial is over
    assert (await s.trails("qa"))["new"] == pytest.approx(3.5)
    await s.deposit("qa", {"old": 0.0})
    assert (await s.trails("qa"))["new"] == pytest.approx(1.75)
    assert await redis_client.hgetall(keys.trial("qa")) == {}


async def test_a_trial_spans_batches_and_scheduled_decay(redis_client, keys):
    """The same trails whether events come one by one or in a batch; the scheduled decay spares the trial."""
    events = [{"old": 1.0}, {"new": 0.5}, {"old": 0.0}, {"new": 0.0}, {"old": 2.0}]
    one = store(redis_client, Keys(f"{keys.namespace}-one"), trial_events=2)
    batch = store(redis_client, Keys(f"{keys.namespace}-batch"), trial_events=2)
    for s in (one, batch):
        await s.deposit("qa", {"old": 1.0})
        await s.seed("qa", ["new"])
    for deltas in events:
        await one.deposit("qa", deltas)
    await batch.deposit_many("qa", events)
    assert await batch.trails("qa") == await one.trails("qa")
    fresh = store(redis_client, Keys(f"{keys.namespace}-tick"), trial_events=5)
    await fresh.deposit("qa", {"old": 1.0})
    await fresh.seed("qa", ["new"])
    assert await fresh.evaporate() == 1  # only "old" decays
    assert await fresh.trails("qa") == {"old": pytest.approx(0.75), "new": pytest.approx(1.5)}


async def test_no_trails_yet_means_no_seed_and_no_trial(redis_client, keys):
    s = store(redis_client, keys, trial_events=3)
    assert await s.seed("qa", ["new"]) is None
    assert await s.trails("qa") == {} and await redis_client.hgetall(keys.trial("qa")) == {}
    off = store(redis_client, Keys(f"{keys.namespace}-off"), trial_events=0)
    await off.deposit("qa", {"old": 1.0})
    await off.seed("qa", ["new"])
    await off.deposit("qa", {"old": 0.0})  # without trials a seeded edge evaporates at once
    assert (await off.trails("qa"))["new"] == pytest.approx(0.75)


async def test_forgetting_an_agent_takes_its_edges_off_every_specialist_and_trial(redis_client, keys):
    """Edges through any of its nodes go (a model's name may hold '/'); an agent whose name starts the
    same, and every other edge, stay."""
    s = store(redis_client, keys, rho=0.0, tau_max=10.0, trial_events=3)
    assert await s.forget("gone") == 0  # no specialist yet
    await s.deposit("qa", {"source>gone/org/m": 1.0, "gone/org/m>sink": 1.0, "source>gone2/m": 2.0})
    await s.deposit("math", {"source>calc/m": 1.0, "calc/m>gone/m": 1.0})
    await s.seed("math", ["source>gone/x", "source>fresh/m"])
    assert await s.forget("gone") == 4
    assert await s.trails("qa") == {"source>gone2/m": 3.0}
    assert await s.trails("math") == {"source>calc/m": 2.0, "source>fresh/m": 2.0}
    assert await s.on_trial("math") == {"source>fresh/m": 3}
    assert await s.forget("gone") == 0


def test_fusing_a_newer_read_of_a_specialist_uses_its_trails(redis_client, keys):
    """The router fuses the same pool's edges against each read of the trails: a new read must count."""
    s = store(redis_client, keys)
    index = {"e1": 0, "e2": 1}
    assert s.fused({"a": 1.0}, {"a": {"e1": 2.0}}, index).tolist() == [2.0, 1.0]
    assert s.fused({"a": 1.0}, {"a": {"e1": 0.5, "e2": 3.0, "gone": 9.0}}, index).tolist() == [0.5, 3.0]
    assert s.fused({"a": 0.5, "b": 0.5}, {"a": {"e2": 3.0}}, {"e2": 0}).tolist() == [2.0]
