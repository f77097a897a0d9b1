"""A picture of one pheromone specialist: τ of every edge, from-node by to-node."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def heatmap(trails: Mapping[str, float], intent: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [tuple(edge.split(">", 1)) for edge in trails]
    sources = sorted({u for u, _ in pairs})
    targets = sorted({v for _, v in pairs})
    grid = np.full((len(sources), len(targets)), np.nan)
    for (u, v), tau in zip(pairs, trails.values(), strict=True):
        grid[sources.index(u), targets.index(v)] = tau
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(targets) + 3), max(3, 0.4 * len(sources) + 2)))
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(targets)), targets, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(sources)), sources, fontsize=7)
    ax.set_xlabel("to")
    ax.set_ylabel("from")
    ax.set_title(f"pheromone τ, intent {intent!r}")
    fig.colorbar(im, ax=ax, label="τ")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
