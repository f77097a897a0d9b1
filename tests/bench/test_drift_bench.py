"""The drift benchmark on a small matrix it makes itself: a cheap expert breaks mid-stream."""

import json

from swarm_route.bench import drift
from swarm_route.config import Settings


async def test_online_learning_moves_off_the_expert_that_broke_and_frozen_routing_does_not(
    matrix, tmp_path, redis_server
):
    out = tmp_path / "d.json"
    result = await drift.run(
        [str(matrix)], None, at=0.4, lam=0.0, json_path=str(out), settings=Settings(redis_url=redis_server.url)
    )
    assert json.loads(out.read_text())["broken"] == result["broken"]
    broken = result["broken"]["model"]
    assert broken in {"math-expert", "history-expert"}, "each expert is what its topic's prompts rely on"
    runs = result["runs"]
    intact, frozen, online = runs["frozen, nothing broken"], runs["frozen"], runs["online"]
    assert intact["quality_after"] > 0.9 and frozen["quality_before"] == intact["quality_before"]
    assert frozen["to_model_by_quarter"] == intact["to_model_by_quarter"], "frozen routing cannot notice"
    assert frozen["quality_after"] < 0.7
    assert online["to_model_by_quarter"][-1] < 0.5 * frozen["to_model_by_quarter"][-1], online
    assert online["quality_after"] > frozen["quality_after"] + 0.05


async def test_online_learning_finds_a_model_that_joins_mid_stream_and_frozen_routing_cannot(
    matrix, tmp_path, redis_server
):
    """The expert the stream relies on registers only at 40% of it, never graded before: frozen routing has
    its price and a prior for it, learning online grades it where it is tried and comes to rely on it."""
    result = await drift.run(
        [str(matrix)], None, at=0.4, event="join", lam=0.5, settings=Settings(redis_url=redis_server.url)
    )
    joined = result["joined"]["model"]
    assert result["event"] == "join" and joined in {"math-expert", "history-expert", "generalist"}
    runs = result["runs"]
    along, frozen, online = runs["frozen, there all along"], runs["frozen"], runs["online"]
    assert along["to_model_by_quarter"][0] > 0.3, "what the rest of the stream relies on"
    assert frozen["quality_before"] < along["quality_before"], "without it, the pool does worse"
    assert online["to_model_by_quarter"][-1] > frozen["to_model_by_quarter"][-1], (online, frozen)
    assert online["quality_after"] > frozen["quality_after"], (online, frozen)
