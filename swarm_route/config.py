"""One settings model for every way the service starts.

The same values come from the environment (``SWARM_*``, nested with ``__``), from an optional YAML file
(``SWARM_CONFIG``) and from the ``args`` of a Serve config, so a local run, ``serve run`` and the KubeRay
manifest cannot drift apart.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from swarm_route.core.llm import LLMSettings
from swarm_route.core.onboarding import AgentPolicy
from swarm_route.core.registry import AGENT_KEY_PREFIX, AgentSpec
from swarm_route.core.spend import Budget, key_id

ENV_PREFIX = "SWARM_"
# SWARM_* variables that are not settings: the file to read settings from, and the CLI's API key
NOT_SETTINGS = frozenset({"SWARM_CONFIG", "SWARM_API_KEY"})
NOT_SETTINGS_PREFIXES = (AGENT_KEY_PREFIX,)  # agents' keys, named by their specs' api_key_env


MIN_KEY_CHARS = 16
PLACEHOLDER = re.compile(r"replace.?me|change.?me|<.*>|example|xxxx", re.IGNORECASE)


class Section(BaseModel):
    """A settings section: an unknown key is an error naming it, not silently dropped (a misspelt
    ``aco.rh0`` would otherwise run with the default and nobody would know)."""

    model_config = ConfigDict(extra="forbid")


class AcoSettings(Section):
    """AMRO-S transition and update parameters; see ``core.aco`` and ``core.pheromone``."""

    alpha: float = Field(1.0, ge=0, description="weight of pheromone τ in p ∝ τ^α·η^β")
    beta: float = Field(1.0, ge=0, description="weight of the heuristic η")
    q0: float = Field(
        0.95,
        ge=0,
        le=1,
        description="ACS exploitation probability: argmax instead of sampling (1 - q0 of traffic explores, at a "
        "cost: see docs/routing.md)",
    )
    explore_known: float | None = Field(
        20.0,
        gt=0,
        description="graded outcomes on the query's intent at which the least-graded path on offer halves "
        "exploration: 1 − q0 of traffic explores while a path is new, less as every path's record grows "
        "(null: always 1 − q0)",
    )
    rho: float = Field(0.02, gt=0, lt=1, description="evaporation per graded event (and per scheduled tick)")
    trial_events: int = Field(
        20,
        ge=0,
        description="graded events a newly registered agent's trails take before they evaporate; they start at "
        "the intent's best trail, so what its trials show decides whether it is asked (0: they evaporate at once)",
    )
    deposit_q: float = Field(0.01, gt=0, description="Q in Δτ = w·Q/(cost+ε)")
    epsilon: float = Field(
        0.1,
        gt=0,
        description="ε in Δτ = w·Q/(cost+ε), USD: above typical per-query cost, so trails mostly rank pass rate "
        "and λ alone prices cost; only paths dearer than ε are discounted by the trail itself",
    )
    penalty: float = Field(
        1.0,
        ge=0,
        description="a failing grade takes this many times the deposit a pass would leave off the path's edges "
        "(0: a failure only evaporates, as AMRO-S publishes; then a path the colony has settled on keeps its lead "
        "when it breaks: see docs/routing.md, bench drift)",
    )
    tau_init: float = Field(1.0, gt=0, description="trail of an edge nothing has deposited on yet")
    tau_min: float = Field(0.1, gt=0)
    tau_max: float = Field(5.0, gt=0)
    cost_weight: float = Field(
        0.02, ge=0, description="λ: η falls by e^(−λ·cost/mean cost of the candidates); per request too"
    )


class ReasoningSettings(Section):
    """Reason-then-select: the set of agents a query needs, with or without an LLM."""

    llm: LLMSettings | None = Field(None, description="an OpenAI-compatible model to reason-then-select with")
    llm_weight: float = Field(
        0.4,
        ge=0,
        le=1,
        description="share of the LLM's pick in the mixed intent weights and out-of-scope score; below 0.5 a "
        "confident classifier can still overrule it, at 0.5 or more the LLM's 'none' always declines",
    )
    shortlist: int = Field(20, ge=1, le=200, description="agents shown to the LLM, best classifier scores first")
    max_set: int = Field(3, ge=1, le=3, description="agents one query may be sent to at most")


class CascadeSettings(Section):
    """Cascades: two or three cheaper paths answer first and a stronger one only when their answers do not
    all agree, or a configured judge scores none high enough (``core.dispatch.verify``). The router builds
    one where graded history holds the panel's agreement record on the intent and its expected quality per
    expected cost beats its pick's (see docs/routing.md)."""

    enabled: bool = Field(False, description="let the router choose a cascade for a single-intent query")
    judge: LLMSettings | None = Field(
        None,
        description="an OpenAI-compatible model that scores the first stage's answers (0-1) instead of their "
        "agreement; where it gives no score, agreement decides",
    )
    judge_accept: float = Field(0.7, ge=0, le=1, description="the judge's score from which an answer stands")


