"""The verifier stage of a cascade: is the cheap tier's answer good enough to stop, or must the walk go on?

A cascade asks a panel of cheaper paths first; when their answers agree, one of them stands; when they
differ, the walk escalates to the stronger path the router chose for that case (FrugalGPT's cascade, with
agreement as the scorer: answers that independent models reach alike are right far more often than either
alone). Agreement is judged on short answers only (a choice, a number, a name): two long answers, code or
prose, almost never match as text, so they count as unverified and the walk goes on, which costs money
but never passes off an unchecked answer as checked.

Where an operator configures a judge (``cascade.judge``, an OpenAI-compatible model), it scores each answer
of the first stage instead, long ones included, and the best stands when its score reaches
``cascade.judge_accept``. A judge that fails, times out or answers without a score in [0, 1] leaves the
decision to agreement (the trace says so): the check falls back to the cheaper one, never to acceptance.
A judge that failed or timed out is not asked again for ``JUDGE_REST_S``: a hung judge would otherwise add
its whole timeout to every cascade's answer.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from swarm_route.core.failopen import Breaker
from swarm_route.core.llm import LLMUnavailable, Reply
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
    # the estimate that the standing answer is right: the share of the panel that gave it (agreement; 0:
    # nothing comparable), or the judge's score
    score: float
    answer: int  # index into the judged answers of the one that stands when accepted
    reason: str
    cost_usd: float = 0.0  # what judging cost (a judge's calls; agreement is free)


class Verifier(Protocol):
    async def judge(self, query: str, answers: Sequence[PathAnswer]) -> Verdict: ...


class Completer(Protocol):
    """A chat model (``core.llm.ChatModel``): raises ``LLMUnavailable`` when it gives no usable answer."""

    async def complete(self, system: str, user: str) -> Reply: ...


class AgreementVerifier:
    """Accept when at least ``quorum`` of the panel's answers (all of them by default) give the same short
    answer; the first of those (the router's most probable path) stands."""

    def __init__(self, quorum: float = 1.0) -> None:
        self.quorum = quorum

    async def judge(self, query: str, answers: Sequence[PathAnswer]) -> Verdict:
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


JUDGE_SYSTEM = (
    "You check answers. You are given a question and one answer to it. Reply with a single number between 0 and 1: "
    "how likely the answer is correct and complete. Reply with the number only."
)
JUDGE_CHARS = 4000  # of the question, and of each answer, sent to the judge
JUDGE_REST_S = 30.0  # after a call that failed or timed out, agreement decides alone this long
_NUMBER = re.compile(r"(?<![\w.])\d*\.?\d+")


def judge_score(reply: str) -> float | None:
    """The first number of a judge's reply when it lies in [0, 1]; None when there is none or it does not
    (a "7" on some other scale is not a probability, and guessing the scale would pass answers unchecked)."""
    found = _NUMBER.search(reply)
    if found is None:
        return None
    value = float(found.group())
    return value if 0.0 <= value <= 1.0 else None


class JudgeVerifier:
    """An LLM judge scores every answer of the first stage (concurrently); the best stands when its score
    reaches ``accept``. Where the judge gives no score for any answer, ``fallback`` (agreement) decides."""

    def __init__(
        self, model: Completer, accept: float, fallback: Verifier | None = None, rest_s: float = JUDGE_REST_S
    ) -> None:
        self.model, self.accept = model, accept
        self.fallback = fallback or AgreementVerifier()
        self.breaker = Breaker(rest_s, what="the judge")

    async def judge(self, query: str, answers: Sequence[PathAnswer]) -> Verdict:
        if self.breaker.is_open:
            why = f"the judge failed a moment ago ({self.breaker.last_error})"
            return await self._by_agreement(query, answers, why, 0.0)
        judged = await asyncio.gather(*(self._score(query, a.text) for a in answers))
        cost = sum(c for _, c in judged)
        scored = [(s, i) for i, (s, _) in enumerate(judged) if s is not None]
        if not scored:
            return await self._by_agreement(query, answers, "the judge gave no score", cost)
        best, i = max(scored, key=lambda si: (si[0], -si[1]))  # the router's more probable path on a tie
        of = f"answer {i + 1} of {len(answers)}" if len(answers) > 1 else "the answer"
        if best >= self.accept:
            return Verdict(True, best, i, f"the judge scored {of} {best:g} (accepts from {self.accept:g})", cost)
        return Verdict(False, best, i, f"the judge scored {of} {best:g}, below {self.accept:g}", cost)

    async def _by_agreement(self, query: str, answers: Sequence[PathAnswer], why: str, cost: float) -> Verdict:
        verdict = await self.fallback.judge(query, answers)
        return replace(verdict, reason=f"{why}; by agreement: {verdict.reason}", cost_usd=verdict.cost_usd + cost)

    async def _score(self, query: str, text: str) -> tuple[float | None, float]:
        """The judge's score of one answer (None: no usable score) and what asking cost."""
        user = f"Question:\n{query[:JUDGE_CHARS]}\n\nAnswer:\n{text[:JUDGE_CHARS]}"
        try:
            reply = await self.model.complete(JUDGE_SYSTEM, user)
        except LLMUnavailable as exc:
            self.breaker.trip("a cascade's verdict", exc)
            return None, exc.cost_usd
        return judge_score(reply.text), reply.cost_usd
