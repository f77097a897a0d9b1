"""How an agent joins: an A2A agent card or our own spec, checked against policy, registered, and given a
pheromone prior, so it is routable on the next query with no retraining and no restart; and how it leaves.

The classifier refits from the registry on its own (it watches the registry version), so joining is only
this: validate, store, seed.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from swarm_route.core.reachability import Reachability, Unreachable, networks
from swarm_route.core.registry import (
    URL_KINDS,
    AgentKind,
    AgentRegistry,
    AgentSpec,
    ModelOption,
    Skill,
    as_name,
    is_agent_name,
    policy_violation,
)
from swarm_route.core.route.graph import PathGraph
from swarm_route.core.route.pheromone import PheromoneStore


class CardSkill(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    name: str = Field("", max_length=200)
    description: str = Field("", max_length=2000)
    examples: list[str] = Field(default_factory=list, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=50)


class AgentCard(BaseModel):
    """The A2A agent card fields routing needs; other card fields (capabilities, modes, provider, …) are
    accepted and ignored. ``costPer1kTokens`` is our extension: cards carry no price."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    url: str = Field(
        min_length=1, max_length=2000, pattern=r"^https?://", description="the agent's A2A JSON-RPC endpoint"
    )
    version: str = Field("1", max_length=64)
    skills: list[CardSkill] = Field(default_factory=list, max_length=64)
    cost_per_1k_tokens: float = Field(0.0, ge=0, le=1000, alias="costPer1kTokens")

    @model_validator(mode="after")
    def _convertible(self) -> AgentCard:
        """Fail validation (a 422 naming the field), not registration, when a card cannot become a spec."""
        self.to_spec()
        return self

    def to_spec(self) -> AgentSpec:
        skills = [
            Skill(
                name=as_name(s.id),
                description=" ".join(p for p in (s.name, s.description, ", ".join(s.tags)) if p)[:2000],
                examples=[e for e in s.examples if e.strip()][:200],
            )
            for s in self.skills
        ]
        return AgentSpec(
            name=as_name(self.name),
            description=self.description,
            kind=AgentKind.a2a,
            endpoint=self.url,
            models=[ModelOption(name=as_name(self.version) or "1", cost_per_1k_tokens=self.cost_per_1k_tokens)],
            skills=list({s.name: s for s in skills}.values()),
        )


def _shape(body: Any) -> str:
    """Our spec has ``kind``/``endpoint``/``models``; an A2A card has none of them (it has ``url``)."""
    ours = isinstance(body, dict) and bool({"kind", "endpoint", "models"} & body.keys())
    return "spec" if ours or isinstance(body, AgentSpec) else "card"


Registration = Annotated[
    Annotated[AgentSpec, Tag("spec")] | Annotated[AgentCard, Tag("card")],
    Discriminator(_shape, custom_error_type="agent", custom_error_message="an agent spec (with kind) or A2A card"),
]


class AgentPolicy(BaseModel):
    """What a registration may point at. Safe by default: URL agents only at public addresses, replay agents
    only under folders an operator named (none by default)."""

    model_config = ConfigDict(extra="forbid")

    hosts: list[str] = Field(
        default_factory=list,
        description="hosts openai and a2a agents may live on ('*.example.com' covers subdomains); empty: any "
        "host, as long as it resolves to a public address or one in allow_networks",
    )
    allow_networks: list[str] = Field(
        default_factory=list,
        description="non-public networks agents may be called at anyway (CIDRs, e.g. 10.0.0.0/8 for in-cluster "
        "vLLM, 127.0.0.0/8 on a laptop); loopback, private, link-local and the like are refused otherwise",
    )
    replay_dirs: list[str] = Field(default_factory=list, description="folders replay agents' CSVs may be read from")
    max_agents: int = Field(1000, ge=1, le=100_000, description="registrations beyond this many agents are refused")

    @model_validator(mode="after")
    def _check_networks(self) -> AgentPolicy:
        networks(self.allow_networks)
        return self


class PolicyViolation(ValueError):
    pass


class RegistryFull(Exception):
    pass


async def onboard(
    registry: AgentRegistry,
    pheromones: PheromoneStore,
    body: AgentSpec | AgentCard,
    policy: AgentPolicy,
) -> AgentSpec:
    """Raises ``PolicyViolation`` (an endpoint is not allowed, or does not resolve to an address agents may
    be called at) or ``AgentExists``."""
    spec = body.to_spec() if isinstance(body, AgentCard) else body
    violation = policy_violation(spec, policy.hosts, policy.replay_dirs)
    if violation:
        raise PolicyViolation(violation)
    if len((await registry.snapshot())[1]) >= policy.max_agents:
        raise RegistryFull(f"the registry holds its limit of {policy.max_agents} agents (agent_policy.max_agents)")
    if spec.kind in URL_KINDS:
        reachability = Reachability(policy.allow_networks)
        for endpoint in spec.endpoints():
            try:
                await reachability.check(endpoint)
            except Unreachable as exc:
                raise PolicyViolation(str(exc)) from None
    await registry.register(spec)
    await seed_trails(pheromones, spec)
    return spec


async def seed_trails(pheromones: PheromoneStore, spec: AgentSpec) -> None:
    """A newcomer's edges start at each of its intents' best trail, on trial (``PheromoneStore.seed``)."""
    edges = [e for p in PathGraph.single_stage([spec]).paths() for e in p.edges]
    for intent in spec.intents():
        await pheromones.seed(intent, edges)


async def offboard(registry: AgentRegistry, pheromones: PheromoneStore, name: str) -> None:
    """Removed from the registry (``AgentNotFound`` when it is not there), and its trails forgotten
    (``PheromoneStore.forget``): registered again, it joins as a newcomer. The trails are forgotten also when
    the name is not registered, so a removal whose second step failed (the store went away between them) is
    finished by asking again."""
    try:
        await registry.remove(name)
    finally:
        if is_agent_name(name):
            await pheromones.forget(name)
