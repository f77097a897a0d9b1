"""Prometheus metrics of the Serve deployments, through Ray's own metrics (exported by every Ray node at
its metrics export port, names prefixed ``ray_``), so a cluster needs one scrape config, not one per replica.

Everything here is recorded by the thin deployments; the plain-Python core stays free of it. The names are
the contract the Grafana dashboards in ``dashboards/`` are tested against.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Mapping

from ray.util.metrics import Counter, Gauge, Histogram

from swarm_route.core.messages import SOURCE, edge_id

_STDERR = logging.StreamHandler(sys.stderr)
_STDERR.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s -- %(message)s"))


def replica_logging() -> None:
    """This package's log lines at INFO on the replica's stderr, at once (Ray keeps it as the replica's
    ``worker-*.err`` in the session's log folder): Serve's own replica log holds 1,000 records in memory
    under RAY_SERVE_THROUGHPUT_OPTIMIZED, and the root logger drops INFO, so a refit's progress or why an
    agent gave no answer would show late or never."""
    ours = logging.getLogger("swarm_route")
    ours.setLevel(logging.INFO)
    if _STDERR not in ours.handlers:
        ours.addHandler(_STDERR)
    ours.propagate = False  # not a second time through the root logger's last-resort handler

PREFIX = "swarm_route_"
# Label values come from the registry (intents, agents, models): agents come and go under new names, and every
# label set a metric has seen is kept and exported for the life of the process. Past this many sets per metric
# a new one is counted as "other", so a registrant cannot grow the replica's memory or the scrape without bound.
MAX_LABEL_SETS = 2000
OTHER = "other"
STAGE_BOUNDARIES = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]

# name → (kind, description, tag keys): the single list both the recorders and the dashboard test read
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "requests_total": ("counter", "queries answered or declined", ("outcome",)),
    "stage_seconds": ("histogram", "time per stage of a query", ("stage",)),
    "choices_total": ("counter", "paths chosen, per intent, agent and model", ("intent", "agent", "model")),
    "cost_usd_total": ("counter", "recorded or estimated spend, per top intent and key id", ("intent", "key")),
    "attempts_total": ("counter", "agent calls, by result (ok, retried, failed) and fallback", ("result", "fallback")),
    "store_errors_total": ("counter", "failed writes to Redis off the request path", ("operation",)),
    "updater_events_total": (
        "counter",
        "what the quality-gated updater did (graded, rejected, deposited, ...)",
        ("event",),
    ),
    "trail_entropy": ("gauge", "normalised entropy of the source edges' pheromone, per intent", ("intent",)),
}


class Metrics:
    """Lazily created Ray metrics: constructing one outside a Ray worker would fail."""

    def __init__(self, max_label_sets: int = MAX_LABEL_SETS) -> None:
        self._made: dict[str, Counter | Gauge | Histogram] = {}
        self._seen: dict[str, set[tuple[str, ...]]] = {}
        self._max = max_label_sets

    def bounded(self, name: str, tags: dict[str, str]) -> dict[str, str]:
        """``tags`` if this metric has seen them or may see more; else every label ``other``."""
        seen = self._seen.setdefault(name, set())
        key = tuple(tags.values())
        if key in seen:
            return tags
        if len(seen) < self._max:
            seen.add(key)
            return tags
        return dict.fromkeys(tags, OTHER)

    def _get(self, name: str) -> Counter | Gauge | Histogram:
        if name not in self._made:
            kind, description, tags = METRICS[name]
            full = PREFIX + name
            if kind == "counter":
                self._made[name] = Counter(full, description=description, tag_keys=tags)
            elif kind == "gauge":
                self._made[name] = Gauge(full, description=description, tag_keys=tags)
            else:
                self._made[name] = Histogram(full, description=description, boundaries=STAGE_BOUNDARIES, tag_keys=tags)
        return self._made[name]

    def inc(self, name: str, value: float = 1.0, **tags: str) -> None:
        if value > 0:
            self._get(name).inc(value, tags=self.bounded(name, tags))  # type: ignore[union-attr]

    def observe(self, name: str, value: float, **tags: str) -> None:
        self._get(name).observe(value, tags=self.bounded(name, tags))  # type: ignore[union-attr]

    def set(self, name: str, value: float, **tags: str) -> None:
        self._get(name).set(value, tags=self.bounded(name, tags))  # type: ignore[union-attr]


def trail_entropy(trails: Mapping[str, float]) -> float | None:
    """How spread an intent's trust is over the paths leaving the source: 1 uniform, 0 all on one (or only
    one path to trust); None before any trail exists."""
    values = [tau for edge, tau in trails.items() if edge.startswith(edge_id(SOURCE, ""))]
    if not values:
        return None
    if len(values) == 1:
        return 0.0
    total = sum(values)
    probs = [v / total for v in values if v > 0]
    return -sum(p * math.log(p) for p in probs) / math.log(len(values))
