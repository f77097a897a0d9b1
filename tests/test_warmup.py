import pytest

from swarm_route.agents.replay import Record, RoutingMatrix, Row, replay_pool
from swarm_route.core.learn.quality import QualityGate
from swarm_route.core.route.outcomes import OutcomeLog
from swarm_route.core.route.pheromone import PheromoneStore
from swarm_route.warmup import model_path, warm_up


def rows() -> list[Row]:
    return [
        Row(f"s{i}", f"question {i}", "quiz", {"big/v1": Record(1.0, "a", 0.01), "small": Record(s, "b", 0.001)})
        for i, s in enumerate([1.0, 0.0, 0.0, None])
    ]


async def test_warmup_deposits_on_passing_models_only_and_logs_outcomes(redis_client, keys):
    store = PheromoneStore(redis_client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=50)
    log = OutcomeLog(redis_client, keys)
    report = await warm_up(rows(), store, QualityGate(0.5, 1.0), deposit_q=0.1, epsilon=0.1, outcomes=log)
    assert (report.prompts, report.deposits, report.outcomes) == (4, 4, 7)
    trails = await store.trails("quiz")
    big, small = model_path("big/v1").edges[0], model_path("small").edges[0]
    assert big == "source>big_v1/big/v1"
    assert trails[big] > trails[small]  # big passed 4 of 4, small 1 of 3


async def test_warmup_batches_leave_the_trails_of_one_row_at_a_time(redis_client, keys):
    """Trail updates are written a batch of rows at a time, per specialist in row order: where the batches
    end changes nothing."""
    from swarm_route.keys import Keys

    many = [Row(r.sample_id + t, r.prompt, t, r.records) for t in ("quiz", "chat") for r in rows()] * 3
    trails = []
    for batch in (1, 5, 500):
        store = PheromoneStore(
            redis_client, Keys(f"{keys.namespace}-{batch}"), rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=50
        )
        report = await warm_up(many, store, QualityGate(0.5, 1.0), deposit_q=0.1, epsilon=0.1, batch=batch)
        assert report.deposits == 24
        trails.append({i: await store.trails(i) for i in ("quiz", "chat")})
    assert trails[0]["quiz"] and trails[0]["chat"]
    assert trails[0] == trails[1] == trails[2]


def test_replay_pool_prices_models_from_their_recorded_spend(tmp_path):
    pool = replay_pool(RoutingMatrix(rows(), ["big/v1", "small"]), [tmp_path / "x.csv"])
    assert [a.name for a in pool] == ["big_v1", "small"]
    big, small = (a.models[0].cost_per_1k_tokens for a in pool)
    assert big == pytest.approx(10 * small, rel=0.01)
    assert pool[0].intents() == ["quiz"]
