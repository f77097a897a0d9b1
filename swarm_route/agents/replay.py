"""Replay agents: answer from a recorded routing matrix instead of a live LLM.

A routing-matrix CSV holds, for every prompt, each model's recorded score, response and USD cost
(columns ``<model>``, ``<model>|model_response``, ``<model>|total_cost``). A replay agent returns exactly
what its model did on that prompt, so benchmarks and demos exercise the real router and dispatch with real
answers, scores and prices, and no hosted LLM.
"""

from __future__ import annotations

import ast
import asyncio
import csv
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from swarm_route.core.messages import AgentAnswer, AgentError, expected_tokens
from swarm_route.core.reachability import Unreachable, replay_files
from swarm_route.core.registry import AgentKind, AgentSpec, ModelOption, Skill, as_name

RESPONSE_SUFFIX = "|model_response"
COST_SUFFIX = "|total_cost"
_SPACE = re.compile(r"\s+")


def prompt_key(prompt: str) -> str:
    return _SPACE.sub(" ", prompt).strip()


def _float(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return None if math.isnan(x) else x


def recorded_response(value: str | None) -> str:
    """The text a model answered. RouterBench writes each response as a Python list literal of the sampled
    completions (``"['C\\n']"``, the newline escaped); read raw, two models giving the same choice did not
    compare equal (``c\\n`` against ``c``), so no cascade's pair ever agreed where one of them ended its
    answer with a newline. Such a list of strings is its completions, one per line; any other value is
    the text itself."""
    text = value or ""
    stripped = text.strip()
    if not (stripped.startswith("[") and stripped.endswith("]")):
        return text
    try:
        parsed = ast.literal_eval(stripped)  # literals only: a cell can hold nothing that runs
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text
    if isinstance(parsed, list) and all(isinstance(part, str) for part in parsed):
        return "\n".join(parsed)
    return text


@dataclass(frozen=True)
class Record:
    score: float | None
    response: str
    cost_usd: float | None


@dataclass
class Row:
    sample_id: str
    prompt: str
    task: str
    records: dict[str, Record] = field(default_factory=dict)

    @property
    def intent(self) -> str:
        """The intent (skill name) the row's task is learnt as: warm-up deposits and benchmarks label by it."""
        return as_name(self.task or "default")


@dataclass
class RoutingMatrix:
    """Rows of one or more routing-matrix CSVs; models are whatever columns have a cost column beside them."""

    rows: list[Row]
    models: list[str]

    @classmethod
    def load(cls, *paths: str | Path) -> RoutingMatrix:
        csv.field_size_limit(sys.maxsize)
        rows: list[Row] = []
        models: list[str] = []
        for path in paths:
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                header = reader.fieldnames or []
                file_models = [c[: -len(COST_SUFFIX)] for c in header if c.endswith(COST_SUFFIX)]
                file_models = [m for m in file_models if m in header]
                if not file_models or "prompt" not in header:
                    raise ValueError(f"{path}: not a routing matrix (needs 'prompt' and '<model>|total_cost')")
                models += [m for m in file_models if m not in models]
                for i, raw in enumerate(reader):
                    row = Row(
                        raw.get("sample_id") or f"{Path(path).stem}:{i}",
                        raw["prompt"],
                        raw.get("eval_name", ""),
                    )
                    for m in file_models:
                        row.records[m] = Record(
                            _float(raw.get(m)),
                            recorded_response(raw.get(m + RESPONSE_SUFFIX)),
                            _float(raw.get(m + COST_SUFFIX)),
                        )
                    rows.append(row)
        return cls(rows, models)

    def index(self) -> dict[str, Row]:
        return {prompt_key(r.prompt): r for r in self.rows}


@lru_cache(maxsize=16)
def _indexed(endpoint: str) -> tuple[dict[str, Row], tuple[str, ...]]:
    matrix = RoutingMatrix.load(*endpoint.split(","))
    return matrix.index(), tuple(matrix.models)


def replay_dirs(files: Sequence[str | Path]) -> list[str]:
    """The folders holding ``files``: what a benchmark allows its own replay agents to read."""
    return sorted({str(Path(f).resolve().parent) for f in files})


def replay_pool(matrix: RoutingMatrix, files: list[str | Path], examples_per_task: int = 5) -> list[AgentSpec]:
    """One replay agent per model of the matrix, priced from what it recorded.

    The price per 1k tokens is the model's recorded spend over the tokens the router expects of those prompts
    before a call (``expected_tokens``: the prompt and a typical answer), so that a router pricing a path it
    has no cost history for expects what the model spent on average. Read over the recorded answers' own
    lengths instead, a model answering in a letter (multiple choice) was priced as if every answer were a
    letter, and a router that expects a typical answer saw it up to 26 times dearer than it was.
    Every agent serves every task of the files; the task names become its skills, with a few prompts each.
    """
    by_task: dict[str, list[str]] = {}
    for row in matrix.rows:
        by_task.setdefault(row.task or "default", []).append(row.prompt[:1500])
    skills = [Skill(name=as_name(t), examples=p[:examples_per_task]) for t, p in sorted(by_task.items())]
    agents = []
    for model in matrix.models:
        spent = sum(r.records[model].cost_usd or 0.0 for r in matrix.rows)
        tokens = sum(expected_tokens(r.prompt) for r in matrix.rows)
        agents.append(
            AgentSpec(
                name=as_name(model),
                description=f"Recorded answers of {model}.",
                kind=AgentKind.replay,
                endpoint=",".join(str(Path(f).resolve()) for f in files),
                models=[ModelOption(name=model, cost_per_1k_tokens=1000 * spent / max(tokens, 1))],
                skills=skills,
            )
        )
    return agents


class ReplayBackend:
    """The agent's ``endpoint`` is the CSV path (or several, comma-separated); its models are their columns.
    Files are read only under ``roots`` (the service's ``agent_policy.replay_dirs``; None: anywhere, for a
    benchmark's own files), only regular files of bounded size: checked on every call, not only at
    registration, since a file can be replaced by a FIFO or a link after it."""

    def __init__(self, roots: Sequence[str] | None = None) -> None:
        self._roots = roots

    async def answer(self, spec: AgentSpec, model: str, query: str, context: str | None = None) -> AgentAnswer:
        """The recorded answer to ``query``; ``context`` is not what was recorded against."""
        try:
            replay_files(spec.endpoint, self._roots)
            index, models = await asyncio.to_thread(_indexed, spec.endpoint)
        except Unreachable as exc:
            raise AgentError(str(exc)) from None
        except (OSError, ValueError, UnicodeDecodeError, csv.Error):
            raise AgentError("replay file unusable: not a routing matrix") from None
        if model not in models:
            raise AgentError(f"model {model!r} is not recorded in {spec.endpoint}")
        row = index.get(prompt_key(query))
        if row is None:
            raise AgentError("this prompt is not in the recording")
        record = row.records[model]
        if not record.response:
            raise AgentError(f"{model} has no recorded response for this prompt")
        return AgentAnswer(text=record.response, cost_usd=record.cost_usd or 0.0, score=record.score)
