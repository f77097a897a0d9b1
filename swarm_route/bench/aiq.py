"""RouterBench's Average Improvement in Quality (AIQ): one number for a router's whole quality/cost curve.

A router swept over its cost knob gives points (cost, quality). Mixing two of its operating points
prompt by prompt reaches any point on the segment between them, and spending more never has to lower
quality (keep the cheaper choice), so what a router can reach is the non-decreasing upper convex hull of its
points. AIQ is the mean height of that hull over a fixed cost range, normalised by the range's width: the
range runs from the cheapest single model's cost to the best single model's, so every router on the same
test set is judged over the same interval. Below a router's cheapest point nothing is reachable (0).

The zero router is the hull of the single models themselves: what mixing fixed models reaches without
looking at any query. A router worth its cost beats it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import pairwise

import numpy as np

Point = tuple[float, float]  # (cost, quality)


def hull(points: Iterable[Point]) -> list[Point]:
    """The non-decreasing upper convex hull, by cost: its vertices, cheapest first."""
    upper: list[Point] = []
    for c, q in sorted(set(points), key=lambda p: (p[0], -p[1])):
        if upper and q <= upper[-1][1]:  # costs more, no better: never worth choosing
            continue
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], (c, q)) >= 0:
            upper.pop()  # on or under the segment from the vertex before it to this point
        upper.append((c, q))
    return upper


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def reach(vertices: Sequence[Point], cost: float) -> float:
    """The hull's quality at ``cost``: interpolated between vertices, flat past the last, 0 before the first."""
    if not vertices or cost < vertices[0][0]:
        return 0.0
    costs, qualities = zip(*vertices, strict=True)
    return float(np.interp(cost, costs, qualities))


def aiq(points: Iterable[Point], low: float, high: float) -> float:
    """Mean reachable quality over costs [``low``, ``high``], integrated exactly: between its vertices the
    hull is linear, and before its first vertex it is 0."""
    vertices = hull(points)
    if not vertices:
        return 0.0
    if high <= low:
        return reach(vertices, high)
    knots = sorted({low, high, *(c for c, _ in vertices if low < c < high)})
    area = sum(
        (b - a) * (reach(vertices, a) + reach(vertices, b)) / 2 for a, b in pairwise(knots) if a >= vertices[0][0]
    )
    return round(area / (high - low), 6)


Outcomes = tuple[np.ndarray, np.ndarray]  # one operating point's per-prompt scores and costs, in test order


def aiq_draws(
    curves: Mapping[str, Sequence[Outcomes]],
    singles: Sequence[Outcomes],
    best: Outcomes,
    resamples: int,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each curve's AIQ on ``resamples`` bootstrap draws of the test prompts. Every curve is scored on the
    same draws, and each draw's cost range is taken from its own singles and best model, so the difference
    between two routers draw by draw is a paired sample of how much of their gap is which prompts were drawn:
    on a few hundred prompts one prompt decided the other way moves a point's quality by a few tenths of a
    percent, the size of the gaps between routers."""
    n = len(best[0])
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))

    def figures(outcomes: Outcomes) -> tuple[np.ndarray, np.ndarray]:
        scores, costs = outcomes
        return costs[draws].sum(axis=1), scores[draws].mean(axis=1)

    low = np.min([figures(s)[0] for s in singles], axis=0)
    high = figures(best)[0]
    out = {}
    for name, points in curves.items():
        per_point = [figures(p) for p in points]
        out[name] = np.array([aiq([(c[b], q[b]) for c, q in per_point], low[b], high[b]) for b in range(resamples)])
    return out
