import asyncio
from datetime import UTC, datetime

import pytest

from swarm_route.core.failopen import Breaker
from swarm_route.core.spend import ANONYMOUS, Budget, Ledger, OverBudget, SpendUnavailable, resets_at
from swarm_route.store import RedisProcess, connect


async def test_a_key_without_budget_is_charged_but_never_refused(redis_client, keys):
    ledger = Ledger(redis_client, keys, {})
    assert await ledger.headroom("free") is None
    hold = await ledger.hold("free", "r1", 5.0)
    await ledger.settle(hold, 7.5)
    report = await ledger.report("free")
    assert report.spent_usd == {"daily": 7.5, "monthly": 7.5} and report.remaining_usd == {}
    assert await ledger.known() == ["free"]


async def test_headroom_is_the_tightest_budget_and_a_spent_window_is_refused(redis_client, keys):
    ledger = Ledger(redis_client, keys, {"team": Budget(daily_usd=1.0, monthly_usd=10.0, per_request_usd=0.5)})
    room = await ledger.headroom("team")
    assert (room.usd, room.budget) == (0.5, "per-request")
    await ledger.settle(await ledger.hold("team", "r1", 0.4), 0.8)
    room = await ledger.headroom("team")
    assert room.budget == "daily" and room.usd == pytest.approx(0.2)
    await ledger.settle(await ledger.hold("team", "r2", 0.1), 0.3)
    with pytest.raises(OverBudget) as spent:
        await ledger.headroom("team")
    assert spent.value.budget == "daily" and spent.value.resets_at > datetime.now(UTC)
    assert "daily budget of $1 of key 'team' is spent" in str(spent.value)


async def test_holds_of_requests_in_flight_count_against_the_budget(redis_client, keys):
    ledger = Ledger(redis_client, keys, {"team": Budget(daily_usd=1.0)})
    first = await ledger.hold("team", "r1", 0.6)
    with pytest.raises(OverBudget, match="would be passed"):
        await ledger.hold("team", "r2", 0.6)
    assert (await ledger.report("team")).held_usd == pytest.approx(0.6)
    await ledger.settle(first, 0.1)  # it cost less than expected: the rest is free again
    await ledger.hold("team", "r3", 0.6)
    report = await ledger.report("team")
    assert report.spent_usd["daily"] == pytest.approx(0.1) and report.remaining_usd["daily"] == pytest.approx(0.3)


async def test_a_hold_left_by_a_dead_replica_expires(redis_client, keys):
    # a TTL long beside a stall of this process (the suite runs beside Ray's replicas)
    ledger = Ledger(redis_client, keys, {"team": Budget(daily_usd=1.0)}, hold_ttl_s=1.0)
    await ledger.hold("team", "lost", 0.9)  # never settled
    with pytest.raises(OverBudget):
        await ledger.hold("team", "r2", 0.5)
    await asyncio.sleep(1.1)
    await ledger.hold("team", "r2", 0.5)


async def test_concurrent_holds_through_two_replicas_never_pass_the_budget(redis_server, keys):
    """Two ledgers with their own connections stand for two ingress replicas: 64 requests at once, each
    expected to cost $0.01, against $0.10 a day: exactly ten are held, whatever the interleaving."""
    clients = [connect(redis_server.url), connect(redis_server.url)]
    replicas = [Ledger(c, keys, {"team": Budget(daily_usd=0.1)}) for c in clients]

    async def one(i: int) -> bool:
        try:
            await replicas[i % 2].hold("team", f"r{i}", 0.01)
        except OverBudget:
            return False
        return True

    held = await asyncio.gather(*(one(i) for i in range(64)))
    assert sum(held) == 10
    for c in clients:
        await c.aclose()


async def test_store_down_fails_open_and_charges_later(keys):
    server = RedisProcess()  # not started yet: the store is down
    client = connect(server.url)
    ledger = Ledger(client, keys, {"team": Budget(daily_usd=1.0)}, breaker=Breaker(open_s=0.05))
    try:
        assert (await ledger.headroom("team")) is None  # unknown: only the per-request cap would apply
        hold = await ledger.hold("team", "r1", 0.5)
        assert not hold.stored
        await ledger.settle(hold, 0.25)
        assert ledger.unrecorded == 1
        server.start()
        await asyncio.sleep(0.06)
        assert await ledger.flush() == 1 and ledger.unrecorded == 0
        assert (await ledger.report("team")).spent_usd["daily"] == pytest.approx(0.25)
    finally:
        await client.aclose()
        server.close()


async def test_store_down_fails_closed_when_told_to(keys):
    client = connect(RedisProcess().url)
    ledger = Ledger(client, keys, {"team": Budget(daily_usd=1.0)}, fail="closed")
    with pytest.raises(SpendUnavailable):
        await ledger.headroom("team")
    with pytest.raises(SpendUnavailable):
        await ledger.hold("team", "r1", 0.1)
    await client.aclose()


async def test_reset_forgets_the_current_windows(redis_client, keys):
    ledger = Ledger(redis_client, keys, {ANONYMOUS: Budget(daily_usd=1.0)})
    await ledger.settle(await ledger.hold(None, "r1", 0.5), 1.0)
    with pytest.raises(OverBudget):
        await ledger.headroom(None)
    await ledger.reset(ANONYMOUS)
    assert (await ledger.headroom(None)).usd == pytest.approx(1.0)


def test_windows_reset_at_the_next_utc_day_and_month():
    now = datetime(2026, 12, 31, 15, 30, tzinfo=UTC)
    assert resets_at("daily", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert resets_at("monthly", now) == datetime(2027, 1, 1, tzinfo=UTC)
    assert resets_at("monthly", datetime(2026, 1, 31, tzinfo=UTC)) == datetime(2026, 2, 1, tzinfo=UTC)
