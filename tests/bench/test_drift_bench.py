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
    assert frozen["to_broken_by_quarter"] == intact["to_broken_by_quarter"], "frozen routing cannot notice"
    assert frozen["quality_after"] < 0.7
    assert online["to_broken_by_quarter"][-1] < 0.5 * frozen["to_broken_by_quarter"][-1], online
    assert online["quality_after"] > frozen["quality_after"] + 0.05
