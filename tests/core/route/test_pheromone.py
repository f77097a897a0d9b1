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