class AggregatorSettings(Section):
    llm: LLMSettings | None = Field(
        None,
        description="an OpenAI-compatible model to refine several answers into one; without it, a deterministic merge",
    )


class AbilitySettings(Section):
    """The per-query ability model behind η: k nearest graded queries, shrunk toward each node's mean."""

    k: int = Field(50, ge=1, description="neighbours consulted per query")
    shrinkage: float = Field(
        20.0, ge=0, description="pseudo-count of the node's record on the query's intent in each prediction"
    )
    intent_shrinkage: float = Field(
        20.0, ge=0, description="pseudo-count of the node's overall mean in its record on an intent"
    )
    prior: float = Field(0.7, ge=0, le=1, description="predicted score of a node never graded")
    max_history: int = Field(
        20_000, ge=100, description="graded queries each router replica keeps in memory (newest); older are forgotten"
    )
    row_terms: int = Field(
        128, ge=1, description="heaviest TF-IDF terms kept of each graded query (the rest, common words, cost most)"
    )


class UpdaterSettings(Section):
    """The quality gate and the asynchronous pheromone updater."""

    sample_rate: float = Field(1.0, ge=0, le=1, description="share of finished requests that are graded")
    gate_threshold: float = Field(0.7, ge=0, le=1, description="minimum quality score that earns pheromone")
    min_intent_weight: float = Field(0.05, ge=0, le=1, description="intents below this weight get no deposit")
    evaporate_interval_s: float = Field(60.0, gt=0)
    block_ms: int = Field(500, ge=10, description="how long one stream read waits for new entries")
    record_ttl_s: int = Field(
        24 * 3600, gt=0, description="how long feedback can still reach a request (its record's memory, in Redis)"
    )


class DispatchSettings(Section):
    timeout_s: float = Field(30.0, gt=0, description="per agent call")
    retries: int = Field(2, ge=0, description="extra attempts on retryable errors")
    backoff_s: float = Field(0.2, ge=0)
    fallbacks: int = Field(2, ge=0, description="next-best paths tried when every chosen agent failed")
    failures_to_cool: int = Field(2, ge=1, description="retryable failures in a row that cool a replica down")
    cooldown_s: float = Field(10.0, gt=0, description="how long a cooled-down replica gets no calls")


class LimitSettings(Section):
    """Bounds on what one request may ask for. How many agents a query may reach is ``reasoning.max_set``."""

    max_query_chars: int = Field(8000, gt=0)
    max_body_bytes: int = Field(
        1_000_000, ge=1024, description="larger request bodies are refused (413) before anything parses them"
    )
    max_budget_usd: float = Field(100.0, gt=0)


class IntentSettings(Section):
    oos_threshold: float | None = Field(
        None,
        description="below this score a query is out of scope: the best intent's score, or its lead over the "
        "`oos` class when out-of-scope examples were given; None chooses it from data "
        "(validation split of `files`, else cross-validation of the training examples)",
    )
    temperature: float = Field(
        0.1, gt=0, description="softmax temperature over intent scores; refitted on held-out data when there is some"
    )
    max_false_decline: float | None = Field(
        0.02,
        ge=0,
        lt=1,
        description="cap on the share of held-out in-scope queries the data-chosen threshold may decline; "
        "None: no cap (harmonic mean of in-scope accuracy and out-of-scope recall alone)",
    )
    set_coverage: float = Field(
        0.92,
        gt=0,
        lt=1,
        description="share of held-out queries whose agent set must contain a fitting agent; chooses the "
        "calibrated probability an intent needs to join the set (higher: larger sets)",
    )
    files: list[str] = Field(
        default_factory=list,
        description="labelled files to train and validate on: CLINC150 layout (.json) or past traffic as "
        "agent-set lines (.jsonl, {query, agents})",
    )
    embeddings: bool = Field(
        True, description="add sentence embeddings (MiniLM, CPU) for queries the lexical path is unsure of"
    )
    inline_refit_max: int = Field(
        3000, ge=0, description="up to this many examples a registry change is learned before the next query"
    )
    tune_epochs: int = Field(
        2,
        ge=0,
        description="epochs of fine-tuning a copy of the sentence encoder on the labelled examples, when there "
        "are at least `tune_min_examples` and held-out data to choose thresholds on (0: never); minutes on a CPU",
    )
    tune_min_examples: int = Field(5000, ge=1, description="fewer labelled examples than this: no fine-tuning")
    tune_lr: float = Field(1e-4, gt=0, description="learning rate of the fine-tuning")
    fit_threads: int | None = Field(
        1,
        ge=1,
        description="CPU threads a background refit may use (torch and BLAS), so the replica keeps answering on "
        "the others; the first fit, before the replica answers, uses every core. None: every core",
    )
    tune_cache: str | None = Field(
        "~/.cache/swarm_route/encoders",
        description="folder where fine-tuned encoders are kept by a hash of what they were tuned on, so a "
        "restart loads one in seconds (the 3 most recently used, ~90 MB each); None: tune at every start",
    )
    compound: bool = Field(
        True,
        description="a query asking for several things is cut where people join requests and each part "
        "classified, so each needed intent joins the agent set and its agent is asked its part",
    )
    max_false_cut: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="share of held-out single-need queries the compound cut rule (chosen at fit) may cut in "
        "parts: a cut single request sends a fragment of it to an agent",
    )


