"""Queries that ask for two or more things ("book a flight to Rome and tell me the weather there").

A whole compound query classifies as a blend whose second need rarely clears the set floor, so every set
holds one agent. Here a query is cut where people join requests (sentence ends, ";", and/also/then/plus),
each side is classified on its own, and a cut holds when both sides are in scope, want different intents,
and pass the ``CutRule``:

- the sides are *about different things*: the cosine between them (sentence embeddings, or TF-IDF rows
  without them) is below ``apart``. A single need said in two sentences stays on one topic; two joined
  needs do not;
- each side is a request of its own: its best intent's weight is at least ``surer`` times the whole's. A
  generic tail ("Can you help me with that?") is a diffuse guess; a blend of two needs is less sure than
  either alone.

Both numbers are chosen from data (``choose_rule``), as mixed-intent validation sets (MixATIS/MixSNIPS)
are built: held-out single-need examples of the registered agents, and pairs of them of different intents
joined with the words people use (``join``); of the rules that cut few enough of the single ones, the one
that gets the most of both sets exactly right wins.
Of several cuts that hold, the one whose sides are least alike wins; each side is cut again, up to
``MAX_PARTS``. The result names each part's intent, so each can clear the set floor, and remembers which
part asked for it.

A ``screen`` (the lexical model's best intent per side, a sparse product) goes first: a cut whose two
sides want the same intent by it is dropped before anything is encoded.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from swarm_route.core.messages import IntentResult

MAX_PARTS = 4
MAX_CUTS = 4  # cuts tried per query (sentence ends first, then ", and", "and")
MIN_WORDS = 3  # a side shorter than this is a fragment ("salt and pepper"), not a request
_JOIN = re.compile(
    r"(?:(?<=[.?!;])\s+|,?\s+)(?:and then|and also|and|also|then|plus|as well as)\b,?\s+|(?<=[.?!;])\s+", re.IGNORECASE
)
# How people join two requests in one message (MixATIS/MixSNIPS joined theirs with "and" alone).
JOINERS = (" and ", ", and also ", ". Also, ", "; then ", ". ", " and then ", ", plus ")
SURER = (1.0, 0.8, 0.6, 0.4, 0.2, 0.0)  # the side-to-whole weight ratios choose_rule tries
APARTS = 40  # cosines choose_rule tries: quantiles of the validation cuts' own

Classify = Callable[[Sequence[str]], list[IntentResult]]
Screen = Callable[[Sequence[str]], list[str]]
Likeness = Callable[[Sequence[tuple[str, str]]], np.ndarray]  # each cut's cosine between its two sides


@dataclass(frozen=True)
class CutRule:
    apart: float = -1.0  # a cut's sides are about different things below this cosine (-1: nothing is cut)
    surer: float = 1.0  # a side's best weight must be at least this share of the whole's best weight


@dataclass(frozen=True)
class Judge:
    """What cutting needs from the classifier."""

    classify: Classify
    likeness: Likeness
    screen: Screen | None = None


@dataclass(frozen=True)
class _Cut:
    sides: tuple[str, str]
    results: tuple[IntentResult, IntentResult]
    cosine: float

    def holds(self, whole: IntentResult, rule: CutRule) -> bool:
        need = rule.surer * _sureness(whole)
        return self.cosine < rule.apart and min(_sureness(r) for r in self.results) >= need


def _sureness(result: IntentResult) -> float:
    top = result.top()
    return result.weights[top] if top is not None else 0.0


def cuts(query: str) -> list[tuple[str, str]]:
    """The ways to cut ``query`` in two at a joining word or a sentence end, both sides long enough: at most
    ``MAX_CUTS``, the strongest joins first (a sentence end, then a comma before the word, then the word)."""
    found = []
    for m in _JOIN.finditer(query):
        left, right = query[: m.start()].strip(" ,;"), query[m.end() :].strip(" ,;")
        if len(left.split()) >= MIN_WORDS and len(right.split()) >= MIN_WORDS:
            join = m.group(0)
            strength = 0 if query[m.start() - 1 : m.start()] in ".?!;" else 1 if join.startswith(",") else 2
            found.append((strength, m.start(), (left, right)))
    return [cut for _, _, cut in sorted(found)[:MAX_CUTS]]


def join(first: str, second: str, joiner: str) -> str:
    """Two requests in one message, as people write them: the second's first letter lower-cased after a
    coordinator (not a leading "I"), a new sentence after an end mark."""
    first, second = first.strip(), second.strip()
    keep = re.match(r"I\b|[A-Z]{2,}", second) is not None  # "I need…", "NASA…": no lower case
    lowered = second if keep else second[:1].lower() + second[1:]
    if joiner.startswith("."):  # a new sentence: the first keeps (or gets) its end mark
        second = lowered if joiner.endswith(", ") else second  # "Also, can you …"
        return f"{first}{'' if first.endswith(('.', '?', '!')) else '.'}{joiner[1:]}{second}"
    return f"{first.rstrip(' .!?')}{joiner}{lowered}"  # mid-sentence: "… and can you …"


def split(query: str, whole: IntentResult, judge: Judge, rule: CutRule) -> IntentResult:
    """``whole`` (the query classified as one), or the blend of its parts when it asks for several things."""
    parts = _parts(query, whole, judge, rule, MAX_PARTS)
    if len(parts) < 2:
        return whole
    weights: dict[str, float] = {}
    for _, result in parts:
        for intent, w in result.weights.items():
            weights[intent] = weights.get(intent, 0.0) + w / len(parts)
    tops = {result.top(): text for text, result in parts}
    return IntentResult(  # each part's intent is needed (the router takes them first); others clear the floor
        {k: round(v, 4) for k, v in weights.items()},
        whole.similarity,
        whole.oos_score,
        False,
        whole.set_floor,
        parts={t: text for t, text in tops.items() if t is not None},
    )


def _options(query: str, judge: Judge) -> list[_Cut]:
    """The cuts whose sides are both in scope and want different intents, the least alike first."""
    options = cuts(query)
    if options and judge.screen is not None:
        guess = judge.screen([side for cut in options for side in cut])
        options = [cut for k, cut in enumerate(options) if guess[2 * k] != guess[2 * k + 1]]
    if not options:
        return []
    cosine = judge.likeness(options)
    sides = judge.classify([side for cut in options for side in cut])
    found = []
    for k in np.argsort(cosine, kind="stable"):
        left, right = sides[2 * k], sides[2 * k + 1]
        if not (left.out_of_scope or right.out_of_scope or left.top() == right.top()):
            found.append(_Cut(options[k], (left, right), float(cosine[k])))
    return found


def _parts(query: str, whole: IntentResult, judge: Judge, rule: CutRule, budget: int) -> list[tuple[str, IntentResult]]:
    """The query as parts that each want their own intent (just the query when no cut holds)."""
    if budget < 2 or rule.apart <= -1:
        return [(query, whole)]
    cut = next((c for c in _options(query, judge) if c.holds(whole, rule)), None)
    if cut is None:
        return [(query, whole)]
    head = _parts(cut.sides[0], cut.results[0], judge, rule, budget - 1)
    tail = _parts(cut.sides[1], cut.results[1], judge, rule, budget - len(head))
    merged: dict[str | None, tuple[str, IntentResult]] = {}
    for text, result in [*head, *tail]:  # two parts wanting one intent are one need
        merged.setdefault(result.top(), (text, result))
    return list(merged.values())


def choose_rule(
    texts: Sequence[str], labels: Sequence[str], judge: Judge, count: int, max_false_cut: float, seed: int = 0
) -> CutRule:
    """The ``CutRule`` that gets most single-need queries (``count`` of ``texts``) and two-need ones (``count``
    pairs of ``texts`` of different ``labels``, joined) exactly right, the two shares weighed alike: a single
    one stays whole with its best intent right, a joined one is cut into its two intents. Only rules that cut
    at most ``max_false_cut`` of the single ones are considered: how often people ask for two things in one
    message is not known here, and cutting a single request sends a fragment of it to an agent. Ties go to
    the rule that cuts least. The default rule (nothing cut) with fewer than two labels."""
    rng = random.Random(seed)
    rows = list(range(len(texts)))
    if len(set(labels)) < 2:
        return CutRule()
    singles = [(texts[i], {labels[i]}) for i in rng.sample(rows, min(count, len(rows)))]
    joined: list[tuple[str, set[str]]] = []
    while len(joined) < count:
        a, b = rng.sample(rows, 2)
        if labels[a] != labels[b]:
            joined.append((join(texts[a], texts[b], rng.choice(JOINERS)), {labels[a], labels[b]}))
    asked = [*singles, *joined]
    wholes = judge.classify([text for text, _ in asked])
    seen = [(whole, _options(text, judge), gold) for (text, gold), whole in zip(asked, wholes, strict=True)]
    cosines = np.array([c.cosine for _, options, _ in seen for c in options])
    if not cosines.size:
        return CutRule()
    aparts = np.unique(np.quantile(cosines, np.linspace(0, 1, APARTS)) + 1e-9)

    def merit(rule: CutRule) -> float:
        right, cut_singles = [], 0
        for k, (whole, options, gold) in enumerate(seen):
            cut = next((c for c in options if c.holds(whole, rule)), None)
            chosen = {r.top() for r in cut.results} if cut else {whole.top()}
            right.append(chosen == gold)
            cut_singles += k < len(singles) and cut is not None
        if cut_singles > max_false_cut * len(singles):
            return -1.0
        return float(np.mean(right[: len(singles)]) + np.mean(right[len(singles) :]))

    rules = [CutRule(-1.0)] + [CutRule(float(a), s) for s in SURER for a in aparts]
    scores = [merit(r) for r in rules]
    best = max(scores)
    return next(r for r, s in zip(rules, scores, strict=True) if s >= best - 1e-12)
