import json

import pytest
from pydantic import ValidationError

from swarm_route.core.registry import AgentExists, AgentNotFound, AgentRegistry, AgentSpec, policy_violation
from tests.core.helpers import MATH, WEATHER, agent


async def test_register_get_remove_and_version(redis_client, keys):
    registry = AgentRegistry(redis_client, keys)
    assert await registry.all() == []
    await registry.register(agent("weather", "weather", WEATHER))
    v1 = await registry.version()
    await registry.register(agent("math", "math", MATH))
    assert await registry.version() == v1 + 1
    assert [a.name for a in await registry.all()] == ["math", "weather"]
    assert (await registry.get("math")).intents() == ["math"]
    await registry.remove("math")
    assert [a.name for a in await registry.all()] == ["weather"]
    with pytest.raises(AgentNotFound):
        await registry.get("math")
    with pytest.raises(AgentNotFound):
        await registry.remove("math")


async def test_removing_an_agent_drops_its_nodes_latencies_and_no_others(redis_client, keys):
    registry = AgentRegistry(redis_client, keys)
    await registry.register(agent("math", "math", MATH))
    await redis_client.hset(keys.latency, mapping={"math/m": 1, "math/org/big": 2, "mathematics/m": 3, "weather/m": 4})
    await registry.remove("math")
    assert await redis_client.hgetall(keys.latency) == {"mathematics/m": "3", "weather/m": "4"}


async def test_duplicate_name_is_refused_unless_replacing(redis_client, keys):
    registry = AgentRegistry(redis_client, keys)
    await registry.register(agent("weather", "weather", WEATHER))
    with pytest.raises(AgentExists):
        await registry.register(agent("weather", "other", MATH))
    await registry.register(agent("weather", "other", MATH), replace=True)
    assert (await registry.get("weather")).intents() == ["other"]


async def test_snapshot_sees_a_change_made_by_another_registry(redis_client, keys):
    reader, writer = AgentRegistry(redis_client, keys), AgentRegistry(redis_client, keys)
    _, before = await reader.snapshot()
    await writer.register(agent("weather", "weather", WEATHER))
    _, after = await reader.snapshot()
    assert before == {} and list(after) == ["weather"]


async def test_a_view_with_a_refresh_interval_reads_its_own_writes_and_agents_a_caller_needs(redis_client, keys):
    """Another replica's change shows within the interval (here: not yet); this replica's own change, and
    an agent a route names, are read at once."""
    reader, writer = AgentRegistry(redis_client, keys, refresh_s=60), AgentRegistry(redis_client, keys)
    assert (await reader.snapshot())[1] == {}
    await writer.register(agent("weather", "weather", WEATHER))
    assert (await reader.snapshot())[1] == {}, "within the interval the view is as last read"
    assert list((await reader.snapshot(needing=["weather"]))[1]) == ["weather"]
    await reader.register(agent("math", "math", MATH))
    assert list((await reader.snapshot())[1]) == ["math", "weather"]
    await reader.remove("math")
    assert list((await reader.snapshot())[1]) == ["weather"]


async def test_registering_an_agent_exactly_as_stored_changes_nothing(redis_client, keys):
    """Every replica registers the configured agents at start: an unchanged one must not bump the version
    (each bump refits every replica's classifier)."""
    registry = AgentRegistry(redis_client, keys)
    spec = agent("weather", "weather", WEATHER)
    assert await registry.register(spec, replace=True)
    version = await registry.version()
    assert not await registry.register(spec, replace=True) and await registry.version() == version
    await registry.register(agent("weather", "forecast", WEATHER), replace=True)
    assert await registry.version() == version + 1


def test_spec_without_skills_gets_one_named_after_the_agent():
    spec = AgentSpec(name="x", description="does x", kind="builtin", endpoint="calculator", models=[{"name": "m"}])
    assert spec.intents() == ["x"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"name": "bad name!"}, "name"),
        ({"endpoint": "ftp://host/v1"}, "endpoint"),
        ({"models": []}, "models"),
        ({"models": [{"name": "a"}, {"name": "a"}]}, "unique"),
        ({"description": ""}, "description"),
    ],
)
def test_invalid_specs_are_refused(change, field):
    base = {"name": "ok", "description": "d", "kind": "openai", "endpoint": "http://h/v1", "models": [{"name": "m"}]}
    with pytest.raises(ValidationError, match=field):
        AgentSpec(**(base | change))


def test_policy_allow_lists_hosts_and_replay_folders(tmp_path):
    def spec(kind, endpoint):
        return AgentSpec(name="a", description="d", kind=kind, endpoint=endpoint, models=[{"name": "m"}])

    hosts = ["llm.local", "*.corp.test"]
    assert policy_violation(spec("openai", "http://llm.local:8000/v1"), hosts, []) is None
    assert policy_violation(spec("openai", "https://a.b.corp.test/v1"), hosts, []) is None
    assert "not allowed" in policy_violation(spec("openai", "http://evil.test/v1"), hosts, [])
    assert "not allowed" in policy_violation(spec("openai", "http://corp.test.evil/v1"), hosts, [])
    assert policy_violation(spec("openai", "http://anything/v1"), [], []) is None
    inside, outside = tmp_path / "ok" / "m.csv", tmp_path / "m.csv"
    inside.parent.mkdir()
    inside.write_text("sample_id,prompt\n")
    outside.write_text("sample_id,prompt\n")
    ok = [str(tmp_path / "ok")]
    assert policy_violation(spec("replay", str(inside)), [], ok) is None
    assert "must be regular" in policy_violation(spec("replay", f"{inside},{outside}"), [], ok)
    assert "must be regular" in policy_violation(spec("replay", str(tmp_path / "ok/../m.csv")), [], ok)
    assert "must be regular" in policy_violation(spec("replay", str(tmp_path / "ok" / "absent.csv")), [], ok)
    assert "replay agents are off" in policy_violation(spec("replay", str(inside)), [], [])


async def test_a_stored_agent_that_no_longer_validates_is_skipped_not_fatal(redis_client, keys):
    registry = AgentRegistry(redis_client, keys)
    await registry.register(agent("math", "math", MATH))
    stale = agent("old", "math", MATH).model_dump(mode="json") | {"api_key_env": "HOME"}
    await redis_client.hset(keys.agents, "old", json.dumps(stale))
    await redis_client.incr(keys.agents_version)
    assert list((await registry.snapshot())[1]) == ["math"]
