"""The agent registry: who can answer, on which models, at what price; shared by every replica through Redis.

Every change bumps a version counter in the same MULTI, so a replica re-reads the registry only when it
changed and a newly registered agent is routable by the very next query.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from enum import StrEnum
from urllib.parse import urlparse

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from swarm_route.core.failopen import UNREAD, Breaker, Watched
from swarm_route.core.messages import node_agent
from swarm_route.core.reachability import Unreachable, replay_files
from swarm_route.keys import Keys

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_EXAMPLES_PER_AGENT = 1000  # what one registration may make every classifier replica learn
AGENT_KEY_PREFIX = "SWARM_AGENT_KEY_"  # the only environment variables an agent spec may name as its key
AGENT_KEY_ENV = rf"^{AGENT_KEY_PREFIX}[A-Z0-9_]{{1,100}}$"
log = logging.getLogger(__name__)
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def as_name(text: str) -> str:
    """A name ``NAME_PATTERN`` accepts, from a display name or model id: 'PDF&URL Tool' → 'PDF_URL_Tool',
    'meta/llama-2-70b-chat' → 'meta_llama-2-70b-chat'."""
    out = _NOT_NAME.sub("_", text.strip()).strip("_.-")[:64]
    return out if out and out[0].isalnum() else f"a{out}"[:64]


class AgentKind(StrEnum):
    builtin = "builtin"  # a tool agent served by the BuiltinAgents deployment
    openai = "openai"  # an OpenAI-compatible chat-completions endpoint
    replay = "replay"  # recorded answers of one model from a routing-matrix CSV
    a2a = "a2a"  # an A2A agent (JSON-RPC message/send), registered from its agent card


URL_KINDS = frozenset({AgentKind.openai, AgentKind.a2a})  # agents called at a registrant's URL: reachability applies


class Skill(BaseModel):
    """A task type the agent handles; its name is an intent of the classifier, its examples train it."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field("", max_length=2000)
    examples: list[str] = Field(default_factory=list, max_length=200)

    @field_validator("examples")
    @classmethod
    def _examples_not_empty(cls, v: list[str]) -> list[str]:
        if any(not e.strip() or len(e) > 2000 for e in v):
            raise ValueError("every example must be a non-empty string of at most 2000 characters")
        return v


class ModelOption(BaseModel):
    """One model (replica) an agent may run on; the router picks among them per query."""

    name: str = Field(min_length=1, max_length=200)
    cost_per_1k_tokens: float = Field(0.0, ge=0, le=1000, description="USD per 1k tokens, prompt and answer")


class AgentSpec(BaseModel):
    """What ``POST /v1/agents`` accepts and the registry stores."""

    name: str = Field(pattern=NAME_PATTERN, description="unique; letters, digits, '_', '.', '-'")
    description: str = Field(min_length=1, max_length=4000)
    kind: AgentKind
    endpoint: str = Field(
        min_length=1,
        max_length=2000,
        description="builtin: the tool name; openai: the base URL (http/https); a2a: the JSON-RPC URL; "
        "replay: the CSV path",
    )
    replicas: list[str] = Field(
        default_factory=list,
        max_length=32,
        description="more base URLs serving the same models (openai and a2a kinds); dispatch balances across "
        "endpoint and replicas by in-flight calls and cools down the failing ones",
    )
    max_concurrency: int | None = Field(
        None, ge=1, le=100_000, description="calls in flight to this agent per dispatch replica; more wait"
    )
    models: list[ModelOption] = Field(min_length=1, max_length=32)
    skills: list[Skill] = Field(default_factory=list, max_length=64)
    paused: bool = Field(
        False, description="left out of routing until resumed (an operator's switch); direct calls still reach it"
    )
    api_key_env: str | None = Field(
        None,
        pattern=AGENT_KEY_ENV,
        description=f"the environment variable holding the agent's key (openai kind); only variables named "
        f"{AGENT_KEY_PREFIX}* may be referenced, so a registrant can never send the service's own keys anywhere",
    )

    @model_validator(mode="after")
    def _check(self) -> AgentSpec:
        if self.kind in URL_KINDS:
            for endpoint in self.endpoints():
                url = urlparse(endpoint)
                if url.scheme not in ("http", "https") or not url.netloc:
                    raise ValueError(
                        f"endpoint and replicas of an {self.kind} agent must be http(s) URLs, e.g. http://host:8000/v1"
                    )
        elif self.replicas:
            raise ValueError(f"replicas are for openai and a2a agents; a {self.kind} agent runs where it is served")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError("model names of one agent must be unique")
        if sum(len(s.examples) for s in self.skills) > MAX_EXAMPLES_PER_AGENT:
            raise ValueError(f"an agent may bring at most {MAX_EXAMPLES_PER_AGENT} examples over all its skills")
        if not self.skills:
            self.skills = [Skill(name=self.name, description=self.description)]
        return self

    def endpoints(self) -> list[str]:
        return list(dict.fromkeys([self.endpoint, *self.replicas]))

    def intents(self) -> list[str]:
        return [s.name for s in self.skills]


class AgentExists(Exception):
    pass


