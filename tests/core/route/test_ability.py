import numpy as np
import pytest

from swarm_route.core.route.ability import AbilityModel, Graded
from swarm_route.core.route.outcomes import AbilityMemory, Outcome, OutcomeLog

TEXTS = [
    "write python code to sort a list",
    "python function to reverse a string",
    "what is the capital of france",
    "which river flows through paris",
]
NODES = ["coder/m", "geo/m"]
SCORES = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])


def test_neighbours_decide_per_query_ability():
    model = AbilityModel(k=2, shrinkage=0.5).fit(TEXTS, NODES, SCORES, SCORES * 0.01)
    code = model.predict("python code to reverse a list", NODES)
    geo = model.predict("the capital city of france", NODES)
    assert code.score[0] > 0.7 > code.score[1] and geo.score[1] > 0.7 > geo.score[0]
    assert code.cost[0] == pytest.approx(0.01)


def test_each_past_query_keeps_its_heaviest_terms_at_unit_length():
    """Pruned rows keep a row's largest weights and stay unit vectors, so similarities stay cosines."""
    pruned = AbilityModel(row_terms=2).fit(TEXTS, NODES, SCORES)._vectors()[1].toarray()
    full = AbilityModel(row_terms=10_000).fit(TEXTS, NODES, SCORES)._vectors()[1].toarray()
    assert ((pruned > 0).sum(axis=1) == 2).all() and ((full > 0).sum(axis=1) > 2).all()
    assert np.allclose(np.linalg.norm(pruned, axis=1), 1.0)
    for kept, row in zip(pruned, full, strict=True):
        assert set(np.flatnonzero(kept)) <= set(np.flatnonzero(row))
        assert row[kept > 0].min() >= row[kept == 0].max()


def test_a_query_sharing_no_term_with_history_predicts_each_nodes_mean_even_unshrunk():
    model = AbilityModel(k=2, shrinkage=0.0).fit(TEXTS, NODES, SCORES)
    assert model.predict("zzz qqq", NODES).score.tolist() == [0.5, 0.5]


def test_a_query_with_no_close_neighbour_is_judged_by_its_intents_record():
    """The coder is right on every coding query and wrong on geography; a coding query sharing no word
    with the history predicts the coder high and the geographer low only when its intent is given."""
    intents = ["code", "code", "geo", "geo"]
    model = AbilityModel(k=2, shrinkage=5.0, intent_shrinkage=1.0).fit(TEXTS, NODES, SCORES, intents=intents)
    blind = model.predict("zzz qqq", NODES).score
    told = model.predict("zzz qqq", NODES, intent="code").score
    assert blind.tolist() == [0.5, 0.5] and told[0] > 0.75 > 0.25 > told[1]
    assert model.predict("zzz qqq", NODES, intent="unseen").score.tolist() == [0.5, 0.5]
    model.add([Graded("plot a chart in python", "geo/m", 1.0, intent="code")])  # the geographer learns to code
    assert model.predict("zzz qqq", NODES, intent="code").score[1] > told[1]


def test_unknown_nodes_get_the_prior_and_empty_history_predicts_the_prior():
    model = AbilityModel(prior=0.6).fit(TEXTS, NODES, SCORES)
    est = model.predict("python code", ["coder/m", "newcomer/m"])
    assert est.score[1] == 0.6 and est.support[1] == 0 and np.isnan(est.cost[1])
    assert AbilityModel(prior=0.4).predict("anything", NODES).score.tolist() == [0.4, 0.4]


def test_a_node_graded_for_the_first_time_is_seen_by_the_next_prediction_over_the_same_nodes():
    """The router asks for the same node list on every query; a node's first grade must still count."""
    model = AbilityModel(k=2, shrinkage=0.5, prior=0.6).fit(TEXTS, NODES, SCORES)
    nodes = [*NODES, "newcomer/m"]
    assert model.predict("python code", nodes).score[2] == 0.6
    model.add([Graded("python code to sort numbers", "newcomer/m", 0.0)])
    assert model.predict("python code", nodes).score[2] < 0.6
    fresh = AbilityModel(k=2, shrinkage=0.5, prior=0.6).fit(TEXTS, ["newcomer/m", "coder/m"], SCORES)
    assert fresh.predict("python code", nodes).score.tolist() == pytest.approx(
        fresh.predict("python code", list(nodes)).score.tolist()
    )


def test_online_outcomes_move_predictions_and_add_nodes():
    model = AbilityModel(k=3, shrinkage=1.0).fit(TEXTS, NODES, SCORES)
    before = model.predict("python code to merge two lists", NODES).score[1]
    model.add(
        [
            Graded("python code to merge two lists", "geo/m", 1.0),
            Graded("python code to merge two sorted lists", "geo/m", 1.0),
        ]
    )
    assert model.predict("python code to merge two lists", NODES).score[1] > before
    model.add([Graded("translate hello to german", "translator/m", 1.0, 0.002)])
    assert model.predict("translate hello to german", ["translator/m"]).score[0] > 0.7
    model.refit()
    assert model.size == 7


