"""The verifier stage of a cascade: is the cheap tier's answer good enough to stop, or must the walk go on?

A cascade asks a panel of cheaper paths first; when their answers agree, one of them stands; when they
differ, the walk escalates to the stronger path the router chose for that case (FrugalGPT's cascade, with
agreement as the scorer: answers that independent models reach alike are right far more often than either
alone). Agreement is judged on short answers only (a choice, a number, a name): two long answers, code or
prose, almost never match as text, so they count as unverified and the walk goes on, which costs money
but never passes off an unchecked answer as checked.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from swarm_route.core.messages import SHORT_ANSWER_CHARS, PathAnswer

_ENDS = " .,:;!?\"'()[]`*"
# A first line that holds no answer but leads into one: a code fence (```python), a block tag ([PYTHON]),
# or a lead-in ending in a colon ("Here is a function:"). Two code answers opening alike agreed on it:
# RouterBench's MBPP answers "agreed" on «python» or «here is a solution» a tenth of the time.
_LEAD_IN = re.compile(r"^\s*(```|\[/?[A-Za-z][A-Za-z_]+\]\s*$)|:\s*$")


def short_answer(text: str) -> str:
    """A response reduced for comparing two: its first non-empty line, lower case, spaces collapsed, the
    punctuation and quoting at its ends dropped ("B.", " b ", "['B']" and "B\\nbecause…" agree); empty when
    that line is too long to be a short answer, or leads into the answer rather than giving it (a code
    fence, a block tag, a line ending in a colon)."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    if _LEAD_IN.search(line):
        return ""
    short = " ".join(line.lower().split()).strip(_ENDS)
    return short if len(short) <= SHORT_ANSWER_CHARS else ""


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    score: float  # the share of the panel that gave the winning answer (0: nothing comparable)
    answer: int  # index into the judged answers of the one that stands when accepted
    reason: str


class Verifier(Protocol):
    def judge(self, query: str, answers: Sequence[PathAnswer]) -> Verdict: ...


class AgreementVerifier:
    """Accept when at least ``quorum`` of the panel's answers (all of them by default) give the same short
    answer; the first of those (the router's most probable path) stands."""

    def __init__(self, quorum: float = 1.0) -> None:
        self.quorum = quorum

    def judge(self, query: str, answers: Sequence[PathAnswer]) -> Verdict:
        shorts = [short_answer(a.text) for a in answers]
        votes = Counter(s for s in shorts if s)
        if not votes:
            return Verdict(False, 0.0, 0, "no short answer to compare (long or empty answers)")
        top, count = votes.most_common(1)[0]
        share = count / len(answers)
        if len(answers) > 1 and share >= self.quorum:
            agreed = f"{count} of {len(answers)} answers agree on «{top}»"
            return Verdict(True, round(share, 4), shorts.index(top), agreed)
        seen = " vs ".join(f"«{s}»" if s else "(long)" for s in shorts)
        return Verdict(False, round(share, 4), shorts.index(top), f"answers differ: {seen}")
