import json

import pytest

from swarm_route.bench import intent

INTENTS = {
    "weather": ["what's the weather in {}", "will it rain in {}", "forecast for {}", "is it sunny in {}"],
    "flights": ["book a flight to {}", "flights to {} tomorrow", "cheapest ticket to {}", "fly me to {}"],
    "time": ["what time is it in {}", "local time in {}", "current time {}", "clock in {}"],
    "hotels": ["find a hotel in {}", "book a room in {}", "cheap hotels near {}", "where to stay in {}"],
    "restaurants": ["where to eat in {}", "best restaurants in {}", "a table for two in {}", "dinner in {}"],
}
CITIES = ["paris", "tokyo", "lima", "oslo", "cairo", "denver", "seoul", "rome", "quito", "perth"]


def clinc_file(path, with_oos: bool):
    def rows(cities):
        return [[t.format(c), name] for name, ts in INTENTS.items() for t in ts for c in cities]

    oos = [
        ["sing me a song", "oos"],
        ["who wrote hamlet", "oos"],
        ["recipe for pancakes", "oos"],
        ["tell me a joke", "oos"],
        ["how tall is everest", "oos"],
        ["translate cat to german", "oos"],
    ]
    data = {
        "train": rows(CITIES[:6]),
        "val": rows(CITIES[6:8]),
        "test": rows(CITIES[8:]),
        "oos_train": oos[:2] if with_oos else [],
        "oos_val": oos[2:4] if with_oos else [],
        "oos_test": oos[4:] if with_oos else [],
    }
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("with_oos", [True, False])
def test_intent_bench_reports_every_figure(tmp_path, with_oos):
    out = tmp_path / "r.json"
    result = intent.run(str(clinc_file(tmp_path / "d.json", with_oos)), json_path=str(out), embeddings=False)
    assert json.loads(out.read_text()) == result
    assert result["intents"] == len(INTENTS) and result["in_scope_accuracy"] >= 0.9
    assert {"p50", "p99"} <= result["latency_ms"].keys() and result["throughput_qps"] > 0
    if with_oos:
        assert result["oos_recall"] is not None and result["oos_precision"] is not None
    else:
        assert result["oos_recall"] is None and result["oos_precision"] is None


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        intent.run(str(tmp_path / "nope.json"))


def test_a_new_agents_intent_is_timed_and_measured_after_it_is_learnt(tmp_path):
    result = intent.run(str(clinc_file(tmp_path / "d.json", True)))  # new words: the embeddings know them
    assert result["new_intent"] in INTENTS and result["refit_seconds"] > 0
    after = result["after_refit"]
    assert after["new_intent_accuracy"] >= 0.75 and after["in_scope_accuracy"] >= 0.85
    assert result["train_seconds"] > 0 and result["restart_seconds"] > 0
