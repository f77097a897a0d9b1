"""When paths agree, are they right? Learnt per intent from graded outcomes that kept their short answer.

A cascade (``router._cascade``) bets that two or three cheaper paths which give the same short answer are
right, and pays for a stronger path only when they differ. Whether that bet pays is a property of the intent and the
pair, not a constant: multiple-choice answers agree often and are right when they do, code never compares
(``core.dispatch.verify.short_answer`` is empty for it), and the prompts a pair disagrees on are the hard
ones, where the strong path too does worse than its mean. So for each intent this keeps its most recent
graded queries (the nodes asked, each one's short answer and score) and answers, for a panel and a strong
path, from the queries where all of them were graded: how often the panel agrees, the first member's mean
score when it does, and the strong path's when it does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from swarm_route.core.route.ability import Graded

UNKNOWN = -1  # not graded on this query, or graded without its answer
LONG = -2  # answered, too long to compare


@dataclass(frozen=True)
class PanelRecord:
    """For each panel asked about: the evidence behind it and what it showed (NaN where there is none)."""

    queries: np.ndarray  # graded queries where every member and the strong path were graded with answers
    agree: np.ndarray  # share of those where every member gave the same short answer
    right_when_agree: np.ndarray  # the first's mean score where they agreed
    strong_when_differ: np.ndarray  # the strong path's mean score where they did not
    strong: np.ndarray  # the strong path's mean score on all of them


@dataclass
class _Intent:
    rows: list[dict[str, tuple[str | None, float]]] = field(default_factory=list)  # node → (short answer, score)
    arrays: tuple[dict[str, int], np.ndarray, np.ndarray] | None = None  # built from rows until they change


class AgreementMemory:
    def __init__(self, max_queries: int = 2_000) -> None:
        """``max_queries``: graded queries kept per intent, newest (memory stays bounded with traffic)."""
        self.max_queries = max_queries
        self._intents: dict[str, _Intent] = {}
        self._last: tuple[str, str | None] | None = None  # the text and intent the newest row belongs to

    def add(self, outcomes: Sequence[Graded]) -> None:
        """Consecutive outcomes on one text are one graded query (as ``AbilityModel.add`` counts them)."""
        for o in outcomes:
            if o.intent is None:
                continue
            memory = self._intents.setdefault(o.intent, _Intent())
            if self._last != (o.text, o.intent) or not memory.rows:
                memory.rows.append({})
                self._last = (o.text, o.intent)
            memory.rows[-1][o.node] = (o.answer, o.score)
            memory.arrays = None
            if len(memory.rows) > self.max_queries * 1.1:  # a tenth of slack, so forgetting is not per call
                del memory.rows[: len(memory.rows) - self.max_queries]

    def panels(self, intent: str, panels: Sequence[Sequence[str]], strong: str) -> PanelRecord:
        """The record of each panel (nodes asked at once, as many in each) escalating to ``strong`` on
        ``intent``: it agrees when every member gave the same short answer, and its first member's
        answer then stands."""
        n = len(panels)
        empty = PanelRecord(np.zeros(n), *(np.full(n, np.nan) for _ in range(4)))
        memory = self._intents.get(intent)
        if memory is None or not memory.rows or not n:
            return empty
        nodes, codes, scores = self._arrays(memory)
        if strong not in nodes:
            return empty
        col = np.array([[nodes.get(m, -1) for m in panel] for panel in panels])  # panels × members
        seen = (col >= 0).all(axis=1)
        col = np.where(seen[:, None], col, 0)
        s = scores[:, nodes[strong]][:, None]
        said = codes[:, col]  # queries × panels × members
        graded = (said != UNKNOWN).all(axis=2) & ~np.isnan(s) & seen
        agree = graded & (said == said[:, :, :1]).all(axis=2) & (said[:, :, 0] >= 0)
        differ = graded & ~agree
        count, agreed, differed = graded.sum(axis=0), agree.sum(axis=0), differ.sum(axis=0)
        first = scores[:, col[:, 0]]
        with np.errstate(invalid="ignore", divide="ignore"):
            return PanelRecord(
                queries=count.astype(float),
                agree=np.where(count > 0, agreed / count, np.nan),
                right_when_agree=np.where(agreed > 0, np.where(agree, first, 0.0).sum(axis=0) / agreed, np.nan),
                strong_when_differ=np.where(differed > 0, np.where(differ, s, 0.0).sum(axis=0) / differed, np.nan),
                strong=np.where(count > 0, np.where(graded, s, 0.0).sum(axis=0) / count, np.nan),
            )

    @staticmethod
    def _arrays(memory: _Intent) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
        """The intent's queries as (node → column, answer codes, scores), built once per change; answers are
        numbered here, from the rows kept, so nothing outlives the queries it came from."""
        if memory.arrays is None:
            numbers: dict[str, int] = {}
            nodes: dict[str, int] = {}
            for row in memory.rows:
                for node in row:
                    nodes.setdefault(node, len(nodes))
            codes = np.full((len(memory.rows), len(nodes)), UNKNOWN, dtype=np.int64)
            scores = np.full((len(memory.rows), len(nodes)), np.nan)
            for i, row in enumerate(memory.rows):
                for node, (answer, score) in row.items():
                    if answer is not None:
                        codes[i, nodes[node]] = numbers.setdefault(answer, len(numbers)) if answer else LONG
                    scores[i, nodes[node]] = score
            memory.arrays = (nodes, codes, scores)
        return memory.arrays
