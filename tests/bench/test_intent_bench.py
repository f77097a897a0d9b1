import json

import pytest

from swarm_route.bench import intent

INTENTS = {
    "weather": ["what's the weather in {}", "will it rain in {}", "forecast for {}", "is it sunny in {}"],
    "flights": ["book a flight to {}", "flights to {} tomorrow", "cheapest ticket to {}", "fly me to {}"],
    "time": ["what time is it in {}", "local time in {}", "current time {}", "clock in {}"],
}
CITIES = ["paris", "tokyo", "lima", "oslo", "cairo", "denver", "seoul", "rome"]


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
        "train": rows(CITIES[:5]),
        "val": rows(CITIES[5:6]),
        "test": rows(CITIES[6:]),
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
    assert result["intents"] == 3 and result["in_scope_accuracy"] >= 0.9
    assert {"p50", "p99"} <= result["latency_ms"].keys() and result["throughput_qps"] > 0
    if with_oos:
        assert result["oos_recall"] is not None and result["oos_precision"] is not None
    else:
        assert result["oos_recall"] is None and result["oos_precision"] is None


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        intent.run(str(tmp_path / "nope.json"))
