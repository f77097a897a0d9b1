import json

import pytest

from swarm_route.bench import agents
from swarm_route.core.classify.compound import JOINERS

AGENTS = [
    {"name": "Weather & Co", "description": "Weather forecasts, rain, temperature and wind for any city"},
    {"name": "Flights", "description": "Books flights and finds cheap plane tickets between airports"},
    {"name": "Clock", "description": "Tells the current local time and time zones of cities"},
]
TEMPLATES = {
    "Weather & Co": ["will it rain in {}", "weather forecast for {}", "how windy is {} today", "temperature in {}"],
    "Flights": ["book a flight to {}", "cheap plane tickets to {}", "flights from {} tomorrow", "fly me to {}"],
    "Clock": ["what time is it in {}", "local time in {}", "time zone of {}", "current hour in {}"],
}
CITIES = ["paris", "tokyo", "lima", "oslo", "cairo", "denver", "seoul", "rome", "quito", "dublin"]
OOS = ["sing me a song", "who wrote hamlet", "recipe for pancakes", "tell me a joke", "how tall is everest"]


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def traffic(cities, oos):
    rows = [{"query": t.format(c), "agents": [name]} for name, ts in TEMPLATES.items() for t in ts for c in cities]
    return rows + [{"query": q, "agents": []} for q in oos]


@pytest.mark.parametrize("learn", [True, False])
def test_agents_bench_reports_every_figure(tmp_path, learn):
    agents_file = tmp_path / "agents.json"
    agents_file.write_text(json.dumps(AGENTS))
    test = write_lines(tmp_path / "test.jsonl", traffic(CITIES[8:], OOS[3:]))
    train = write_lines(tmp_path / "train.jsonl", traffic(CITIES[:8], OOS[:3])) if learn else None
    out = tmp_path / "r.json"
    result = agents.run(
        str(agents_file), test, train_path=train, json_path=str(out), embeddings=False, compound=40
    )
    assert json.loads(out.read_text()) == result
    assert result["queries"] == 26 and result["in_scope"] == 24 and result["out_of_scope"] == 2
    for key in ("hit_rate", "exact_set_rate", "precision", "recall", "decline_rate", "false_decline_rate"):
        assert 0 <= result[key] <= 1, key
    assert 1 <= result["mean_agents_selected"] <= 3 or result["false_decline_rate"] > 0
    assert {"p50", "p99"} <= result["latency_ms"].keys()
    compound = result["compound"]
    assert compound["queries"] == 40 and compound["in_scope"] == 40
    assert result["cut_rule"]["apart"] > -1, "a rule that cuts was chosen from the joined examples"
    if learn:
        assert result["hit_rate"] >= 0.9, "past traffic teaches the agents' wording"
        assert compound["recall"] >= 0.8 and compound["mean_agents_selected"] > 1.5, "two needs, two agents"


def test_a_limit_routes_a_sample_of_the_test_file(tmp_path):
    agents_file = tmp_path / "agents.json"
    agents_file.write_text(json.dumps(AGENTS))
    test = write_lines(tmp_path / "test.jsonl", traffic(CITIES[8:], OOS[3:]))
    result = agents.run(str(agents_file), test, embeddings=False, compound=10, limit=7)
    assert result["queries"] == 7 and result["compound"]["queries"] == 10


def test_compound_queries_join_two_agents_requests_as_people_write_them():
    rows = traffic(CITIES[:2], OOS[:2])
    joined = agents.compound_queries(rows, 50)
    assert len(joined) == 50 and all(len(r["agents"]) == 2 for r in joined)
    assert all(any(j.strip(" ,.;") in r["query"] for j in JOINERS) for r in joined)
    assert agents.compound_queries([r for r in rows if r["agents"] == ["Clock"]], 5) == []  # one agent: none


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        agents.run(str(tmp_path / "nope.json"), str(tmp_path / "t.jsonl"))
