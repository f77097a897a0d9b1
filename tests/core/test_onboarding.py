import pytest
from pydantic import TypeAdapter, ValidationError

from swarm_route.core.onboarding import AgentCard, AgentPolicy, PolicyViolation, Registration, offboard, onboard
from swarm_route.core.registry import AgentExists, AgentKind, AgentNotFound, AgentRegistry, AgentSpec, as_name
from swarm_route.core.route.pheromone import PheromoneStore
from tests.core.helpers import MATH, agent

CARD = {
    "name": "Recipe Agent",
    "description": "Finds recipes by ingredient and diet",
    "url": "http://127.0.0.1:9/a2a",
    "version": "1.0.0",
    "capabilities": {"streaming": False},
    "defaultInputModes": ["text/plain"],
    "skills": [
        {"id": "find-recipe", "name": "Find recipe", "description": "Recipe search", "examples": ["vegan lasagne?"]}
    ],
}


def test_display_names_become_valid_names():
    assert as_name("PDF&URL Tool") == "PDF_URL_Tool" and as_name("_x") == "x" and as_name("&&") == "a"


def test_a_registration_body_is_either_our_spec_or_an_a2a_card():
    adapter = TypeAdapter(Registration)
    card = adapter.validate_python(CARD)
    assert isinstance(card, AgentCard)
    spec = card.to_spec()
    assert (spec.name, spec.kind, spec.endpoint) == ("Recipe_Agent", AgentKind.a2a, CARD["url"])
    assert spec.skills[0].name == "find-recipe" and spec.skills[0].examples == ["vegan lasagne?"]
    ours = adapter.validate_python(agent("math", "math", MATH).model_dump(mode="json"))
    assert isinstance(ours, AgentSpec)
    with pytest.raises(ValidationError, match="url"):
        adapter.validate_python({"name": "x", "description": "y"})
    with pytest.raises(ValidationError, match="http"):
        adapter.validate_python({**CARD, "url": "ftp://host/a2a"})


LOOPBACK = AgentPolicy(allow_networks=["127.0.0.0/8"])  # the tests' agents live on this machine


async def test_a_newcomer_starts_at_the_best_trail_and_incumbents_keep_theirs(redis_client, keys):
    registry = AgentRegistry(redis_client, keys)
    store = PheromoneStore(redis_client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0, trial_events=4)
    await onboard(registry, store, agent("old", "math", MATH), LOOPBACK)
    old = await store.trails("math")
    assert old == {}, "a first agent on a fresh intent has no colony to start from: τ_init"
    await store.deposit("math", {"source>old/m": 4.0, "old/m>sink": 0.5})
    before = await store.trails("math")
    newcomer = agent("new", "math", MATH)
    await onboard(registry, store, newcomer, LOOPBACK)
    after = await store.trails("math")
    new_edges = {e: t for e, t in after.items() if "new/" in e}
    assert new_edges and all(t == pytest.approx(max(before.values())) for t in new_edges.values())
    assert await store.on_trial("math") == dict.fromkeys(new_edges, 4)
    assert {e: after[e] for e in before} == before
    assert "new" in (await registry.snapshot())[1]
    with pytest.raises(AgentExists):
        await onboard(registry, store, newcomer, LOOPBACK)
    with pytest.raises(PolicyViolation, match="not allowed"):
        await onboard(registry, store, AgentCard.model_validate(CARD), AgentPolicy(hosts=["*.internal"]))


async def test_an_agent_that_leaves_and_joins_again_is_a_newcomer(redis_client, keys):
    """Its trail goes with it: back under the same name it is seeded and on trial, not on what it earned."""
    registry = AgentRegistry(redis_client, keys)
    store = PheromoneStore(redis_client, keys, rho=0.5, tau_init=1.0, tau_min=0.1, tau_max=5.0, trial_events=2)
    await onboard(registry, store, agent("calc", "math", MATH), LOOPBACK)
    await onboard(registry, store, agent("abacus", "math", MATH), LOOPBACK)
    await store.deposit("math", {"source>calc/m": 0.0, "source>abacus/m": 2.0})  # calc 0.5, abacus 2.5
    await offboard(registry, store, "abacus")
    assert "abacus" not in (await registry.snapshot())[1]
    assert await store.trails("math") == {"source>calc/m": 0.5}
    await onboard(registry, store, agent("abacus", "math", MATH), LOOPBACK)
    assert (await store.trails("math"))["source>abacus/m"] == 0.5  # the best trail now, not its old 2.5
    assert set(await store.on_trial("math")) == {"source>abacus/m", "abacus/m>sink"}
    with pytest.raises(AgentNotFound):
        await offboard(registry, store, "nobody")
    await store.deposit("math", {"source>gone/m": 1.0})  # a removal whose forgetting failed, asked again
    with pytest.raises(AgentNotFound):
        await offboard(registry, store, "gone")
    assert "source>gone/m" not in await store.trails("math")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/a2a",  # loopback: Redis, the service itself
        "http://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
        "http://10.1.2.3/v1",  # private: the cluster network
        "http://[::1]:8000/v1",
        "http://[fd00::1]/v1",  # unique-local
        "http://[::ffff:127.0.0.1]/v1",  # loopback in IPv6 clothes
        "http://0.0.0.0:8000/v1",
        "http://localhost:8000/v1",  # a name is judged by what it resolves to
        "http://name.that-does-not-resolve.invalid/v1",
    ],
)
async def test_a_url_agent_at_a_non_public_address_is_refused_by_default(redis_client, keys, url):
    registry = AgentRegistry(redis_client, keys)
    store = PheromoneStore(redis_client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0)
    with pytest.raises(PolicyViolation, match=r"non-public|does not resolve"):
        await onboard(registry, store, AgentCard.model_validate({**CARD, "url": url}), AgentPolicy())
    assert (await registry.snapshot())[1] == {}


async def test_an_operator_may_allow_a_network(redis_client, keys):
    registry = AgentRegistry(redis_client, keys)
    store = PheromoneStore(redis_client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0)
    policy = AgentPolicy(allow_networks=["127.0.0.0/8"])
    spec = await onboard(registry, store, AgentCard.model_validate(CARD), policy)
    assert spec.name in (await registry.snapshot())[1]
    with pytest.raises(ValidationError, match="not a network"):
        AgentPolicy(allow_networks=["everything"])


async def test_the_registry_and_each_agents_examples_are_bounded(redis_client, keys):
    from swarm_route.core.onboarding import RegistryFull

    registry = AgentRegistry(redis_client, keys)
    store = PheromoneStore(redis_client, keys, rho=0.1, tau_init=1.0, tau_min=0.1, tau_max=5.0)
    small = AgentPolicy(allow_networks=["127.0.0.0/8"], max_agents=2)
    await onboard(registry, store, agent("one", "math", MATH), small)
    await onboard(registry, store, agent("two", "math", MATH), small)
    with pytest.raises(RegistryFull, match="limit of 2"):
        await onboard(registry, store, agent("three", "math", MATH), small)
    many = [{"name": f"s{i}", "examples": [f"example {i}.{j}" for j in range(200)]} for i in range(6)]
    with pytest.raises(ValidationError, match="at most 1000 examples"):
        AgentSpec.model_validate({**agent("x", "m", MATH).model_dump(), "skills": many})
