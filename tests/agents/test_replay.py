import csv

import pytest

from swarm_route.agents.replay import ReplayBackend, RoutingMatrix, recorded_response
from swarm_route.core.messages import AgentError
from swarm_route.core.registry import AgentSpec


@pytest.fixture
def matrix_csv(tmp_path):
    path = tmp_path / "tiny_train.csv"
    cols = [
        "",
        "sample_id",
        "prompt",
        "eval_name",
        "big",
        "small",
        "big|model_response",
        "small|model_response",
        "big|total_cost",
        "small|total_cost",
        "oracle_model_to_route_to",
    ]
    rows = [
        [0, "t.1", "What is 2+2?\nAnswer:", "arith", 1.0, 0.0, "4", "5", 0.01, 0.001, "big"],
        [1, "t.2", "Capital of France?", "geo", 1.0, 1.0, "Paris", "Paris", 0.02, 0.002, "small"],
        [2, "t.3", "Unrecorded small", "geo", 0.5, "", "maybe", "", 0.02, 0.0, "big"],
    ]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        w.writerows(rows)
    return path


def test_matrix_finds_models_from_their_cost_columns(matrix_csv):
    m = RoutingMatrix.load(matrix_csv)
    assert m.models == ["big", "small"] and len(m.rows) == 3
    assert m.rows[0].records["small"].score == 0.0 and m.rows[2].records["small"].score is None
    assert m.rows[1].task == "geo"


def test_a_response_recorded_as_a_list_literal_reads_as_its_text(tmp_path):
    """RouterBench's cells: "['C\\n']" is the answer «C» and a newline, comparable with another model's «C»."""
    assert recorded_response("['C\\n']") == "C\n"
    assert recorded_response("['first', 'second']") == "first\nsecond"
    assert recorded_response('["it\'s [x]"]') == "it's [x]"
    for text in ("[A]", "[1, 2]", "['unclosed", "[__import__('os')]", "plain", "", None):
        assert recorded_response(text) == (text or ""), f"{text!r} is not a list of strings: kept as it is"
    path = tmp_path / "m.csv"
    path.write_text("prompt,eval_name,m,m|model_response,m|total_cost\nq,t,1,\"['B\\n']\",0.1\n")
    assert RoutingMatrix.load(path).rows[0].records["m"].response == "B\n"


def test_a_file_that_is_not_a_matrix_is_refused(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="routing matrix"):
        RoutingMatrix.load(bad)


async def test_replay_returns_the_recorded_answer_score_and_cost(matrix_csv):
    spec = AgentSpec(
        name="r",
        description="replay",
        kind="replay",
        endpoint=str(matrix_csv),
        models=[{"name": "big"}, {"name": "small"}],
    )
    backend = ReplayBackend()
    a = await backend.answer(spec, "small", "What is 2+2?   \nAnswer:")
    assert (a.text, a.score, a.cost_usd) == ("5", 0.0, 0.001)
    with pytest.raises(AgentError, match="not in the recording"):
        await backend.answer(spec, "big", "never asked")
    with pytest.raises(AgentError, match="no recorded response"):
        await backend.answer(spec, "small", "Unrecorded small")


async def test_a_recording_replaced_by_a_fifo_or_moved_out_of_bounds_is_refused_at_call_time(matrix_csv, tmp_path):
    import os

    spec = AgentSpec(name="r", description="replay", kind="replay", endpoint=str(matrix_csv), models=[{"name": "big"}])
    inside = ReplayBackend([str(tmp_path)])
    assert (await inside.answer(spec, "big", "Capital of France?")).text == "Paris"
    with pytest.raises(AgentError, match="regular CSV files"):
        await ReplayBackend([str(tmp_path / "elsewhere")]).answer(spec, "big", "Capital of France?")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    piped = spec.model_copy(update={"endpoint": str(fifo)})
    with pytest.raises(AgentError, match="regular CSV files"):  # not a hang on open()
        await inside.answer(piped, "big", "Capital of France?")
    with pytest.raises(AgentError, match="regular CSV files"):
        await ReplayBackend().answer(spec.model_copy(update={"endpoint": "/dev/zero"}), "big", "x")