async def test_memory_tails_the_shared_log(redis_client, keys):
    log = OutcomeLog(redis_client, keys)
    memory = AbilityMemory(log, AbilityModel(k=2, shrinkage=0.5), interval_s=0.0)
    await memory.refresh()
    assert memory.model.size == 0
    await log.append(
        [Outcome(text=t, node=n, score=float(SCORES[i, j])) for i, t in enumerate(TEXTS) for j, n in enumerate(NODES)]
    )
    await memory.refresh()
    assert memory.model.size == len(TEXTS) and await log.total() == 8
    assert memory.model.predict("python code to sort", NODES).score[0] > 0.6


async def test_a_reset_store_starts_the_memory_over_with_the_same_settings(redis_client, keys):
    log = OutcomeLog(redis_client, keys)
    memory = AbilityMemory(log, AbilityModel(k=2, shrinkage=0.5, row_terms=7), interval_s=0.0)
    await log.append([Outcome(text=t, node=NODES[0], score=1.0) for t in TEXTS])
    await memory.refresh()
    await redis_client.delete(keys.outcomes, keys.outcomes_total)
    await log.append([Outcome(text="translate hello", node=NODES[1], score=1.0)])
    await memory.refresh()
    model = memory.model
    assert model.size == 1 and (model.k, model.shrinkage, model.row_terms) == (2, 0.5, 7)


async def test_concurrent_refreshes_never_overlap_refits_and_predictions_stay_consistent(redis_client, keys):
    """Queries arriving while a refit runs in its thread route on the model as it is; a second refit
    beside the first once left the history matrix with more rows than its scores (an IndexError)."""
    import asyncio
    import threading
    import time

    log = OutcomeLog(redis_client, keys)
    model = AbilityModel(k=3, shrinkage=0.5)
    memory = AbilityMemory(log, model, interval_s=0.0)
    running, most, guard = [0], [0], threading.Lock()
    refit = model.refit

    def slow_refit():
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        refit()
        with guard:
            running[0] -= 1

    model.refit = slow_refit
    for round_ in range(6):
        await log.append([Outcome(text=f"{t} {round_}", node=NODES[k % 2], score=1.0) for k, t in enumerate(TEXTS)])
        await asyncio.gather(*(memory.refresh() for _ in range(8)))
        estimate = memory.model.predict("python code to sort", NODES)
        assert np.isfinite(estimate.score).all()
    await memory.refresh(force=True)
    assert most[0] == 1, "refits overlapped"
    assert memory.model.size == 6 * len(TEXTS)


def test_memory_is_bounded_to_the_newest_history_and_predictions_still_line_up():
    model = AbilityModel(k=3, shrinkage=0.5, max_history=100)
    for i in range(300):
        topic, node = ("python code", NODES[0]) if i % 2 else ("french translation", NODES[1])
        model.add([Graded(f"{topic} {i}", node, 1.0, 0.001)])
    assert 100 <= model.size <= 110 and model._scores.shape[0] == model.size
    assert model._vectors()[1].shape[0] == model.size, "the vectors were forgotten with their texts"
    model.refit()
    assert model._vectors()[1].shape[0] == model.size
    assert model.predict("python code 299", NODES).support[0] > 0


def test_a_query_graded_again_keeps_its_row_with_the_newest_grade_until_forgotten():
    model = AbilityModel(k=1, shrinkage=0.0, max_history=5).fit(TEXTS, NODES, SCORES)
    model.add([Graded(TEXTS[0], "geo/m", 0.5)])  # a node graded on it for the first time
    model.add([Graded(TEXTS[0], "coder/m", 0.25), Graded(TEXTS[0], "coder/m", 0.0)])  # the newest stands
    model.add([Graded("a new query about rivers", "geo/m", 0.75), Graded(TEXTS[1], "new/m", 1.0)])
    assert model.size == 5
    near = model.predict(TEXTS[0], [*NODES, "new/m"])
    assert near.score[:2].tolist() == [0.0, 0.5]
    assert model.predict(TEXTS[1], ["new/m"]).score.tolist() == [1.0]
    for i in range(5):  # past max_history: the oldest texts go, and so do their rows
        model.add([Graded(f"filler query number {i}", "geo/m", 1.0)])
    assert TEXTS[0] not in model._texts and model.size <= 5
    model.add([Graded(TEXTS[0], "coder/m", 1.0)])  # forgotten: back as a new row
    assert model._texts[-1] == TEXTS[0] and model.predict(TEXTS[0], ["coder/m"]).score.tolist() == [1.0]


def test_each_node_finds_its_own_nearest_graded_queries():
    """Served traffic grades only the nodes a query went to: a near query that graded other nodes must not
    take a node's neighbour slots and leave it judged by its mean."""
    nan = np.nan
    texts = ["python code to sort a list", "python code to sort a list please", "python code to reverse a list"]
    texts += ["capital of france", "capital of spain", "capital of italy"]
    scores = np.array([[nan, 0.0], [nan, 0.0], [1.0, nan], [0.0, nan], [0.0, nan], [0.0, nan]])
    model = AbilityModel(k=2, shrinkage=0.0, intent_shrinkage=0.0).fit(texts, NODES, scores)
    estimate = model.predict("python code to sort a list", NODES)
    assert estimate.score[0] == pytest.approx(1.0), "its one near graded query, not its mean of 0.25"
    assert estimate.score[1] == pytest.approx(0.0)
    assert estimate.graded.tolist() == [4.0, 2.0]