def _not_guessable(value: str) -> str:
    """A short key, or a placeholder copied from an example, is as good as none: refuse to start."""
    if len(value) < MIN_KEY_CHARS or PLACEHOLDER.search(value):
        raise ValueError(
            f"an API key must have at least {MIN_KEY_CHARS} characters and not be a placeholder "
            "(e.g. `openssl rand -hex 24`)"
        )
    return value


class ApiKey(Section):
    """A key with a name and, optionally, budgets. The id is what logs, metrics, the spend ledger and the
    console call the key; the key itself is never shown."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="e.g. team-search")
    key: SecretStr
    admin: bool = Field(False, description="admin scope (not rate-limited); else client")
    budget: Budget = Field(default_factory=Budget)

    @field_validator("key")
    @classmethod
    def _guess(cls, key: SecretStr) -> SecretStr:
        _not_guessable(key.get_secret_value())
        return key


class AuthSettings(Section):
    """API keys; with none the API is open (local use). Set them from a Secret in production, as plain lists
    (``SWARM_AUTH__ADMIN_KEYS='["..."]'``) or named, with budgets (``SWARM_AUTH__KEYS='[{"id": "team-a",
    "key": "...", "budget": {"daily_usd": 5}}]'``)."""

    admin_keys: list[SecretStr] = Field(default_factory=list, description="register/remove agents, read trails")
    client_keys: list[SecretStr] = Field(default_factory=list, description="query, chat, feedback")
    keys: list[ApiKey] = Field(default_factory=list, description="named keys, with optional budgets")
    rate_per_minute: int = Field(600, ge=1, description="requests a minute per client key (admin keys: no limit)")
    spend_fail: Literal["open", "closed"] = Field(
        "open",
        description="with the store down, answer and charge once it is back (open) or refuse with 503 (closed)",
    )
    hold_ttl_s: float = Field(
        300.0, gt=0, description="longest a request's expected cost stays held on its key (a replica died mid-call)"
    )

    @field_validator("admin_keys", "client_keys")
    @classmethod
    def _guessable(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            _not_guessable(key.get_secret_value())
        return keys

    @field_validator("keys")
    @classmethod
    def _unique(cls, keys: list[ApiKey]) -> list[ApiKey]:
        ids = [k.id for k in keys]
        if len(set(ids)) != len(ids):
            raise ValueError("key ids must be unique")
        return keys

    def named(self) -> dict[str, ApiKey]:
        """Every key by its id: named ones as given, plain ones by the hash of the key."""
        plain = [(k, True) for k in self.admin_keys] + [(k, False) for k in self.client_keys]
        named = [ApiKey(id=key_id(k.get_secret_value()), key=k, admin=admin) for k, admin in plain]
        return {k.id: k for k in [*named, *self.keys]}


class ServeSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    app_name: str = "swarm_route"
    num_cpus: int | None = Field(None, description="CPUs for a local Ray; None lets Ray count them")
    # Past this a replica takes no more, and Serve's router (in the proxy, and in each handle) retries the queued
    # requests with a backoff growing to 0.5 s, two routing tasks per replica: with 1,000 clients on one
    # ingress capped at 256 it let 4 requests a second through for minutes (direct calls 17.6 rps, p99 160 s);
    # capped at 2,048 the requests wait inside the replica instead (172 rps, p99 8.9 s; docs/operations.md).
    # Autoscaling's target_ongoing_requests, not this cap, is what should add replicas. A routed call at one
    # client may be a millisecond or two slower than at 256; the runs disagree (docs/operations.md).
    max_ongoing_requests: int = Field(
        2048, ge=1, description="per replica, for every deployment: what a replica takes before Serve queues"
    )
    ingress_replicas: int = Field(
        1, ge=1, description="ingress replicas (HTTP, and classify and route in the fast topology); state they "
        "share (rate limits, spend, trails, the registry) lives in Redis"
    )
    topology: Literal["fast", "split"] = Field(
        "fast",
        description="fast: classify and route inside each ingress replica (two handle hops fewer per query; the "
        "stages scale with the ingress); split: each in a deployment of its own, scaled apart",
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="a local Ray's Prometheus export port (/metrics); None: a free one"
    )


class StoreSettings(Section):
    """How the service behaves while Redis is slow or down: it keeps answering and catches up later."""

    breaker_open_s: float = Field(
        1.0, gt=0, description="after a store error, skip the store this long instead of waiting out timeouts"
    )
    max_stale_s: float = Field(
        300.0, gt=0, description="oldest trails routing may fail open on; older: every path at τ_init"
    )
    outbox_capacity: int = Field(
        10_000, ge=1, description="finished requests and feedback held per ingress replica while the store is down"
    )
    registry_refresh_s: float = Field(
        0.5,
        ge=0,
        description="how stale a replica's view of the registry may be: its version is re-read this often, in "
        "the background (0: before every query); a replica's own changes, and an agent a route names that the "
        "view lacks, are read at once",
    )
    trails_refresh_s: float = Field(
        0.5,
        ge=0,
        description="how stale the pheromone trails a route reads may be (0: read for every query); they "
        "move by one graded answer at a time",
    )


class Settings(BaseSettings):
    """Everything swarm_route reads at start-up."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("redis_url", "REDIS_URL", "SWARM_REDIS_URL"),
        description="external Redis; when unset `swarm-route serve` starts an embedded one",
    )
    namespace: str = Field("swarm", pattern=r"^[A-Za-z0-9_.-]{1,40}$", description="Redis key prefix")
    default_pool: bool = Field(True, description="register the built-in agents at start-up if absent")
    agents: list[AgentSpec] = Field(default_factory=list, description="agents registered at start-up")
    serve: ServeSettings = Field(default_factory=ServeSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    agent_policy: AgentPolicy = Field(default_factory=AgentPolicy)
    aco: AcoSettings = Field(default_factory=AcoSettings)
    ability: AbilitySettings = Field(default_factory=AbilitySettings)
    reasoning: ReasoningSettings = Field(default_factory=ReasoningSettings)
    cascade: CascadeSettings = Field(default_factory=CascadeSettings)
    aggregator: AggregatorSettings = Field(default_factory=AggregatorSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    updater: UpdaterSettings = Field(default_factory=UpdaterSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    intent: IntentSettings = Field(default_factory=IntentSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        _check_environment(settings_cls)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get("SWARM_CONFIG")
        if path:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=Path(path)))
        return tuple(sources)


def _check_environment(settings_cls: type[BaseModel]) -> None:
    """Every ``SWARM_*`` variable must name a setting (sections nested with ``__``): pydantic-settings
    ignores the others, so a misspelt ``SWARM_ACO__RH0`` would be a silent no-op."""
    unknown = [
        name
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX)
        and name.upper() not in NOT_SETTINGS
        and not name.upper().startswith(NOT_SETTINGS_PREFIXES)
        and not _names_setting(settings_cls, name[len(ENV_PREFIX) :].lower().split("__"))
    ]
    if unknown:
        raise ValueError(
            f"unknown setting in the environment: {', '.join(sorted(unknown))} "
            f"(SWARM_<FIELD> or SWARM_<SECTION>__<FIELD>; see swarm_route/config.py)"
        )


def _names_setting(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    section = field.annotation
    if len(path) == 1:
        return True
    return isinstance(section, type) and issubclass(section, BaseModel) and _names_setting(section, path[1:])


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from an explicit YAML file, then the environment; ``overrides`` win over both.

    An explicit file is what the operator pointed at on the command line, so it outranks ``SWARM_*``
    variables; a file named only by ``SWARM_CONFIG`` ranks below them.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level of a settings file must be a mapping")
    data.update(overrides)
    return Settings(**data)
