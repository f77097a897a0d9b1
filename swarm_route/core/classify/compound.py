"""Queries that ask for two or more things ("book a flight to Rome and tell me the weather there").

A whole compound query classifies as a blend whose second need rarely clears the set floor, so every set
holds one agent. Here a query is cut where people join requests (sentence ends, ";", and/also/then/plus),
each side is classified on its own, and the cut is kept only when both sides are in scope by the
classifier's own out-of-scope cut (chosen from data) and want different intents: a single need cut in two
("hotels and restaurants in Paris") gives two sides that agree, or a side that is out of scope alone.
Each kept side is cut again, up to ``MAX_PARTS``. The result names each part's intent, so each can clear
the set floor, and remembers which part asked for it.

Trying a cut costs two classifications, on the slow (sentence-embedding) path for most sides: on a long
prompt of a few hundred words, four cuts cost ~30-180 ms where the whole took one. A ``screen`` (the
lexical model's best intent, a sparse product per side) goes first: a cut whose two sides want the same
intent by it is not classified further.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from swarm_route.core.messages import IntentResult

MAX_PARTS = 4
MAX_CUTS = 4  # cuts tried per query: each costs two classifications (sentence ends first, then ", and", "and")
MIN_WORDS = 3  # a side shorter than this is a fragment ("salt and pepper"), not a request
_JOIN = re.compile(
    r"(?:(?<=[.?!;])\s+|,?\s+)(?:and then|and also|and|also|then|plus|as well as)\b,?\s+|(?<=[.?!;])\s+", re.IGNORECASE
)

Classify = Callable[[Sequence[str]], list[IntentResult]]
Screen = Callable[[Sequence[str]], list[str]]


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


def split(query: str, whole: IntentResult, classify: Classify, screen: Screen | None = None) -> IntentResult:
    """``whole`` (the query classified as one), or the blend of its parts when it asks for several things.
    ``screen``: a cheap guess of each text's best intent; cuts whose sides it gives one intent are dropped."""
    parts = _parts(query, whole, classify, screen, MAX_PARTS)
    if len(parts) < 2:
        return whole
    weights: dict[str, float] = {}
    for _, result in parts:
        for intent, w in result.weights.items():
            weights[intent] = weights.get(intent, 0.0) + w / len(parts)
    tops = {result.top(): text for text, result in parts}
    floor = min(weights[t] for t in tops if t is not None)
    return IntentResult(
        {k: round(v, 4) for k, v in weights.items()},
        whole.similarity,
        whole.oos_score,
        False,
        min(floor, whole.set_floor),
        parts={t: text for t, text in tops.items() if t is not None},
    )


def _parts(
    query: str, whole: IntentResult, classify: Classify, screen: Screen | None, budget: int
) -> list[tuple[str, IntentResult]]:
    """The query as parts that each want their own intent (just the query when no cut holds)."""
    # a whole already as surely in scope as can be: no side could be clearer, so no cut could hold
    options = cuts(query) if budget >= 2 and whole.oos_score > 0 else []
    if options and screen is not None:
        guess = screen([side for cut in options for side in cut])
        options = [cut for k, cut in enumerate(options) if guess[2 * k] != guess[2 * k + 1]]
    if not options:
        return [(query, whole)]
    sides = classify([side for cut in options for side in cut])
    best: tuple[float, int] | None = None
    for k in range(len(options)):
        left, right = sides[2 * k], sides[2 * k + 1]
        if left.out_of_scope or right.out_of_scope or left.top() == right.top():
            continue
        margin = min(1 - left.oos_score, 1 - right.oos_score)  # how surely both sides are requests of their own
        # each side must be a clearer request than the whole: a single need cut in two gives a fragment
        # that is less sure than the whole it came from; two needs blended are less sure than either
        if margin > 1 - whole.oos_score and (best is None or margin > best[0]):
            best = (margin, k)
    if best is None:
        return [(query, whole)]
    k = best[1]
    (left_text, right_text), left, right = options[k], sides[2 * k], sides[2 * k + 1]
    head = _parts(left_text, left, classify, screen, budget - 1)
    tail = _parts(right_text, right, classify, screen, budget - len(head))
    merged: dict[str | None, tuple[str, IntentResult]] = {}
    for text, result in [*head, *tail]:  # two parts wanting one intent are one need
        merged.setdefault(result.top(), (text, result))
    return list(merged.values())
