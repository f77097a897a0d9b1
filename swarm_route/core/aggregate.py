"""The refining aggregator: one answer out of one or many, or a polite decline when there is none.

A single answer passes through untouched. Several are merged deterministically: the answer with the best
quality evidence leads (recorded score, then pheromone-backed probability), the others follow, and answers
that disagree are said to disagree rather than silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel

from swarm_route.core.dispatch import PathAnswer

_WORD = re.compile(r"\w+")


class Aggregate(BaseModel):
    text: str
    sources: list[int]  # indices into the answers merged, leading answer first
    conflicts: list[str]
    declined: bool = False


def _similar(a: str, b: str) -> float:
    """Jaccard overlap of word sets: crude, but enough to tell agreeing answers from disagreeing ones."""
    x, y = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(x & y) / len(x | y) if x | y else 1.0


class RefiningAggregator:
    def __init__(self, agreement: float = 0.5) -> None:
        self.agreement = agreement

    def merge(self, answers: Sequence[PathAnswer], probabilities: Sequence[float], reason: str = "") -> Aggregate:
        if not answers:
            why = reason or "no agent produced an answer"
            return Aggregate(
                text=f"Sorry, I could not answer this: {why}. Try rephrasing, or register an agent that covers it.",
                sources=[],
                conflicts=[],
                declined=True,
            )
        if len(answers) == 1:
            return Aggregate(text=answers[0].text, sources=[0], conflicts=[])
        order = sorted(
            range(len(answers)),
            key=lambda i: (answers[i].score if answers[i].score is not None else -1.0, probabilities[i]),
            reverse=True,
        )
        lead = answers[order[0]]
        parts = [f"[{'+'.join(lead.agents)}] {lead.text}"]
        conflicts = []
        for i in order[1:]:
            other = answers[i]
            parts.append(f"[{'+'.join(other.agents)}] {other.text}")
            if _similar(lead.text, other.text) < self.agreement:
                conflicts.append(f"{'+'.join(other.agents)} disagrees with {'+'.join(lead.agents)}")
        if conflicts:
            parts.append("Note: " + "; ".join(conflicts) + ". The first answer has the strongest evidence.")
        return Aggregate(text="\n\n".join(parts), sources=order, conflicts=conflicts)