class AgentNotFound(Exception):
    pass


def is_agent_name(name: str) -> bool:
    """Whether ``name`` could be an agent's (``NAME_PATTERN``): any other names nothing in the store."""
    return re.match(NAME_PATTERN, name) is not None


def _safe_field(name: str) -> str:
    if not is_agent_name(name):
        raise AgentNotFound(name)
    return name


class AgentRegistry:
    """Redis-backed registry; each replica's view is a version-checked snapshot (``failopen.Watched``):
    the version is read (one small GET) at most every ``refresh_s`` (0: on every ``snapshot``), in the
    background, the agents only when it moved. This replica's own writes are read back before its next
    snapshot; another replica's show within ``refresh_s``, and at once where a caller needs an agent the
    snapshot lacks (``snapshot(needing=...)``: a route decided on a newer registry than this view)."""

    def __init__(
        self, client: aioredis.Redis, keys: Keys, breaker: Breaker | None = None, refresh_s: float = 0.0
    ) -> None:
        self._r = client
        self._k = keys
        self._view: Watched[tuple[int, dict[str, AgentSpec]]] = Watched(
            "registry", self._reload, UNREAD, breaker or Breaker(), interval_s=refresh_s
        )

    async def register(self, spec: AgentSpec, *, replace: bool = False) -> bool:
        """Add an agent; False if it exists and ``replace`` is off, or is stored exactly so already (every
        replica registering the configured agents at start must not bump the version: each bump refits
        every replica's classifier). HSETNX + version bump in one MULTI."""
        payload = spec.model_dump_json()
        if replace and await self._r.hget(self._k.agents, spec.name) in (payload, payload.encode()):
            return False
        async with self._r.pipeline(transaction=True) as pipe:
            if replace:
                pipe.hset(self._k.agents, spec.name, payload)
            else:
                pipe.hsetnx(self._k.agents, spec.name, payload)
            pipe.incr(self._k.agents_version)
            added, _ = await pipe.execute()
        self._view.invalidate()
        if not replace and not added:
            raise AgentExists(spec.name)
        return bool(added)

    async def remove(self, name: str) -> None:
        """The agent, and its nodes' latencies (kept per node by the updater): with agents coming and going
        under new names, the latency hash would otherwise grow without bound."""
        field = _safe_field(name)
        nodes = [n for n in await self._r.hkeys(self._k.latency) if node_agent(n) == name]
        async with self._r.pipeline(transaction=True) as pipe:
            pipe.hdel(self._k.agents, field)
            pipe.incr(self._k.agents_version)
            if nodes:
                pipe.hdel(self._k.latency, *nodes)
            removed, *_ = await pipe.execute()
        self._view.invalidate()
        if not removed:
            raise AgentNotFound(name)

    async def get(self, name: str) -> AgentSpec:
        raw = await self._r.hget(self._k.agents, _safe_field(name))
        if raw is None:
            raise AgentNotFound(name)
        return AgentSpec.model_validate_json(raw)

    async def version(self) -> int:
        return int(await self._r.get(self._k.agents_version) or 0)

    async def snapshot(self, needing: Iterable[str] = ()) -> tuple[int, dict[str, AgentSpec]]:
        """All agents and the version they belong to; read again first when an agent in ``needing`` is not
        in this replica's view. With the store down or hanging, the last snapshot this replica read (fail
        open, and for a moment without asking the store again); none read yet: the error."""
        version, agents = await self._view.get()
        if any(name not in agents for name in needing):
            version, agents = await self._view.get(force=True)
        return version, agents

    async def _reload(self, previous: tuple[int, dict[str, AgentSpec]]) -> tuple[int, dict[str, AgentSpec]]:
        version = await self.version()
        if previous is not UNREAD and version == previous[0]:
            return previous
        agents = {}
        for name, raw in sorted((await self._r.hgetall(self._k.agents)).items()):
            try:
                agents[name] = AgentSpec.model_validate_json(raw)
            except ValidationError as exc:  # stored by an older version under looser rules: not routable
                log.warning("agent %r in the store is no longer valid and is skipped: %s", name, exc)
        return version, agents

    async def all(self) -> list[AgentSpec]:
        _, agents = await self.snapshot()
        return list(agents.values())


def policy_violation(spec: AgentSpec, hosts: list[str], replay_dirs: list[str]) -> str | None:
    """Why ``spec`` may not be registered under the allow-lists, or None when it may."""
    if spec.kind in URL_KINDS and hosts:
        for endpoint in spec.endpoints():
            host = (urlparse(endpoint).hostname or "").lower()
            allowed = any(host == h.lower() or (h.startswith("*.") and host.endswith(h[1:].lower())) for h in hosts)
            if not allowed:
                return f"endpoint host {host!r} is not allowed; allowed: {', '.join(hosts)}"
    if spec.kind is AgentKind.replay:
        if not replay_dirs:
            return "replay agents are off: an operator names the folders they may read in agent_policy.replay_dirs"
        try:
            replay_files(spec.endpoint, replay_dirs)
        except Unreachable as exc:
            return str(exc)
    return None
